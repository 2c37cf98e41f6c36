// One downstream connection through a proxy-wasm network filter, with the callbacks in the order
// Envoy's network filter manager makes them (source/extensions/filters/network/wasm and
// common/wasm/context.cc): new connection, data in each direction with end_of_stream, close
// events, then done, log and delete. The session never touches sockets: it tells the runner
// what to do through ConnectionControl.
import { BufferType, FilterAction, PeerType, StreamType, WasmResult, type WasmResultCode } from "./abi.js";
import { BaseHostContext, spliceBuffer, type ForeignResult } from "./context.js";
import { decodeFilterStateWrite, SET_ENVOY_FILTER_STATE, TCP_PROXY_CLUSTER_KEY } from "./filter-state.js";
import type { ActiveVm, Plugin } from "./plugin.js";
import { connectionProperty, pluginProperty, type ConnectionInfo, type Endpoint } from "./properties.js";
import { WasmTrap } from "./vm.js";

export interface ConnectionControl {
  /** The filter (or its failure policy) closes the downstream connection. */
  close(reason: string): void;
  /** A paused filter resumes the chain (proxy_continue_stream). */
  continueReading(): void;
}

export type FilterStatus = "continue" | "pause";

export interface DataResult {
  status: FilterStatus;
  /** The buffer after the filter's edits: what goes on to tcp_proxy. */
  data: Buffer;
}

type Direction = typeof BufferType.DownstreamData | typeof BufferType.UpstreamData;

export class NetworkFilterSession extends BaseHostContext {
  readonly isRoot = false;
  readonly id: number;

  private readonly properties = new Map<string, Buffer>();
  /** Replaced attribute values; null removes the attribute. */
  private overrides: Map<string, Buffer | null> | undefined;
  private upstream: Endpoint | undefined;
  private readonly active: ActiveVm | undefined;
  /** After a failure with fail_open the filter is bypassed for the rest of the connection. */
  private bypassed = false;
  private finished = false;
  private pending: { type: Direction; data: Buffer } | undefined;

  /**
   * @param filterState the connection's filter state, shared by every filter of the connection
   *   as in Envoy; set_envoy_filter_state writes into it.
   */
  constructor(
    private readonly plugin: Plugin,
    readonly info: ConnectionInfo,
    private readonly control: ConnectionControl,
    readonly filterState: Map<string, string> = new Map(),
  ) {
    super();
    this.active = plugin.vm();
    this.id = this.active?.vm.newContextId() ?? 0;
    if (this.active === undefined) {
      this.failClosedOrOpen("no healthy wasm VM");
      return;
    }
    this.active.vm.register(this);
    this.invoke("proxy_on_context_create", 0, this.id, this.active.root.id);
  }

  /** tcp_proxy's cluster override, if the filter set one. */
  get clusterOverride(): string | undefined {
    return this.filterState.get(TCP_PROXY_CLUSTER_KEY);
  }

  /** Whether data callbacks reach the module at all (Envoy skips callbacks a module lacks). */
  get wantsData(): boolean {
    return !this.bypassed && (this.plugin.exports("proxy_on_downstream_data") || this.plugin.exports("proxy_on_upstream_data"));
  }

  onNewConnection(): FilterStatus {
    return this.status(this.invoke("proxy_on_new_connection", FilterAction.Continue, this.id));
  }

  onDownstreamData(data: Buffer, endOfStream: boolean): DataResult {
    return this.onData(BufferType.DownstreamData, "proxy_on_downstream_data", data, endOfStream);
  }

  onUpstreamData(data: Buffer, endOfStream: boolean): DataResult {
    return this.onData(BufferType.UpstreamData, "proxy_on_upstream_data", data, endOfStream);
  }

  onDownstreamClose(peer: "local" | "remote"): void {
    this.invoke("proxy_on_downstream_connection_close", 0, this.id, peer === "local" ? PeerType.Local : PeerType.Remote);
  }

