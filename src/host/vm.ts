// One instance of a proxy-wasm module on V8 (Node's WebAssembly), driven the way Envoy's host
// drives it: ABI version check, allocator lookup (malloc, else proxy_on_memory_allocate),
// _initialize or _start in restricted mode, then callbacks with an effective context. A trap
// marks the VM failed; the plugin decides what that means for traffic and replaces the VM.
import { CallDeadline, instrumentForDeadline } from "./call-deadline.js";
import { SUPPORTED_ABI_EXPORTS, WasmResult, type WasmResultCode } from "./abi.js";
import type { HostContext, PluginScope } from "./context.js";
import { GrpcCalls, type GrpcCaller } from "./grpc-call.js";
import { HttpCalls, type HttpCaller } from "./http-call.js";
import { createImports, importNames, type AbiHost } from "./imports.js";
import { GuestMemory } from "./memory.js";
import type { MetricRegistry } from "./metrics.js";
import type { SharedData, SharedQueues } from "./shared-data.js";

export class WasmLoadError extends Error {}

/** An exception inside a guest call: a trap, a bad memory access, a forbidden call. */
export class WasmTrap extends Error {
  /**
   * @param earlier the VM had already failed: this call never ran. As in proxy-wasm-cpp-host, a
   * failed VM's contexts get the failure policy, not a trap of their own (it is counted once).
   */
  constructor(message: string, readonly earlier = false) {
    super(message);
  }
}

/** A compiled module that passed the checks Envoy makes before instantiating it. */
export class CompiledModule {
  private constructor(
    readonly module: WebAssembly.Module,
    readonly abiVersion: string,
    readonly exports: ReadonlySet<string>,
    /** Every guest call ends with a trap past this many milliseconds (src/host/call-deadline.ts). */
    readonly callDeadlineMs: number | undefined,
  ) {}

  static async compile(bytes: Uint8Array, label: string, callDeadlineMs?: number): Promise<CompiledModule> {
    // V8's message for a file that is not Wasm quotes its first bytes (a key file, a secret): say what it is not instead.
    if (bytes.length < 4 || bytes[0] !== 0x00 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
      throw new WasmLoadError(`${label}: not a WebAssembly module (it does not start with the \\0asm magic)`);
    }
    let module: WebAssembly.Module;
    try {
      module = await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
    } catch (error) {
      throw new WasmLoadError(`${label}: not a valid WebAssembly module: ${(error as Error).message}`);
    }
    const exports = new Set(WebAssembly.Module.exports(module).map((e) => e.name));
    const abiVersion = SUPPORTED_ABI_EXPORTS.find((name) => exports.has(name));
    if (abiVersion === undefined) {
      const found = [...exports].filter((name) => name.startsWith("proxy_abi_version_"));
      throw new WasmLoadError(`${label}: missing or unsupported proxy-wasm ABI version` +
        ` (exports ${found.length > 0 ? found.join(", ") : "none"}; this host runs ${SUPPORTED_ABI_EXPORTS.join(", ")})`);
    }
    if (!exports.has("malloc") && !exports.has("proxy_on_memory_allocate")) {
      throw new WasmLoadError(`${label}: exports neither malloc nor proxy_on_memory_allocate`);
    }
    if (!exports.has("memory")) throw new WasmLoadError(`${label}: does not export its memory`);
    // Instrumented only once V8 has accepted the module: binaryen is not a validator to trust with any input.
    if (callDeadlineMs !== undefined) module = await WebAssembly.compile(await instrumentForDeadline(bytes) as Uint8Array<ArrayBuffer>);
    return new CompiledModule(module, abiVersion.replace("proxy_abi_version_", "").replaceAll("_", "."), exports, callDeadlineMs);
  }
}

export interface VmServices {
  readonly label: string;
  readonly metrics: MetricRegistry;
  readonly shared: SharedData;
  readonly queues: SharedQueues;
  readonly vmId: string;
  /** The plugin host calls made outside any context belong to (_initialize, _start): the one that started the VM. */
  readonly scope: PluginScope;
  readonly httpCaller: HttpCaller | undefined;
  readonly grpcCaller: GrpcCaller | undefined;
  /** Linear memory the VM may grow to before it is failed. */
  readonly memoryLimitBytes: number;
}

type Export = (...args: number[]) => number | undefined;

export class WasmVm implements AbiHost {
  readonly memory: GuestMemory;
  restricted = true;
  failure: string | undefined;
  private readonly exports: Record<string, Export>;
  /** Callbacks by name, resolved once: a keyed load on the exports object per call is slow. */
  private readonly callbacks: Map<string, Export>;
  private readonly contexts = new Map<number, HostContext>();
  private current: HostContext | undefined;
  private nextContextId = 1;
  private readonly deadline: CallDeadline | undefined;
  readonly httpCalls: HttpCalls;
  readonly grpcCalls: GrpcCalls;

