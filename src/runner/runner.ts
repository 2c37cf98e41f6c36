// The local runner: serves an Envoy bootstrap's listeners with real sockets. A configuration
// generation (plugins, clusters, access logs) is built completely before it takes traffic, so a
// reload that fails leaves the running generation serving; open connections finish on the
// generation they started with.
import { readFile } from "node:fs/promises";
import { createServer, isIPv6, type AddressInfo, type Server, type Socket } from "node:net";
import type { Logger } from "pino";
import type { AccessLogConfig, ListenerConfig, RunnerConfig, WasmPluginConfig } from "../envoy/model.js";
import type { LogLevelName } from "../host/abi.js";
import { formatEndpoint, type Endpoint } from "../host/properties.js";
import { Plugin, PluginConfigError, type LogRecord } from "../host/plugin.js";
import { SharedData, SharedQueues } from "../host/shared-data.js";
import { VmRegistry } from "../host/vm-registry.js";
import { AccessLogError, openAccessLog, type AccessLog } from "./access-log.js";
import { AdminServer, WASM_CUSTOM_NAMESPACE, type AdminSource, type ClusterStatus, type StatSample, type TagNames } from "../server/admin.js";
import { DEFAULT_ACCESS_LOG_FORMAT } from "../envoy/subset.js";
import { Cluster } from "./cluster.js";
import { ProxyConnection } from "./connection.js";
import { HttpProxy } from "./http-proxy.js";
import { formatProblem, type Json, type Problem } from "../envoy/errors.js";
import { ReferenceChecker } from "../validate/references.js";
import { wasmerangPolicy, type CheckedWasmFilter } from "../validate/wasm-filters.js";
import { clusterGrpcCaller } from "./grpc-client.js";
import { clusterHttpCaller } from "./http-call-client.js";
import { bufferLimit, ListenerRuntime } from "./listener-runtime.js";
import { listenerStatName } from "./stats.js";
import { StatsStore } from "../server/stats-store.js";
import { ConfigError } from "../envoy/errors.js";
import { ConnectionLimit, connectionCapacity } from "../server/connection-limit.js";

/** A proxied connection holds two descriptors: the downstream and the upstream socket. */
const FDS_PER_CONNECTION = 2;

export interface RunnerOptions {
  logger: Logger;
  /** Lowest level of Wasm module logs passed on (Envoy's --component-log-level wasm:LEVEL). */
  wasmLogLevel?: LogLevelName;
  /** What admin's /quitquitquit does once the runner is closed (the command exits the process). */
  onQuit?: () => void;
  /** Linear memory each Wasm VM may grow to before it is failed (default 1 GiB). */
  wasmMemoryLimitBytes?: number;
  /** A Wasm call running longer than this traps, so that one filter cannot freeze the runner (default 5 s; 0: none, modules run as written). */
  wasmCallDeadlineMs?: number;
}

const DEFAULT_WASM_CALL_DEADLINE_MS = 5000;

interface Generation {
  config: RunnerConfig;
  runtimes: Map<string, ListenerRuntime>;
  clusters: Map<string, Cluster>;
  plugins: Plugin[];
  /** Connections accepted on this generation and still open. */
  open: number;
  /** When it started serving (/config_dump's last_updated). */
  loadedAt: Date;
}

/** Frees what a generation holds: tick timers, DNS refreshes, access-log files. */
async function dispose(generation: Generation): Promise<void> {
  for (const plugin of generation.plugins) plugin.close();
  for (const cluster of generation.clusters.values()) cluster.stop();
  await Promise.all([...generation.runtimes.values()].map((runtime) => runtime.close()));
}

interface ActiveListener {
  config: ListenerConfig;
  server: Server;
  /** Every connection's local address, unless the listener is bound to a wildcard address. */
  local: Endpoint | undefined;
}