  onUpstreamClose(peer: "local" | "remote"): void {
    this.invoke("proxy_on_upstream_connection_close", 0, this.id, peer === "local" ? PeerType.Local : PeerType.Remote);
  }

  /** Upstream connected: makes `upstream.address` and `upstream.port` readable. */
  setUpstream(endpoint: Endpoint): void {
    this.upstream = endpoint;
  }

  /** The connection is gone: done, log, delete; safe to call more than once. */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.invoke("proxy_on_done", 1, this.id);
    this.invoke("proxy_on_log", 0, this.id);
    this.invoke("proxy_on_delete", 0, this.id);
    this.active?.vm.unregister(this.id);
  }

  private onData(type: Direction, callback: string, data: Buffer, endOfStream: boolean): DataResult {
    if (this.bypassed) return { status: "continue", data };
    this.pending = { type, data };
    const action = this.invoke(callback, FilterAction.Continue, this.id, data.length, endOfStream ? 1 : 0);
    const edited = this.pending.data;
    this.pending = undefined;
    return { status: this.status(action), data: edited };
  }

  private status(action: number): FilterStatus {
    return action === FilterAction.Pause ? "pause" : "continue";
  }

  /** Calls into the module unless bypassed; a trap applies the failure policy. */
  private invoke(name: string, fallback: number, ...args: number[]): number {
    if (this.bypassed || this.active === undefined) return fallback;
    try {
      return this.active.vm.call(this, name, fallback, ...args);
    } catch (error) {
      if (!(error instanceof WasmTrap)) throw error;
      this.plugin.trapped(error, name);
      this.failClosedOrOpen(error.message);
      return fallback;
    }
  }

  private failClosedOrOpen(reason: string): void {
    this.bypassed = true;
    this.finished = true;
    if (!this.plugin.spec.failOpen) this.control.close(`wasm failure (fail closed): ${reason}`);
  }

  /** Replaces an attribute's raw value (for tests and fuzzing of what a host may report). */
  overrideProperty(key: string, value: Buffer | null): void {
    (this.overrides ??= new Map()).set(key, value);
  }

  override property(path: readonly string[]): Uint8Array | undefined {
    const key = path.join(".");
    const override = this.overrides?.get(key);
    if (override !== undefined) return override ?? undefined;
    return connectionProperty(key, this.info, this.upstream) ?? pluginProperty(key, this.plugin.spec) ?? this.properties.get(path.join("\0"));
  }

  /** Stored for this connection and readable back; tcp_proxy never reads these (envoy#28673). */
  override setProperty(path: readonly string[], value: Buffer): WasmResultCode {
    this.properties.set(path.join("\0"), value);
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

  /** Sees every foreign call first; a result it returns replaces the host's own (for tests). */
  foreignCallHook: ((name: string, args: Buffer) => ForeignResult | undefined) | undefined;

  override callForeign(name: string, args: Buffer): ForeignResult {
    const hooked = this.foreignCallHook?.(name, args);
    if (hooked !== undefined) return hooked;
    if (name !== SET_ENVOY_FILTER_STATE) return { status: WasmResult.NotFound };
    const write = decodeFilterStateWrite(args);
    if (write.status === WasmResult.Ok) this.filterState.set(write.key!, write.value!);
    return { status: write.status };
  }

  override closeStream(type: number): WasmResultCode {
    if (type !== StreamType.Downstream && type !== StreamType.Upstream) return WasmResult.BadArgument;
    this.control.close(`closed by the wasm filter (${type === StreamType.Downstream ? "downstream" : "upstream"})`);
    return WasmResult.Ok;
  }

  override continueStream(type: number): WasmResultCode {
    if (type !== StreamType.Downstream && type !== StreamType.Upstream) return WasmResult.BadArgument;
    this.control.continueReading();
    return WasmResult.Ok;
  }
}
