// A configured proxy-wasm plugin: the module, its root context and its configuration, as Envoy's
// wasm filter config holds them. Owns the VM; once the VM has failed the plugin applies its
// failure policy to every stream (see vm()).
import { BufferType, LOG_LEVEL_NAMES, LogLevel, type LogLevelName } from "./abi.js";
import { BaseHostContext } from "./context.js";
import type { GrpcCaller } from "./grpc-call.js";
import type { HttpCaller } from "./http-call.js";
import { MetricRegistry } from "./metrics.js";
import { dottedPath, pluginProperty, type PluginIdentity } from "./properties.js";
import { SharedData, SharedQueues } from "./shared-data.js";
import { CompiledModule, WasmLoadError, WasmTrap, WasmVm } from "./vm.js";

export interface PluginSpec extends PluginIdentity {
  /** Where the code came from, for messages (a file name, or "inline"). */
  source: string;
  code: Uint8Array;
  configuration: Buffer;
  vmConfiguration: Buffer;
  /** Envoy's PluginConfig.fail_open: on a VM failure let traffic through instead of closing it. */
  failOpen: boolean;
}

export interface LogRecord {
  level: LogLevelName;
  plugin: string;
  message: string;
}

export type LogSink = (record: LogRecord) => void;

export interface PluginOptions {
  log: LogSink;
  /** Lowest level forwarded to the sink; also what proxy_get_log_level reports. */
  logLevel?: LogLevelName;
  /** Linear memory a VM may grow to before it is failed (default 1 GiB; Wasm itself allows 4). */
  memoryLimitBytes?: number;
  /** A guest call running longer than this traps (src/host/call-deadline.ts); none when absent. */
  callDeadlineMs?: number;
  /** Where proxy_http_call sends calls (the bootstrap's clusters); without it they answer Unimplemented. */
  httpCaller?: HttpCaller;
  /** The same for proxy_grpc_call and proxy_grpc_stream. */
  grpcCaller?: GrpcCaller;
  /** Shared data: Envoy keeps one store per vm_id for the whole process (default: the plugin's own). */
  sharedData?: SharedData;
  /** Shared queues: one registry for the whole process in Envoy (default: the plugin's own). */
  sharedQueues?: SharedQueues;
}

const DEFAULT_MEMORY_LIMIT_BYTES = 2 ** 30;

/** Configure (or vm start) returned false, or the module did not load: Envoy rejects the config. */
export class PluginConfigError extends Error {}

/** Counters of VM failures, for the runner's stats. */
export interface PluginFailureCounters {
  traps: number;
}

class RootHostContext extends BaseHostContext {
  readonly isRoot = true;

  constructor(readonly id: number, private readonly spec: PluginSpec, private readonly configuration: Buffer,
    private readonly callModule: (context: RootHostContext, name: string, ...args: number[]) => void) {
    super();
  }

  override deliver(callback: string, ...args: number[]): void {
    this.callModule(this, callback, this.id, ...args);
  }

  override property(path: string): Uint8Array | undefined {
    return pluginProperty(dottedPath(path), this.spec);
  }

  override buffer(type: number): Buffer | undefined {
    if (type === BufferType.PluginConfiguration) return this.configuration;
    if (type === BufferType.VmConfiguration) return this.spec.vmConfiguration;
    return undefined;
  }
}

export interface ActiveVm {
  vm: WasmVm;
  root: RootHostContext;
}

export class Plugin {
  readonly metrics = new MetricRegistry();
  readonly failures: PluginFailureCounters = { traps: 0 };
  private readonly shared: SharedData;
  private readonly queues: SharedQueues;
  private level: number;
  private active: ActiveVm | undefined;
  private tick: NodeJS.Timeout | undefined;
  /** Log lines at warn or above during configure, quoted when configure fails. */
  private configureLog: string[] | undefined;

  private constructor(readonly spec: PluginSpec, private readonly compiled: CompiledModule, private readonly options: PluginOptions) {
    this.shared = options.sharedData ?? new SharedData();
    this.queues = options.sharedQueues ?? new SharedQueues();
    this.level = LogLevel[options.logLevel ?? "info"];
  }

  static async load(spec: PluginSpec, options: PluginOptions): Promise<Plugin> {
    let compiled: CompiledModule;
    try {
      compiled = await CompiledModule.compile(spec.code, spec.source, options.callDeadlineMs);
    } catch (error) {
      throw new PluginConfigError(`plugin '${spec.name}': ${(error as Error).message}`);
    }
    const plugin = new Plugin(spec, compiled, options);
    plugin.active = plugin.startVm();
    return plugin;
  }

  get abiVersion(): string {
    return this.compiled.abiVersion;
  }

  sharedData(key: string): Buffer | undefined {
    return this.shared.get(key)?.value;
  }

  exports(name: string): boolean {
    return this.compiled.exports.has(name);
  }

  /** Changes the level the module's logs are kept from (and proxy_get_log_level reports), as Envoy's /logging. */
  setLogLevel(level: LogLevelName): void {
    this.level = LogLevel[level];
  }

  /** A log line from the module: kept if at or above the plugin's log level. */
  log(level: number, message: string): void {
    if (level >= LogLevel.warn) this.configureLog?.push(message);
    if (level >= this.level) this.hostLog(level, message);
  }