/**
 * Like Envoy, which asks the socket for its local address only on wildcard listeners
 * (source/common/network/listen_socket_impl.h, ConnectionSocketImpl): a listener bound to one
 * address gives it to every connection, without a getsockname per connection.
 */
function boundEndpoint(server: Server): Endpoint | undefined {
  const { address, port } = server.address() as AddressInfo;
  return address === "0.0.0.0" || address === "::" ? undefined : { address, port };
}

const PINO_LEVELS = { trace: "trace", debug: "debug", info: "info", warn: "warn", error: "error", critical: "fatal" } as const;

export class Runner implements AdminSource {
  readonly store = new StatsStore();
  private generation!: Generation;
  private readonly listeners = new Map<string, ActiveListener>();
  private readonly connections = new Set<ProxyConnection>();
  private readonly sharedData = new Map<string, SharedData>();
  private readonly sharedQueues = new SharedQueues();
  /** VMs and plugins by key, shared by filters and generations alike, as on an Envoy worker. */
  private readonly vms = new VmRegistry<Plugin>();
  /** The same for singleton Wasm services, which Envoy runs on its main thread, apart from the workers' VMs. */
  private readonly mainThreadVms = new VmRegistry<Plugin>();
  /**
   * The clusters a module's HTTP and gRPC calls go to: the newest configuration's, also for a VM a
   * reload kept (Envoy's cluster manager is one for the process), from the moment they are built.
   */
  private callClusters: ReadonlyMap<string, Cluster> = new Map();
  private readonly httpCaller = clusterHttpCaller((name) => this.callClusters.get(name));
  private readonly grpcCaller = clusterGrpcCaller((name) => this.callClusters.get(name));
  /** Resolved when the last open connection finishes (see untilNoConnections). */
  private noConnections: (() => void) | undefined;
  private admin: AdminServer | undefined;
  private adminLog: AccessLog | undefined;
  private draining = false;
  /** Admin's /drain_listeners: no listener accepts again, even after a reload. */
  private listenersDrained = false;
  private wasmLogLevel: LogLevelName;
  /** Replaced generations that still have open connections; disposed when the last one closes. */
  private readonly retired = new Set<Generation>();
  private readonly connectionLimit: ConnectionLimit;

  private constructor(private readonly options: RunnerOptions) {
    this.wasmLogLevel = options.wasmLogLevel ?? "info";
    this.connectionLimit = new ConnectionLimit(connectionCapacity(FDS_PER_CONNECTION), options.logger,
      "the process's file descriptor limit (ulimit -n) leaves no room for another proxied connection");
  }

  static async start(config: RunnerConfig, options: RunnerOptions): Promise<Runner> {
    const runner = new Runner(options);
    runner.generation = await runner.build(config);
    try {
      await runner.openListeners();
      if (config.admin !== undefined) await runner.openAdmin(config.admin);
    } catch (error) {
      await runner.close();
      throw error;
    }
    return runner;
  }

  private get callDeadlineMs(): number | undefined {
    const deadline = this.options.wasmCallDeadlineMs ?? DEFAULT_WASM_CALL_DEADLINE_MS;
    return deadline === 0 ? undefined : deadline;
  }

  private async openAdmin(admin: NonNullable<RunnerConfig["admin"]>): Promise<void> {
    const log = admin.accessLogPath === undefined ? undefined : await openAccessLog({ path: admin.accessLogPath, format: DEFAULT_ACCESS_LOG_FORMAT },
      (error) => this.options.logger.error({ error: error.message }, "admin access log write failed"));
    this.adminLog = log;
    this.admin = await AdminServer.listen(admin.address.address, admin.address.port, this, this.options.logger, {
      onRequest: log === undefined ? undefined : (request, status, bytes, durationMs) => log.write({
        startTime: new Date(Date.now() - durationMs), upstreamCluster: undefined, upstreamHost: undefined, responseFlags: [],
        downstreamRemote: formatEndpoint({ address: request.socket.remoteAddress ?? "", port: request.socket.remotePort ?? 0 }),
        downstreamLocal: formatEndpoint({ address: request.socket.localAddress ?? "", port: request.socket.localPort ?? 0 }),
        bytesSent: bytes, bytesReceived: 0, durationMs: Math.round(durationMs),
        http: { method: request.method ?? "-", path: request.url ?? "-", protocol: `HTTP/${request.httpVersion}`, status, header: (name) => request.headers[name]?.toString() },
      }),
    });
  }

