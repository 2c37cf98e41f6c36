// The subset of an Envoy bootstrap the local runner implements, after validation (subset.ts).

export interface SocketAddressConfig {
  address: string;
  port: number;
}

export interface WasmPluginConfig {
  name: string;
  rootId: string;
  vmId: string;
  /** The module file, or undefined for inline code. */
  filename: string | undefined;
  inlineCode: Buffer | undefined;
  configuration: Buffer;
  vmConfiguration: Buffer;
  failOpen: boolean;
  /** Where in the YAML this filter is, for messages. */
  path: string;
}

/** A bootstrap Wasm service (envoy.bootstrap.wasm). */
export interface WasmServiceConfig extends WasmPluginConfig {
  /**
   * A singleton runs on Envoy's main thread, in a VM of its own; otherwise the service runs in each
   * worker's VM of its vm key, shared with the filters (extensions/bootstrap/wasm/config.cc).
   */
  singleton: boolean;
}

export interface AccessLogConfig {
  /** A file path, or "/dev/stdout" / "/dev/stderr" for the stream loggers. */
  path: string;
  format: string;
}

export interface WeightedCluster {
  name: string;
  weight: number;
}

export interface TcpProxyConfig {
  statPrefix: string;
  cluster: string | undefined;
  weightedClusters: WeightedCluster[] | undefined;
  idleTimeoutMs: number;
  maxConnectAttempts: number;
  accessLogs: AccessLogConfig[];
}

export interface HttpRoute {
  /** One of prefix or path is set. */
  prefix: string | undefined;
  path: string | undefined;
  headers: { name: string; exact: string | undefined; present: boolean }[];
  /** One of cluster or clusterHeader is set. */
  cluster: string | undefined;
  clusterHeader: string | undefined;
  /** route.timeout: from the end of the request to the end of the response (default 15 s; 0: none). */
  timeoutMs: number;
}

export interface VirtualHost {
  name: string;
  domains: string[];
  routes: HttpRoute[];
}

/** The subset of envoy.filters.network.http_connection_manager the runner implements (HTTP/1.1). */
export interface HttpConfig {
  statPrefix: string;
  virtualHosts: VirtualHost[];
  /** envoy.filters.http.wasm filters, in order, before the terminal router. */
  wasmFilters: WasmPluginConfig[];
  accessLogs: AccessLogConfig[];
  /** stream_idle_timeout: a request with no byte either way this long ends (default 5 min; 0: none). */
  streamIdleTimeoutMs: number;
  /** common_http_protocol_options.idle_timeout: a connection with no request this long closes (default 1 h). */
  idleTimeoutMs: number;
}

export type ListenerFilterName = "tls_inspector" | "proxy_protocol" | "original_dst";

/** proxy_protocol's rules: a TLV of this type goes into dynamic metadata NAMESPACE.KEY ("" namespace: the filter's own). */
export interface ProxyProtocolRule {
  tlvType: number;
  namespace: string;
  key: string;
}

export interface ListenerConfig {
  name: string;
  address: SocketAddressConfig;
  listenerFilters: ListenerFilterName[];
  /** proxy_protocol's allow_requests_without_proxy_protocol. */
  allowWithoutProxyProtocol: boolean;
  proxyProtocolRules: ProxyProtocolRule[];
  /** per_connection_buffer_limit_bytes, when set (0: no limit, as Envoy's watermark buffers). */
  perConnectionBufferLimitBytes: number | undefined;
  wasmFilters: WasmPluginConfig[];
  /** The terminal filter: tcp_proxy, or the HTTP connection manager. */
  tcpProxy: TcpProxyConfig | undefined;
  http: HttpConfig | undefined;
}

export type ClusterType = "STATIC" | "STRICT_DNS" | "LOGICAL_DNS" | "ORIGINAL_DST";

/** Cluster.DnsLookupFamily: which address families a DNS endpoint resolves to. */
export type DnsLookupFamily = "AUTO" | "V4_ONLY" | "V6_ONLY" | "V4_PREFERRED" | "ALL";

export interface ClusterConfig {
  name: string;
  type: ClusterType;
  connectTimeoutMs: number;
  endpoints: SocketAddressConfig[];
  dnsRefreshMs: number;
  dnsLookupFamily: DnsLookupFamily;
  /** The upstream PROXY protocol transport socket's version, when the cluster has one. */
  upstreamProxyProtocol: "V1" | "V2" | undefined;
}

export interface AdminConfig {
  address: SocketAddressConfig;
  /** admin.access_log_path: one line per admin request. */
  accessLogPath: string | undefined;
}

export interface RunnerConfig {
  /** The file it came from. */
  source: string;
  listeners: ListenerConfig[];
  clusters: ClusterConfig[];
  admin: AdminConfig | undefined;
  /** bootstrap_extensions envoy.bootstrap.wasm: plugins with a root context and no stream (ticks, shared data). */
  wasmServices: WasmServiceConfig[];
  /** The validated bootstrap as JSON (for /config_dump). */
  document: { [key: string]: unknown };
  /** A digest of that document: what /config_dump shows as version_info. */
  version: string;
}