  private constructor(readonly compiled: CompiledModule, private readonly services: VmServices) {
    this.deadline = compiled.callDeadlineMs === undefined ? undefined : new CallDeadline(compiled.callDeadlineMs);
    const isLive = (context: HostContext) => this.failure === undefined && this.contexts.get(context.id) === context;
    this.httpCalls = new HttpCalls(services.httpCaller, isLive);
    this.grpcCalls = new GrpcCalls(services.grpcCaller, isLive);
    const imports = { ...createImports(this, compiled.abiVersion), ...this.deadline?.imports() };
    const provided = importNames(imports);
    const missing = WebAssembly.Module.imports(compiled.module)
      .map((i) => `${i.module}.${i.name}`)
      .filter((name) => !provided.has(name));
    if (missing.length > 0) {
      throw new WasmLoadError(`${services.label}: imports functions no proxy-wasm host provides: ${missing.join(", ")}`);
    }
    const instance = new WebAssembly.Instance(compiled.module, imports as WebAssembly.Imports);
    this.exports = instance.exports as unknown as Record<string, Export>;
    this.callbacks = new Map(Object.entries(this.exports).filter((entry): entry is [string, Export] => typeof entry[1] === "function"));
    const allocator = this.exports.malloc ?? this.exports.proxy_on_memory_allocate!;
    this.memory = new GuestMemory(instance.exports.memory as WebAssembly.Memory, (size) => allocator(size)! >>> 0, services.memoryLimitBytes);
  }

  /**
   * Instantiates and starts the module in restricted mode as cpp-host's startVm does: a reactor's
   * _initialize and then its main(0, 0) if it exports one, else a command's _start.
   */
  static start(compiled: CompiledModule, services: VmServices): WasmVm {
    const vm = new WasmVm(compiled, services);
    const reactor = compiled.exports.has("_initialize");
    const steps = reactor ? ["_initialize", ...(compiled.exports.has("main") ? ["main"] : [])] : compiled.exports.has("_start") ? ["_start"] : [];
    let step = "";
    try {
      for (step of steps) vm.exports[step]!(0, 0);
    } catch (error) {
      throw new WasmLoadError(`${services.label}: ${step} failed: ${(error as Error).message}`);
    } finally {
      vm.restricted = false;
    }
    return vm;
  }

  get metrics(): MetricRegistry {
    return this.services.metrics;
  }

  get shared(): SharedData {
    return this.services.shared;
  }

  get queues(): SharedQueues {
    return this.services.queues;
  }

  get vmId(): string {
    return this.services.vmId;
  }

  has(name: string): boolean {
    return this.compiled.exports.has(name);
  }

  newContextId(): number {
    return this.nextContextId++;
  }

  register(context: HostContext): void {
    this.contexts.set(context.id, context);
  }

  unregister(id: number): void {
    this.contexts.delete(id);
    this.httpCalls.cancelAll(id);
    this.grpcCalls.cancelAll(id);
  }

  /**
   * Calls an export with `context` as the effective context. Returns `fallback` when the module
   * does not export it (Envoy skips missing callbacks). Any exception fails the VM.
   */
  call(context: HostContext, name: string, fallback: number, a = 0, b = 0, c = 0, d = 0, e = 0): number {
    if (this.failure !== undefined) throw new WasmTrap(this.failure, true);
    const fn = this.callbacks.get(name);
    if (fn === undefined) return fallback;
    const previous = this.current;
    this.current = context;
    this.deadline?.begin();
    try {
      const result = (fn(a, b, c, d, e) ?? fallback) >>> 0;
      this.memory.checkGrowth();
      return result;
    } catch (error) {
      this.failure = `${name} trapped: ${(error as Error).message}`;
      throw new WasmTrap(this.failure);
    } finally {
      this.current = previous;
    }
  }

  effective(): HostContext {
    if (this.current === undefined) throw new Error("host call outside of any callback");
    return this.current;
  }

  setEffectiveContext(id: number): WasmResultCode {
    const context = this.contexts.get(id);
    if (context === undefined) return WasmResult.BadArgument;
    this.current = context;
    return WasmResult.Ok;
  }

  /** The plugin of the effective context: logs, log level, tick and configuration are per plugin. */
  private scope(): PluginScope {
    return this.current?.scope ?? this.services.scope;
  }

  log(level: number, message: string): void {
    this.scope().log(level, message);
  }

  logLevel(): number {
    return this.scope().logLevel();
  }

  setTickPeriod(milliseconds: number): void {
    this.scope().setTickPeriod(milliseconds);
  }

  done(): WasmResultCode {
    return WasmResult.Ok;
  }

  pluginConfiguration(): Buffer {
    return this.scope().pluginConfiguration();
  }
}
