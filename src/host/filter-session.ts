// What every per-stream proxy-wasm context shares, TCP connection or HTTP request: the context's
// life in the VM (create, done, log, delete), the failure policy when the module traps,
// attributes, filter state through set_envoy_filter_state, and the buffer being processed.
import { FilterAction, WasmResult, type WasmResultCode } from "./abi.js";
import { BaseHostContext, spliceBuffer, type ForeignResult } from "./context.js";
import { decodeFilterStateWrite, SET_ENVOY_FILTER_STATE } from "./filter-state.js";
import type { ActiveVm, Plugin } from "./plugin.js";
import { connectionProperty, dottedPath, pluginProperty, type ConnectionInfo, type DynamicMetadata, type Endpoint } from "./properties.js";
import { WasmTrap } from "./vm.js";

export type FilterStatus = "continue" | "pause";

export interface DataResult {
  status: FilterStatus;
  /** The buffer after the filter's edits: what goes on. */
  data: Buffer;
}

export abstract class FilterSession extends BaseHostContext {
  readonly isRoot = false;
  readonly id: number;
  override readonly scope: Plugin;
  /** Sees every foreign call first; a result it returns replaces the host's own (for tests). */
  foreignCallHook: ((name: string, args: Buffer) => ForeignResult | undefined) | undefined;
  protected upstream: Endpoint | undefined;
  /** After a failure with fail_open the filter is bypassed for the rest of the stream. */
  protected bypassed = false;
  private finished = false;
  private readonly active: ActiveVm | undefined;
  /** Values the module stored with set_property (rare: made on first use). */
  private properties: Map<string, Buffer> | undefined;
  /** Replaced attribute values; null removes the attribute. */
  private overrides: Map<string, Buffer | null> | undefined;
  private pending: { type: number; data: Buffer } | undefined;

  /**
   * @param filterState the connection's filter state, shared by every filter of the connection
   *   as in Envoy; set_envoy_filter_state writes into it.
   * @param failClosed what the failure policy does when it closes the stream.
   */
  constructor(
    protected readonly plugin: Plugin,
    readonly info: ConnectionInfo,
    readonly filterState: Map<string, string>,
    private readonly failClosed: (reason: string) => void,
  ) {
    super();
    this.scope = plugin;
    this.active = plugin.vm();
    this.id = this.active?.vm.newContextId() ?? 0;
    if (this.active === undefined) {
      this.fail("no healthy wasm VM");
      return;
    }
    this.active.vm.register(this);
    this.invoke("proxy_on_context_create", 0, this.id, this.active.root.id);
  }

  /** Upstream connected: makes `upstream.address` and `upstream.port` readable. */
  setUpstream(endpoint: Endpoint): void {
    this.upstream = endpoint;
  }

