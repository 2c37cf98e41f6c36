// Drives a proxy-wasm network filter in-process, without sockets: load a module with a
// configuration, open connections with chosen addresses and SNI, feed data, close, and read
// back what the filter did (filter state, logs, metrics, buffer edits, closes).
import { readFile } from "node:fs/promises";
import type { LogLevelName } from "./abi.js";
import type { ForeignResult } from "./context.js";
import { HttpFilterSession, type LocalResponse } from "./http-filter.js";
import { NetworkFilterSession, type DataResult, type FilterStatus } from "./network-filter.js";
import { Plugin, type LogRecord } from "./plugin.js";
import { parseEndpoint } from "./properties.js";

export { parseEndpoint };

export interface HarnessOptions {
  /** Path to a .wasm file, or the module's bytes. */
  module: string | Uint8Array;
  configuration?: string;
  vmConfiguration?: string;
  name?: string;
  rootId?: string;
  failOpen?: boolean;
  logLevel?: LogLevelName;
}

export interface ConnectionOptions {
  /** `IP:PORT` or `[IPv6]:PORT`. */
  source: string;
  destination?: string;
  serverName?: string;
  /** Dynamic metadata, namespace → key → value, as the proxy_protocol listener filter's TLV rules write it. */
  metadata?: Record<string, Record<string, string>>;
  /** Filter state already on the connection (from an earlier filter), key → value. */
  filterState?: Record<string, string>;
  /** Raw property values that replace what the connection would report (path joined with '.'); null removes one. */
  properties?: Record<string, string | Buffer | null>;
  /** Sees each foreign call; returning a result replaces the host's answer (e.g. to make it fail). */
  onForeignCall?: (name: string, args: Buffer) => ForeignResult | undefined;
}

export class HarnessConnection {
  readonly status: FilterStatus;
  /** Why the filter closed the connection, if it did. */
  closedReason: string | undefined;
  continueCount = 0;
  private readonly session: NetworkFilterSession;

  constructor(plugin: Plugin, connectionId: number, options: ConnectionOptions) {
    this.session = new NetworkFilterSession(plugin, {
      connectionId,
      source: parseEndpoint(options.source),
      destination: parseEndpoint(options.destination ?? "127.0.0.1:443"),
      serverName: options.serverName ?? "",
      mtls: false,
      dynamicMetadata: new Map(Object.entries(options.metadata ?? {}).map(([namespace, fields]) => [namespace, new Map(Object.entries(fields))])),
    }, {
      close: (reason) => {
        this.closedReason ??= reason;
      },
      continueReading: () => {
        this.continueCount++;
      },
    }, new Map(Object.entries(options.filterState ?? {})));
    for (const [key, value] of Object.entries(options.properties ?? {})) {
      this.session.overrideProperty(key, value === null ? null : Buffer.from(value));
    }
    this.session.foreignCallHook = options.onForeignCall;
    this.status = this.closedReason === undefined ? this.session.onNewConnection() : "pause";
  }

  /** The cluster the filter chose for tcp_proxy (filter state envoy.tcp_proxy.cluster). */
  get cluster(): string | undefined {
    return this.session.clusterOverride;
  }

  get filterState(): ReadonlyMap<string, string> {
    return this.session.filterState;
  }

  downstream(data: string | Buffer, endOfStream = false): DataResult {
    return this.session.onDownstreamData(Buffer.from(data), endOfStream);
  }

  /** Data from the upstream; with endOfStream the upstream close follows, peer Unknown, as Envoy calls it. */
  upstream(data: string | Buffer, endOfStream = false): DataResult {
    const result = this.session.onUpstreamData(Buffer.from(data), endOfStream);
    if (endOfStream) this.session.onUpstreamClose("unknown");
    return result;
  }

  /** Closes as a peer would: the downstream close event, then done, log and delete. */
  close(peer: "local" | "remote" = "remote"): void {
    this.session.onDownstreamClose(peer);
    this.session.finish();
  }
}