  /** A log line from the host about the module (traps): always passed on. */
  private hostLog(level: number, message: string): void {
    this.options.log({ level: LOG_LEVEL_NAMES[level] ?? "info", plugin: this.spec.name, message });
  }

  /**
   * The running VM, or undefined once it has failed. A failed VM stays failed: every later stream
   * gets the failure policy (fail_open or closed) until a new configuration brings a new VM, as in
   * Envoy before its FAIL_RELOAD policy (v1.33; the API targeted here has none): the filter's
   * createFilter hands a failed VM's streams an empty context (closed) or no filter at all (open).
   */
  vm(): ActiveVm | undefined {
    return this.active !== undefined && this.active.vm.failure === undefined ? this.active : undefined;
  }

  /** A callback on a root context outside configure (a call's answer): a trap fails the VM, counted. */
  private callRoot(vm: WasmVm, root: RootHostContext, name: string, args: number[]): void {
    try {
      vm.call(root, name, 0, args[0], args[1], args[2], args[3], args[4]);
    } catch (error) {
      if (!(error instanceof WasmTrap)) throw error;
      if (!error.earlier) this.trapped(error, name);
    }
  }

  /** Records a trap for the stats and the log. */
  trapped(trap: WasmTrap, where: string): void {
    this.failures.traps++;
    this.hostLog(LogLevel.error, `wasm trap in ${where}: ${trap.message}`);
  }

  close(): void {
    if (this.tick !== undefined) clearInterval(this.tick);
    this.tick = undefined;
  }

  private startVm(): ActiveVm {
    const { spec } = this;
    const label = `plugin '${spec.name}' (${spec.source})`;
    let vm: WasmVm;
    try {
      vm = WasmVm.start(this.compiled, {
        label,
        metrics: this.metrics,
        shared: this.shared,
        queues: this.queues,
        vmId: spec.vmId,
        log: (level, message) => this.log(level, message),
        logLevel: () => this.level,
        setTickPeriod: (ms) => this.setTickPeriod(ms),
        pluginConfiguration: () => spec.configuration,
        httpCaller: this.options.httpCaller,
        grpcCaller: this.options.grpcCaller,
        memoryLimitBytes: this.options.memoryLimitBytes ?? DEFAULT_MEMORY_LIMIT_BYTES,
      });
    } catch (error) {
      throw new PluginConfigError((error as Error).message);
    }
    const root = new RootHostContext(vm.newContextId(), spec, spec.configuration, (context, name, ...args) => this.callRoot(vm, context, name, args));
    this.configureRoot(vm, root, label);
    return { vm, root };
  }

  /** Starts and configures a root context in `vm`; throws PluginConfigError when refused. */
  private configureRoot(vm: WasmVm, root: RootHostContext, label: string): void {
    const configuration = root.buffer(BufferType.PluginConfiguration)!;
    vm.register(root);
    this.configureLog = [];
    try {
      vm.call(root, "proxy_on_context_create", 0, root.id, 0);
      if (vm.call(root, "proxy_on_vm_start", 1, root.id, this.spec.vmConfiguration.length) === 0) {
        throw new PluginConfigError(`${label}: proxy_on_vm_start returned false${this.quoteLog()}`);
      }
      if (vm.call(root, "proxy_on_configure", 1, root.id, configuration.length) === 0) {
        throw new PluginConfigError(`${label}: proxy_on_configure rejected the configuration${this.quoteLog()}`);
      }
    } catch (error) {
      if (error instanceof WasmTrap) throw new PluginConfigError(`${label}: ${error.message}${this.quoteLog()}`);
      throw error;
    } finally {
      this.configureLog = undefined;
    }
  }

  /**
   * Configures a throwaway root context with `configuration` in the running VM, then retires it
   * (done, delete): a cheap way to test many configurations against one VM. Throws
   * PluginConfigError when the module refuses it.
   */
  checkConfiguration(configuration: Buffer): void {
    const active = this.vm();
    if (active === undefined) throw new PluginConfigError(`plugin '${this.spec.name}': no healthy VM`);
    const { vm } = active;
    const root = new RootHostContext(vm.newContextId(), this.spec, configuration, (context, name, ...args) => this.callRoot(vm, context, name, args));
    try {
      this.configureRoot(vm, root, `plugin '${this.spec.name}' (${this.spec.source})`);
    } finally {
      if (vm.failure === undefined) {
        vm.call(root, "proxy_on_done", 1, root.id);
        vm.call(root, "proxy_on_delete", 0, root.id);
      }
      vm.unregister(root.id);
    }
  }

  private quoteLog(): string {
    const lines = this.configureLog ?? [];
    return lines.length === 0 ? "" : `: ${lines.join("; ")}`;
  }

  private setTickPeriod(milliseconds: number): void {
    if (this.tick !== undefined) clearInterval(this.tick);
    this.tick = undefined;
    if (milliseconds === 0) return;
    this.tick = setInterval(() => {
      const active = this.vm();
      if (active === undefined) return;
      try {
        active.vm.call(active.root, "proxy_on_tick", 0, active.root.id);
      } catch (error) {
        if (!(error instanceof WasmTrap)) throw error;
        if (!error.earlier) this.trapped(error, "proxy_on_tick");
      }
    }, milliseconds);
    this.tick.unref();
  }
}

export { WasmLoadError, WasmTrap };
