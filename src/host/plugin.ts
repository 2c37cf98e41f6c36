// A configured proxy-wasm plugin: the module, its root context and its configuration, as Envoy's
// wasm filter config holds them. The VM is the plugin's own, or shared with every plugin of the
// same vm key through a VmRegistry (vm-registry.ts); once the VM has failed the plugin applies its
// failure policy to every stream (see vm()).
import { BufferType, LOG_LEVEL_NAMES, LogLevel, type LogLevelName } from "./abi.js";
import { BaseHostContext, type PluginScope } from "./context.js";
import type { GrpcCaller } from "./grpc-call.js";
import type { HttpCaller } from "./http-call.js";
import { MetricRegistry } from "./metrics.js";
import { dottedPath, pluginProperty, type PluginIdentity } from "./properties.js";
import { SharedData, SharedQueues } from "./shared-data.js";
import { CompiledModule, WasmLoadError, WasmTrap, WasmVm } from "./vm.js";
import { pluginKey, vmKey, type VmRegistry } from "./vm-registry.js";

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
  /** VMs and plugins shared by every filter naming them, as Envoy's worker holds them (default: a VM of the plugin's own). */
  vms?: VmRegistry<Plugin>;
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

  constructor(readonly id: number, override readonly scope: PluginScope, private readonly spec: PluginSpec, private readonly configuration: Buffer,
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

export class Plugin implements PluginScope {
  readonly failures: PluginFailureCounters = { traps: 0 };
  private level: number;
  private active!: ActiveVm;
  /** Filters holding this plugin (a registry hands one plugin to every filter with its key). */
  private holders = 1;
  private tick: NodeJS.Timeout | undefined;
  /** Log lines at warn or above during configure, quoted when configure fails. */
  private configureLog: string[] | undefined;
  private constructor(readonly spec: PluginSpec, private readonly compiled: CompiledModule, private readonly options: PluginOptions,
    private readonly vmKey: string, private readonly key: string) {
    this.level = LogLevel[options.logLevel ?? "info"];
  }

  /**
   * The plugin for `spec`: the one already running with the same key in `options.vms`, or a new
   * root context in the VM of the same vm key, or a new VM. Joining a running VM configures the
   * plugin in a VM of its own first, as cpp-host's canary does, so a configuration the module
   * refuses never touches the shared VM. Throws PluginConfigError when refused.
   */
  static async load(spec: PluginSpec, options: PluginOptions): Promise<Plugin> {
    const registry = options.vms;
    // Hashes of the code and configuration, made once: a policy of 100,000 CIDRs is megabytes.
    const keyOfVm = vmKey(spec);
    const keyOfPlugin = pluginKey(spec, keyOfVm);
    const running = registry?.plugin(keyOfPlugin);
    if (running !== undefined) {
      running.holders++;
      return running;
    }
    const shared = registry?.vm(keyOfVm);
    let compiled = shared?.compiled;
    try {
      compiled ??= await CompiledModule.compile(spec.code, spec.source, options.callDeadlineMs);
    } catch (error) {
      throw new PluginConfigError(`plugin '${spec.name}': ${(error as Error).message}`);
    }
    const plugin = new Plugin(spec, compiled, options, keyOfVm, keyOfPlugin);
    const own = plugin.startVm();
    if (shared === undefined) {
      plugin.active = own;
    } else {
      plugin.retire(own);
      plugin.active = plugin.startRoot(shared);
    }
    registry?.add(plugin.vmKey, plugin.active.vm, plugin.key, plugin);
    return plugin;
  }

  get abiVersion(): string {
    return this.compiled.abiVersion;
  }

  /** The VM's metrics: shared by the plugins of one VM, as Envoy defines them in the VM's stats scope. */
  get metrics(): MetricRegistry {
    return this.active.vm.metrics;
  }

  sharedData(key: string): Buffer | undefined {
    return this.active.vm.shared.get(key)?.value;
  }

  exports(name: string): boolean {
    return this.compiled.exports.has(name);
  }

  healthy(): boolean {
    return this.active.vm.failure === undefined;
  }

  logLevel(): number {
    return this.level;
  }

  pluginConfiguration(): Buffer {
    return this.spec.configuration;
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
    return this.healthy() ? this.active : undefined;
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

  /** A filter lets go of the plugin; the last one ends its root context (done, delete) and its tick. */
  close(): void {
    if (--this.holders > 0) return;
    if (this.tick !== undefined) clearInterval(this.tick);
    this.tick = undefined;
    this.retire(this.active);
    this.options.vms?.remove(this.vmKey, this.active.vm, this.key, this);
  }

  private get label(): string {
    return `plugin '${this.spec.name}' (${this.spec.source})`;
  }

  /** A new VM of the module with this plugin's root context configured in it. */
  private startVm(): ActiveVm {
    const { spec, options } = this;
    let vm: WasmVm;
    try {
      vm = WasmVm.start(this.compiled, {
        label: this.label,
        metrics: new MetricRegistry(),
        shared: options.sharedData ?? new SharedData(),
        queues: options.sharedQueues ?? new SharedQueues(),
        vmId: spec.vmId,
        scope: this,
        httpCaller: options.httpCaller,
        grpcCaller: options.grpcCaller,
        memoryLimitBytes: options.memoryLimitBytes ?? DEFAULT_MEMORY_LIMIT_BYTES,
      });
    } catch (error) {
      throw new PluginConfigError((error as Error).message);
    }
    return this.startRoot(vm);
  }

  /** This plugin's root context, created and configured in `vm`. */
  private startRoot(vm: WasmVm, configuration = this.spec.configuration): ActiveVm {
    const root = new RootHostContext(vm.newContextId(), this, this.spec, configuration, (context, name, ...args) => this.callRoot(vm, context, name, args));
    try {
      this.configureRoot(vm, root, this.label);
    } catch (error) {
      this.retire({ vm, root });
      throw error;
    }
    return { vm, root };
  }

  /** Ends a root context as Envoy shuts a plugin down: done, delete, calls cancelled. */
  private retire({ vm, root }: ActiveVm): void {
    if (vm.failure === undefined) {
      this.callRoot(vm, root, "proxy_on_done", [root.id]);
      this.callRoot(vm, root, "proxy_on_delete", [root.id]);
    }
    vm.unregister(root.id);
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
    this.retire(this.startRoot(active.vm, configuration));
  }

  private quoteLog(): string {
    const lines = this.configureLog ?? [];
    return lines.length === 0 ? "" : `: ${lines.join("; ")}`;
  }

  setTickPeriod(milliseconds: number): void {
    if (this.tick !== undefined) clearInterval(this.tick);
    this.tick = undefined;
    if (milliseconds === 0) return;
    this.tick = setInterval(() => {
      const active = this.vm();
      if (active !== undefined) this.callRoot(active.vm, active.root, "proxy_on_tick", [active.root.id]);
    }, milliseconds);
    this.tick.unref();
  }
}

export { WasmLoadError, WasmTrap };