  private logWasm(record: LogRecord): void {
    this.options.logger[PINO_LEVELS[record.level]]({ plugin: record.plugin }, record.message);
  }

  /** Shared data by vm_id, for the life of the process and across reloads, as Envoy's global shared data. */
  private sharedDataFor(vmId: string): SharedData {
    let shared = this.sharedData.get(vmId);
    if (shared === undefined) this.sharedData.set(vmId, (shared = new SharedData()));
    return shared;
  }

  private async loadPlugin(filter: WasmPluginConfig, vms: VmRegistry<Plugin>): Promise<Plugin> {
    let code: Uint8Array;
    if (filter.inlineCode !== undefined) {
      code = filter.inlineCode;
    } else {
      try {
        code = await readFile(filter.filename!);
      } catch (error) {
        throw new ConfigError([`${filter.path}.config.vm_config.code.local.filename: cannot read '${filter.filename}': ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`], "wasm");
      }
    }
    try {
      return await Plugin.load({
        name: filter.name, rootId: filter.rootId, vmId: filter.vmId, source: filter.filename ?? "inline", code,
        configuration: filter.configuration, vmConfiguration: filter.vmConfiguration, failOpen: filter.failOpen,
      }, { log: (record) => this.logWasm(record), logLevel: this.wasmLogLevel, memoryLimitBytes: this.options.wasmMemoryLimitBytes,
        callDeadlineMs: this.callDeadlineMs, httpCaller: this.httpCaller, grpcCaller: this.grpcCaller,
        sharedData: this.sharedDataFor(filter.vmId), sharedQueues: this.sharedQueues, vms });
    } catch (error) {
      if (error instanceof PluginConfigError) throw new ConfigError([`${filter.path}: ${error.message}`], "wasm");
      throw error;
    }
  }

  /**
   * What `wasmerang validate` finds across the bootstrap (undefined clusters, Wasmerang routing to
   * them, weighted_clusters behind it...), as warnings: Envoy would start with such a config too,
   * and close the connections it cannot route.
   */
  private warnAboutReferences(config: RunnerConfig, loaded: CheckedWasmFilter[]): void {
    const problems: Problem[] = [];
    new ReferenceChecker(config.document as { [key: string]: Json }, loaded, problems).check();
    for (const problem of problems) this.options.logger.warn(`${config.source}: ${formatProblem(problem)}`);
  }