  /** The stream is over: done, log, delete; safe to call more than once. */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.invoke("proxy_on_done", 1, this.id);
    this.invoke("proxy_on_log", 0, this.id);
    this.invoke("proxy_on_delete", 0, this.id);
    this.active?.vm.unregister(this.id);
  }

  /** Replaces an attribute's raw value (for tests and fuzzing of what a host may report). */
  overrideProperty(key: string, value: Buffer | null): void {
    (this.overrides ??= new Map()).set(key, value);
  }

  protected status(action: number): FilterStatus {
    return action === FilterAction.Pause ? "pause" : "continue";
  }

  /** Runs `callback` with `data` as buffer `type`, returning the action and the edited buffer. */
  protected withBuffer(type: number, callback: string, data: Buffer, endOfStream: boolean): DataResult {
    if (this.bypassed) return { status: "continue", data };
    this.pending = { type, data };
    const action = this.invoke(callback, FilterAction.Continue, this.id, data.length, endOfStream ? 1 : 0);
    const edited = this.pending.data;
    this.pending = undefined;
    return { status: this.status(action), data: edited };
  }

  override deliver(callback: string, ...args: number[]): void {
    this.invoke(callback, 0, this.id, args[0], args[1], args[2], args[3]);
  }

  /** Calls into the module unless bypassed; a trap applies the failure policy. */
  protected invoke(name: string, fallback: number, a = 0, b = 0, c = 0, d = 0, e = 0): number {
    if (this.bypassed || this.active === undefined) return fallback;
    try {
      return this.active.vm.call(this, name, fallback, a, b, c, d, e);
    } catch (error) {
      if (!(error instanceof WasmTrap)) throw error;
      if (!error.earlier) this.plugin.trapped(error, name);
      this.fail(error.message);
      return fallback;
    }
  }

  private fail(reason: string): void {
    this.bypassed = true;
    this.finished = true;
    if (!this.plugin.spec.failOpen) this.failClosed(`wasm failure (fail closed): ${reason}`);
  }

  /** Attributes beyond the connection's and the plugin's (HTTP request attributes). */
  protected extraProperty(_key: string): Buffer | undefined {
    return undefined;
  }

  override property(path: string): Uint8Array | undefined {
    const key = dottedPath(path);
    const override = this.overrides?.get(key);
    if (override !== undefined) return override ?? undefined;
    return connectionProperty(key, this.info, this.upstream) ?? pluginProperty(key, this.plugin.spec)
      ?? this.extraProperty(key) ?? this.stateProperty(path) ?? this.properties?.get(path);
  }

  /** The stream's dynamic metadata; a connection's comes from its listener filters. */
  protected dynamicMetadata(): DynamicMetadata | undefined {
    return this.info.dynamicMetadata;
  }

  /**
   * `metadata.filter_metadata.NAMESPACE.KEY` and `filter_state.KEY`, by segment (a namespace has
   * dots of its own). Envoy's Wasm host walks the Metadata message and the filter state object by
   * these segments and hands a string leaf over as its bytes; only string leaves are served here.
   */
  private stateProperty(path: string): Buffer | undefined {
    if (!path.startsWith("metadata\0") && !path.startsWith("filter_state\0")) return undefined;
    const segments = path.split("\0");
    if (segments[0] === "filter_state") {
      const value = segments.length === 2 ? this.filterState.get(segments[1]!) : undefined;
      return value === undefined ? undefined : Buffer.from(value);
    }
    if (segments.length !== 4 || segments[1] !== "filter_metadata") return undefined;
    const value = this.dynamicMetadata()?.get(segments[2]!)?.get(segments[3]!);
    return value === undefined ? undefined : Buffer.from(value);
  }

  /**
   * Stored for this stream, readable back, and filter state `wasm.<path>` (the path as the module
   * sent it) that access logs print with %FILTER_STATE% (Envoy's Context::setProperty, WasmState);
   * tcp_proxy never reads these (envoy#28673).
   */
  override setProperty(path: string, value: Buffer): WasmResultCode {
    (this.properties ??= new Map()).set(path, value);
    this.filterState.set(`wasm.${path}`, value.toString("utf8"));
    return WasmResult.Ok;
  }

  override buffer(type: number): Buffer | undefined {
    return this.pending?.type === type ? this.pending.data : undefined;
  }

  override setBuffer(type: number, start: number, size: number, data: Buffer): WasmResultCode {
    if (this.pending?.type !== type) return WasmResult.NotFound;
    const edited = spliceBuffer(this.pending.data, start, size, data);
    if (edited === undefined) return WasmResult.BadArgument;
    this.pending.data = edited;
    return WasmResult.Ok;
  }

  override callForeign(name: string, args: Buffer): ForeignResult {
    const hooked = this.foreignCallHook?.(name, args);
    if (hooked !== undefined) return hooked;
    if (name !== SET_ENVOY_FILTER_STATE) return super.callForeign(name, args);
    const write = decodeFilterStateWrite(args);
    if (write.status === WasmResult.Ok) this.filterState.set(write.key!, write.value!);
    return { status: write.status };
  }
}