export interface RequestOptions {
  /** `IP:PORT` of the client. */
  source: string;
  destination?: string;
  method?: string;
  path?: string;
  authority?: string;
  /** More request headers, lower-case names. */
  headers?: Record<string, string>;
  filterState?: Record<string, string>;
}

/** What an HTTP filter did with one request's headers. */
export interface HarnessRequest {
  status: FilterStatus;
  /** The request headers after the filter (the cluster header it wrote, say). */
  headers: [string, string][];
  /** The filter answered the request itself. */
  localResponse: LocalResponse | undefined;
  filterState: ReadonlyMap<string, string>;
}

export class FilterHarness {
  readonly logs: LogRecord[] = [];
  private nextConnectionId = 1;
  private plugin!: Plugin;

  private constructor() {}

  /** Loads and configures the module; throws PluginConfigError when Envoy would reject it. */
  static async load(options: HarnessOptions): Promise<FilterHarness> {
    const harness = new FilterHarness();
    const code = typeof options.module === "string" ? await readFile(options.module) : options.module;
    harness.plugin = await Plugin.load({
      name: options.name ?? "harness",
      rootId: options.rootId ?? "",
      vmId: "",
      source: typeof options.module === "string" ? options.module : "inline",
      code,
      configuration: Buffer.from(options.configuration ?? ""),
      vmConfiguration: Buffer.from(options.vmConfiguration ?? ""),
      failOpen: options.failOpen ?? false,
    }, { log: (record) => harness.logs.push(record), logLevel: options.logLevel ?? "trace" });
    return harness;
  }

  connect(options: ConnectionOptions): HarnessConnection {
    return new HarnessConnection(this.plugin, this.nextConnectionId++, options);
  }

  /**
   * One HTTP request's headers through the module as an HTTP filter (envoy.filters.http.wasm),
   * with the pseudo-headers the connection manager gives it; the request then ends.
   */
  request(options: RequestOptions): HarnessRequest {
    const headers: [string, string][] = [[":method", options.method ?? "GET"], [":path", options.path ?? "/"],
      [":authority", options.authority ?? "localhost"], [":scheme", "http"], ...Object.entries(options.headers ?? {})];
    let localResponse: LocalResponse | undefined;
    const filterState = new Map(Object.entries(options.filterState ?? {}));
    const session = new HttpFilterSession(this.plugin, {
      connectionId: this.nextConnectionId++,
      source: parseEndpoint(options.source),
      destination: parseEndpoint(options.destination ?? "127.0.0.1:80"),
      serverName: "",
      mtls: false,
    }, headers, { respond: (response) => (localResponse ??= response), continueRequest: () => undefined }, filterState);
    const status = session.onRequestHeaders(true);
    session.finish();
    return { status, headers, localResponse, filterState };
  }

  /** Configures `configuration` on a fresh root context in the same VM; throws PluginConfigError when refused. */
  checkConfiguration(configuration: string): void {
    this.plugin.checkConfiguration(Buffer.from(configuration));
  }

  /** A value the module stored with proxy_set_shared_data. */
  sharedData(key: string): Buffer | undefined {
    return this.plugin.sharedData(key);
  }

  /** Current value of a metric the module defined, by name (a number: counters stay far below 2^53). */
  metric(name: string): number | undefined {
    const value = this.plugin.metrics.byMetricName(name)?.value;
    return value === undefined ? undefined : Number(value);
  }

  /** Every metric the module defined, by name. */
  metrics(): Record<string, number> {
    return Object.fromEntries(this.plugin.metrics.names().map((name) => [name, this.metric(name) ?? 0]));
  }

  get failures(): Plugin["failures"] {
    return this.plugin.failures;
  }

  /** Bytes of linear memory the module's current VM holds. */
  get memoryBytes(): number {
    return this.plugin.vm()?.vm.memory.byteLength ?? 0;
  }

  close(): void {
    this.plugin.close();
  }
}