  /** Builds a complete generation, or throws without touching the running one. */
  private async build(config: RunnerConfig): Promise<Generation> {
    const previousCallClusters = this.callClusters;
    const clusters = new Map<string, Cluster>();
    const plugins: Plugin[] = [];
    const logs: AccessLog[] = [];
    const openLogs = async (configs: readonly AccessLogConfig[], listener: string): Promise<AccessLog[]> => {
      const opened: AccessLog[] = [];
      for (const log of configs) {
        const accessLog = await openAccessLog(log, (error) => this.options.logger.error({ listener, error: error.message }, "access log write failed"))
          .catch((error: Error) => {
            throw error instanceof AccessLogError ? new ConfigError([`listener '${listener}' access_log: ${error.message}`], config.source) : error;
          });
        // Every log opened so far is closed again if the generation cannot be built.
        logs.push(accessLog);
        opened.push(accessLog);
      }
      return opened;
    };
    try {
      for (const clusterConfig of config.clusters) {
        const cluster = new Cluster(clusterConfig, this.store, (message) => this.options.logger.warn(message));
        clusters.set(clusterConfig.name, cluster);
        await cluster.start();
      }
      // A module may call out while it configures: to these clusters, as in the generation it joins.
      this.callClusters = clusters;
      const loaded: CheckedWasmFilter[] = [];
      const load = async (filter: WasmPluginConfig, vms = this.vms): Promise<Plugin> => {
        const plugin = await this.loadPlugin(filter, vms);
        plugins.push(plugin);
        const configuration = filter.configuration.toString();
        const metrics = plugin.metrics.names();
        loaded.push({ path: filter.path, kind: filter.path.includes("http_filters") ? "http" : "network", configurationPath: `${filter.path}.config.configuration`,
          configuration, metrics, policy: wasmerangPolicy(metrics, configuration) });
        return plugin;
      };
      for (const service of config.wasmServices) await load(service, service.singleton ? this.mainThreadVms : this.vms);
      const runtimes = new Map<string, ListenerRuntime>();
      for (const listener of config.listeners) {
        const listenerPlugins: Plugin[] = [];
        for (const filter of listener.wasmFilters) listenerPlugins.push(await load(filter));
        const httpPlugins: Plugin[] = [];
        for (const filter of listener.http?.wasmFilters ?? []) httpPlugins.push(await load(filter));
        const http = listener.http === undefined ? undefined
          : new HttpProxy(listener.http, httpPlugins, clusters, this.store, this.options.logger, await openLogs(listener.http.accessLogs, listener.name),
            bufferLimit(listener));
        const tcpLogs = await openLogs(listener.tcpProxy?.accessLogs ?? [], listener.name);
        runtimes.set(listener.name, new ListenerRuntime(listener, listenerPlugins, clusters, this.store, this.options.logger, http, tcpLogs));
      }
      this.warnAboutReferences(config, loaded);
      return { config, runtimes, clusters, plugins, open: 0, loadedAt: new Date() };
    } catch (error) {
      this.callClusters = previousCallClusters;
      for (const plugin of plugins) plugin.close();
      for (const cluster of clusters.values()) cluster.stop();
      await Promise.all(logs.map((log) => log.close()));
      throw error;
    }
  }

  /**
   * Makes the listeners match the generation, all or nothing: every new or moved listener is bound
   * first, and only then are the ones it replaces and the removed ones closed. A bind that fails
   * closes what this attempt bound and leaves the running listeners as they were.
   */
  private async openListeners(): Promise<void> {
    if (this.listenersDrained) return;
    const bound = new Map<string, ActiveListener>();
    try {
      for (const config of this.generation.config.listeners) {
        if (!this.listenerMoves(config)) continue;
        bound.set(config.name, await this.bind(config));
      }
    } catch (error) {
      for (const listener of bound.values()) listener.server.close();
      throw error;
    }
    for (const config of this.generation.config.listeners) {
      const fresh = bound.get(config.name);
      if (fresh === undefined) {
        this.listeners.get(config.name)!.config = config;
        continue;
      }
      this.listeners.get(config.name)?.server.close();
      this.listeners.set(config.name, fresh);
      this.options.logger.info(`listener '${config.name}' on ${config.address.address}:${(fresh.server.address() as AddressInfo).port}`);
    }
    for (const [name, listener] of this.listeners) {
      if (!this.generation.runtimes.has(name)) {
        listener.server.close();
        this.listeners.delete(name);
      }
    }
  }

  /** Whether a listener needs a new socket: it is new, or its address differs from where it is bound. */
  private listenerMoves(config: ListenerConfig): boolean {
    const existing = this.listeners.get(config.name);
    if (existing === undefined || existing.config.address.address !== config.address.address) return true;
    // Port 0 stays where the kernel put it; a written port matches the one in use, even if it was chosen by the kernel.
    return config.address.port !== 0 && config.address.port !== (existing.server.address() as AddressInfo).port;
  }

  private async bind(config: ListenerConfig): Promise<ActiveListener> {
    const server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.accept(config.name, socket));
    await new Promise<void>((resolve, reject) => {
      const refused = (error: Error) => reject(new Error(`listener '${config.name}' cannot bind ${config.address.address}:${config.address.port}: ${error.message}`));
      server.once("error", refused);
      // Envoy binds IPv6 listeners IPv6-only unless socket_address.ipv4_compat (not supported here).
      server.listen({ port: config.address.port, host: config.address.address, ipv6Only: isIPv6(config.address.address) }, () => {
        server.off("error", refused);
        resolve();
      });
    });
    server.on("error", (error) => this.options.logger.warn({ listener: config.name, error: error.message }, "accept failed"));
    return { config, server, local: boundEndpoint(server) };
  }

  private accept(listenerName: string, socket: Socket): void {
    const runtime = this.generation.runtimes.get(listenerName);
    if (runtime === undefined || this.draining) {
      socket.destroy();
      return;
    }
    if (!this.connectionLimit.admits(this.connections.size)) {
      runtime.stats.downstreamGlobalCxOverflow.value++;
      socket.destroy();
      return;
    }
    const generation = this.generation;
    generation.open++;
    const connection: ProxyConnection = new ProxyConnection(runtime, socket, this.listeners.get(listenerName)?.local, () => {
      this.connections.delete(connection);
      if (--generation.open === 0 && this.retired.delete(generation)) void dispose(generation);
      if (this.connections.size === 0) this.noConnections?.();
    });
    this.connections.add(connection);
  }

  /** The port a listener is bound to (useful with port_value 0). */
  listenerPort(name: string): number {
    const listener = this.listeners.get(name);
    if (listener === undefined) throw new Error(`no listener '${name}'`);
    return (listener.server.address() as AddressInfo).port;
  }

  get adminPort(): number | undefined {
    return this.admin?.port;
  }

  /** Replaced configurations still serving open connections. */
  get retiredGenerations(): number {
    return this.retired.size;
  }

  get activeConnections(): number {
    return this.connections.size;
  }

  /** Swaps in a new configuration; on any error the old one keeps serving and the error is thrown. */
  async reload(config: RunnerConfig): Promise<void> {
    const next = await this.build(config);
    const previous = this.generation;
    this.generation = next;
    try {
      await this.openListeners();
    } catch (error) {
      this.generation = previous;
      void dispose(next);
      throw error;
    }
    if (previous.open === 0) void dispose(previous);
    else this.retired.add(previous);
    this.options.logger.info(`configuration reloaded from ${config.source}`);
  }

  /** Stops accepting, lets open connections finish until the deadline, then closes the rest. */
  async drain(deadlineMs: number): Promise<void> {
    this.draining = true;
    this.stopListening();
    await this.untilNoConnections(deadlineMs);
    if (this.connections.size > 0) this.options.logger.warn(`drain deadline reached: closing ${this.connections.size} connection(s)`);
    await this.close();
  }

  /** Resolves when no connection is open, or after `ms`. */
  private async untilNoConnections(ms: number): Promise<void> {
    if (this.connections.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      this.noConnections = resolve;
      timer = setTimeout(resolve, ms);
    });
    clearTimeout(timer);
    this.noConnections = undefined;
  }

  private stopListening(): void {
    for (const listener of this.listeners.values()) listener.server.close();
    this.listeners.clear();
  }

  /**
   * Closes everything. Open connections are reset, so that a cut transfer cannot look complete,
   * and finish (access-log line, counters) before their configuration is disposed.
   */
  async close(): Promise<void> {
    this.draining = true;
    this.stopListening();
    for (const connection of this.connections) connection.abort("closed by the runner (drain deadline or shutdown)");
    // Reset sockets close within a turn or two of the event loop; the bound is only a safety net.
    await this.untilNoConnections(1000);
    await this.admin?.close();
    await this.adminLog?.close();
    await Promise.all([this.generation, ...this.retired].filter((generation) => generation !== undefined).map(dispose));
    this.retired.clear();
  }

  // ---- AdminSource ---------------------------------------------------------------------------

  stats(): StatSample[] {
    const samples = this.store.samples();
    // Metrics of the same name from several VMs are one stat, as in Envoy's stats store.
    const custom = new Map<string, StatSample>();
    const plugins = new Set(this.generation.plugins);
    for (const plugin of plugins) {
      const prefix = `wasm_filter.${plugin.spec.name || "unnamed"}.`;
      samples.push({ name: `${prefix}traps`, value: plugin.failures.traps, kind: "counter" });
    }
    for (const metrics of new Set([...plugins].map((plugin) => plugin.metrics))) {
      for (const metric of metrics.all()) {
        const name = `${WASM_CUSTOM_NAMESPACE}${metric.name}`;
        const existing = custom.get(name);
        if (existing === undefined) custom.set(name, { name, value: metric.value, kind: metric.kind === "counter" ? "counter" : "gauge" });
        else existing.value = BigInt(existing.value) + metric.value;
      }
    }
    samples.push(...custom.values());
    return samples;
  }

  clusterStatuses(): ClusterStatus[] {
    return [...this.generation.clusters.values()].map((cluster) => ({ name: cluster.config.name, hosts: cluster.hostStatuses() }));
  }

  /**
   * Envoy's /config_dump shape (envoy.admin.v3.ConfigDump) for a static bootstrap: the bootstrap,
   * its clusters and its listeners, with the configuration's digest as version_info.
   */
  configDump(resource: string | undefined): object | undefined {
    const { config, loadedAt } = this.generation;
    const lastUpdated = loadedAt.toISOString();
    const resources = (config.document.static_resources ?? {}) as { listeners?: object[]; clusters?: object[] };
    const staticListeners = (resources.listeners ?? []).map((listener) => ({
      "@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump.StaticListener",
      listener: { "@type": "type.googleapis.com/envoy.config.listener.v3.Listener", ...listener }, last_updated: lastUpdated,
    }));
    const staticClusters = (resources.clusters ?? []).map((cluster) => ({
      "@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump.StaticCluster",
      cluster: { "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", ...cluster }, last_updated: lastUpdated,
    }));
    if (resource === "static_listeners") return { configs: staticListeners };
    if (resource === "static_clusters") return { configs: staticClusters };
    if (resource !== undefined) return undefined;
    return {
      configs: [
        { "@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump", bootstrap: config.document, last_updated: lastUpdated },
        { "@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump", version_info: config.version,
          static_clusters: staticClusters.map(({ cluster, last_updated }) => ({ cluster, last_updated })) },
        { "@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump", version_info: config.version,
          static_listeners: staticListeners.map(({ listener, last_updated }) => ({ listener, last_updated })) },
      ],
    };
  }

  live(): boolean {
    return !this.draining;
  }

  drainListeners(): void {
    this.listenersDrained = true;
    this.stopListening();
  }

  quit(): void {
    void this.close().then(() => this.options.onQuit?.());
  }

  setWasmLogLevel(level: LogLevelName): void {
    this.wasmLogLevel = level;
    for (const generation of [this.generation, ...this.retired]) {
      for (const plugin of generation.plugins) plugin.setLogLevel(level);
    }
  }

  tagNames(): TagNames {
    const { config } = this.generation;
    return {
      clusters: config.clusters.map((c) => c.name),
      listeners: config.listeners.map((l) => listenerStatName(l.address.address, l.address.port)),
      tcpPrefixes: config.listeners.map((l) => l.tcpProxy?.statPrefix ?? l.http?.statPrefix ?? ""),
    };
  }
}
