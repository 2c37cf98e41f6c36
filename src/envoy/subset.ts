// Turns a validated bootstrap into the runner's model, refusing — by path — every field the
// runner does not implement: a config that would behave differently here than in Envoy must
// not start quietly.
import { resolve } from "node:path";
import { type Json, type Problem, type JsonObject } from "./errors.js";
import type { EnvoyApi } from "./protos.js";
import { configurationBytes } from "./wasm-config.js";
import type {
  AccessLogConfig, AdminConfig, ClusterConfig, ClusterType, DnsLookupFamily, HttpConfig, HttpRoute, ListenerConfig, ListenerFilterName, ProxyProtocolRule, RunnerConfig,
  SocketAddressConfig, TcpProxyConfig, WasmPluginConfig,
} from "./model.js";


const TYPE = {
  wasm: "envoy.extensions.filters.network.wasm.v3.Wasm",
  wasmService: "envoy.extensions.wasm.v3.WasmService",
  httpConnectionManager: "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
  httpWasm: "envoy.extensions.filters.http.wasm.v3.Wasm",
  router: "envoy.extensions.filters.http.router.v3.Router",
  tcpProxy: "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
  tlsInspector: "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
  proxyProtocol: "envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol",
  originalDst: "envoy.extensions.filters.listener.original_dst.v3.OriginalDst",
  upstreamProxyProtocol: "envoy.extensions.transport_sockets.proxy_protocol.v3.ProxyProtocolUpstreamTransport",
  rawBuffer: "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer",
  fileLog: "envoy.extensions.access_loggers.file.v3.FileAccessLog",
  stdoutLog: "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
  stderrLog: "envoy.extensions.access_loggers.stream.v3.StderrAccessLog",
} as const;

const LISTENER_FILTERS: Record<string, ListenerFilterName> = {
  [TYPE.tlsInspector]: "tls_inspector",
  [TYPE.proxyProtocol]: "proxy_protocol",
  [TYPE.originalDst]: "original_dst",
};

/** Envoy's documented default access log format for TCP (docs: access_log/usage). */
export const DEFAULT_ACCESS_LOG_FORMAT =
  "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% " +
  "%BYTES_RECEIVED% %BYTES_SENT% %DURATION% \"%UPSTREAM_HOST%\"\n";

export function durationMs(value: Json | undefined, fallback: number): number {
  if (typeof value !== "string") return fallback;
  return Math.round(Number(value.slice(0, -1)) * 1000);
}

export class SubsetReader {
  readonly problems: Problem[] = [];

  constructor(private readonly source: string, private readonly api: EnvoyApi) {}

  read(bootstrap: JsonObject): Omit<RunnerConfig, "document" | "version"> {
    this.only(bootstrap, "", ["static_resources", "admin", "node", "cluster_manager", "bootstrap_extensions"]);
    // An empty cluster_manager (as many examples write) changes nothing.
    if (bootstrap.cluster_manager != null) this.only(this.object(bootstrap.cluster_manager, "cluster_manager"), "cluster_manager", []);
    const resources = this.object(bootstrap.static_resources, "static_resources");
    this.only(resources, "static_resources", ["listeners", "clusters"]);
    const listeners = this.list(resources.listeners, "static_resources.listeners")
      .map((listener, i) => this.listener(listener as JsonObject, `static_resources.listeners[${i}]`));
    const clusters = this.list(resources.clusters, "static_resources.clusters")
      .map((cluster, i) => this.cluster(cluster as JsonObject, `static_resources.clusters[${i}]`));
    let admin: AdminConfig | undefined;
    if (bootstrap.admin != null) {
      const adminConfig = this.object(bootstrap.admin, "admin");
      this.only(adminConfig, "admin", ["address", "access_log_path"]);
      admin = {
        address: this.socketAddress(adminConfig.address, "admin.address"),
        accessLogPath: typeof adminConfig.access_log_path === "string" ? adminConfig.access_log_path : undefined,
      };
    }
    const wasmServices = this.list(bootstrap.bootstrap_extensions, "bootstrap_extensions").map((entry, i) => {
      const path = `bootstrap_extensions[${i}]`;
      this.only(entry as JsonObject, path, ["name", "typed_config"]);
      const { type, config } = this.typed(entry as JsonObject, path);
      if (type !== TYPE.wasmService) {
        this.refuse(`${path}.typed_config.@type`, `bootstrap extension ${type} is not supported by the local runner (supported: ${TYPE.wasmService})`);
        return undefined;
      }
      this.only(config, `${path}.typed_config`, ["@type", "config", "singleton"]);
      return { ...this.wasm({ "@type": type, config: config.config ?? null }, `${path}.typed_config`), singleton: config.singleton === true };
    }).filter((service) => service !== undefined);
    const names = new Set<string>();
    clusters.forEach((cluster, i) => {
      if (names.has(cluster.name)) this.refuse(`static_resources.clusters[${i}].name`, `duplicate cluster name '${cluster.name}'`);
      names.add(cluster.name);
    });
    return { source: this.source, listeners, clusters, admin, wasmServices };
  }

  private refuse(path: string, message: string): void {
    this.problems.push({ path, message, severity: "error" });
  }

  private only(value: JsonObject, path: string, supported: string[]): void {
    for (const key of Object.keys(value)) {
      if (!supported.includes(key) && value[key] !== null) {
        this.refuse(path === "" ? key : `${path}.${key}`, "not supported by the local runner (supported here: " + supported.join(", ") + ")");
      }
    }
  }

  private object(value: Json | undefined, path: string): JsonObject {
    if (value === undefined || value === null || typeof value !== "object" || Array.isArray(value)) {
      this.refuse(path, "is required");
      return {};
    }
    return value;
  }

  private list(value: Json | undefined, path: string): Json[] {
    return Array.isArray(value) ? value : (value == null ? [] : (this.refuse(path, "expected a list"), []));
  }

  private socketAddress(value: Json | undefined, path: string): SocketAddressConfig {
    const address = this.object(value, path);
    this.only(address, path, ["socket_address"]);
    const socket = this.object(address.socket_address, `${path}.socket_address`);
    this.only(socket, `${path}.socket_address`, ["address", "port_value", "protocol"]);
    if (socket.protocol != null && socket.protocol !== "TCP") this.refuse(`${path}.socket_address.protocol`, "only TCP is supported");
    if (typeof socket.address !== "string") this.refuse(`${path}.socket_address.address`, "is required");
    return { address: String(socket.address ?? ""), port: Number(socket.port_value ?? 0) };
  }

  private typed(value: JsonObject, path: string): { type: string; config: JsonObject } {
    const config = this.object(value.typed_config, `${path}.typed_config`);
    return { type: String(config["@type"] ?? ""), config };
  }

  private listener(listener: JsonObject, path: string): ListenerConfig {
    this.only(listener, path, ["name", "address", "listener_filters", "filter_chains", "traffic_direction", "per_connection_buffer_limit_bytes"]);
    const listenerFilters: ListenerFilterName[] = [];
    let allowWithoutProxyProtocol = false;
    let proxyProtocolRules: ProxyProtocolRule[] = [];
    this.list(listener.listener_filters, `${path}.listener_filters`).forEach((entry, i) => {
      const filterPath = `${path}.listener_filters[${i}]`;
      const filter = entry as JsonObject;
      this.only(filter, filterPath, ["name", "typed_config"]);
      const { type, config } = this.typed(filter, filterPath);
      const name = LISTENER_FILTERS[type];
      if (name === undefined) {
        this.refuse(`${filterPath}.typed_config.@type`, `listener filter ${type} is not supported by the local runner (supported: ${Object.keys(LISTENER_FILTERS).join(", ")})`);
        return;
      }
      this.only(config, `${filterPath}.typed_config`, name === "proxy_protocol" ? ["@type", "allow_requests_without_proxy_protocol", "rules"] : ["@type"]);
      if (name === "proxy_protocol") {
        allowWithoutProxyProtocol = config.allow_requests_without_proxy_protocol === true;
        proxyProtocolRules = this.list(config.rules, `${filterPath}.typed_config.rules`).map((rule) => {
          // The API's own validation (PGV, min_len on key, tlv_type < 256) has run before this.
          const present = ((rule as JsonObject).on_tlv_present ?? {}) as JsonObject;
          return { tlvType: Number((rule as JsonObject).tlv_type ?? 0), namespace: String(present.metadata_namespace ?? ""), key: String(present.key ?? "") };
        });
      }
      listenerFilters.push(name);
    });
    const chains = this.list(listener.filter_chains, `${path}.filter_chains`);
    if (chains.length !== 1) this.refuse(`${path}.filter_chains`, `the local runner serves exactly one filter chain per listener, found ${chains.length}`);
    const chainPath = `${path}.filter_chains[0]`;
    const chain = (chains[0] ?? {}) as JsonObject;
    this.only(chain, chainPath, ["name", "filters"]);
    const filters = this.list(chain.filters, `${chainPath}.filters`);
    const wasmFilters: WasmPluginConfig[] = [];
    let tcpProxy: TcpProxyConfig | undefined;
    let http: HttpConfig | undefined;
    filters.forEach((entry, i) => {
      const filterPath = `${chainPath}.filters[${i}]`;
      const filter = entry as JsonObject;
      this.only(filter, filterPath, ["name", "typed_config"]);
      const { type, config } = this.typed(filter, filterPath);
      const last = i === filters.length - 1;
      if (type === TYPE.wasm && !last) {
        wasmFilters.push(this.wasm(config, `${filterPath}.typed_config`));
      } else if (type === TYPE.tcpProxy && last) {
        tcpProxy = this.tcpProxy(config, `${filterPath}.typed_config`);
      } else if (type === TYPE.httpConnectionManager && last) {
        http = this.httpConnectionManager(config, `${filterPath}.typed_config`);
      } else {
        this.refuse(`${filterPath}.typed_config.@type`, `${type} here is not supported by the local runner: a chain is envoy.filters.network.wasm filters followed by a terminal tcp_proxy or http_connection_manager`);
      }
    });
    if (tcpProxy === undefined && http === undefined) this.refuse(`${chainPath}.filters`, "must end with envoy.filters.network.tcp_proxy or envoy.filters.network.http_connection_manager");
    return {
      name: String(listener.name ?? `listener_${path}`),
      address: this.socketAddress(listener.address, `${path}.address`),
      listenerFilters,
      allowWithoutProxyProtocol,
      proxyProtocolRules,
      perConnectionBufferLimitBytes: typeof listener.per_connection_buffer_limit_bytes === "number" ? listener.per_connection_buffer_limit_bytes : undefined,
      wasmFilters,
      tcpProxy,
      http,
    };
  }

  private httpConnectionManager(config: JsonObject, path: string): HttpConfig {
    this.only(config, path, ["@type", "stat_prefix", "codec_type", "route_config", "http_filters", "access_log", "stream_idle_timeout", "common_http_protocol_options"]);
    const protocol = (config.common_http_protocol_options ?? {}) as JsonObject;
    this.only(protocol, `${path}.common_http_protocol_options`, ["idle_timeout"]);
    if (config.codec_type != null && config.codec_type !== "AUTO" && config.codec_type !== "HTTP1") {
      this.refuse(`${path}.codec_type`, "the local runner speaks HTTP/1.1 only (AUTO or HTTP1)");
    }
    const routeConfig = this.object(config.route_config, `${path}.route_config`);
    this.only(routeConfig, `${path}.route_config`, ["name", "virtual_hosts"]);
    const virtualHosts = this.list(routeConfig.virtual_hosts, `${path}.route_config.virtual_hosts`).map((entry, i) => {
      const hostPath = `${path}.route_config.virtual_hosts[${i}]`;
      const host = entry as JsonObject;
      this.only(host, hostPath, ["name", "domains", "routes"]);
      return {
        name: String(host.name ?? ""),
        domains: this.list(host.domains, `${hostPath}.domains`).map((d) => String(d).toLowerCase()),
        routes: this.list(host.routes, `${hostPath}.routes`).map((route, k) => this.httpRoute(route as JsonObject, `${hostPath}.routes[${k}]`)),
      };
    });
    const filters = this.list(config.http_filters, `${path}.http_filters`);
    const wasmFilters: WasmPluginConfig[] = [];
    filters.forEach((entry, i) => {
      const filterPath = `${path}.http_filters[${i}]`;
      const filter = entry as JsonObject;
      this.only(filter, filterPath, ["name", "typed_config"]);
      const { type, config: filterConfig } = this.typed(filter, filterPath);
      const last = i === filters.length - 1;
      if (type === TYPE.httpWasm && !last) wasmFilters.push(this.wasm(filterConfig, `${filterPath}.typed_config`));
      else if (type === TYPE.router && last) this.only(filterConfig, `${filterPath}.typed_config`, ["@type"]);
      else this.refuse(`${filterPath}.typed_config.@type`, `${type} here is not supported by the local runner: envoy.filters.http.wasm filters, then envoy.filters.http.router last`);
    });
    if (filters.length === 0) this.refuse(`${path}.http_filters`, "needs envoy.filters.http.router last");
    return {
      statPrefix: String(config.stat_prefix ?? ""),
      virtualHosts,
      wasmFilters,
      accessLogs: this.list(config.access_log, `${path}.access_log`).map((entry, i) => this.accessLog(entry as JsonObject, `${path}.access_log[${i}]`)),
      // Envoy's defaults (http_connection_manager.proto, protocol.proto).
      streamIdleTimeoutMs: durationMs(config.stream_idle_timeout, 300_000),
      idleTimeoutMs: durationMs(protocol.idle_timeout, 3_600_000),
    };
  }

  private httpRoute(route: JsonObject, path: string): HttpRoute {
    this.only(route, path, ["name", "match", "route"]);
    const match = this.object(route.match, `${path}.match`);
    this.only(match, `${path}.match`, ["prefix", "path", "headers"]);
    const headers = this.list(match.headers, `${path}.match.headers`).map((entry, i) => {
      const header = entry as JsonObject;
      const headerPath = `${path}.match.headers[${i}]`;
      this.only(header, headerPath, ["name", "exact_match", "present_match", "string_match"]);
      let exact = typeof header.exact_match === "string" ? header.exact_match : undefined;
      if (header.string_match != null) {
        const stringMatch = header.string_match as JsonObject;
        this.only(stringMatch, `${headerPath}.string_match`, ["exact"]);
        exact = String(stringMatch.exact ?? "");
      }
      return { name: String(header.name).toLowerCase(), exact, present: header.present_match === true };
    });
    const action = this.object(route.route, `${path}.route`);
    this.only(action, `${path}.route`, ["cluster", "cluster_header", "timeout"]);
    return {
      prefix: typeof match.prefix === "string" ? match.prefix : undefined,
      path: typeof match.path === "string" ? match.path : undefined,
      headers,
      cluster: typeof action.cluster === "string" ? action.cluster : undefined,
      clusterHeader: typeof action.cluster_header === "string" ? action.cluster_header.toLowerCase() : undefined,
      // route.proto: "If not specified, the default is 15s"; 0s disables it.
      timeoutMs: durationMs(action.timeout, 15_000),
    };
  }

  private wasm(config: JsonObject, path: string): WasmPluginConfig {
    this.only(config, path, ["@type", "config"]);
    const plugin = this.object(config.config, `${path}.config`);
    const pluginPath = `${path}.config`;
    this.only(plugin, pluginPath, ["name", "root_id", "vm_config", "configuration", "fail_open"]);
    const vm = this.object(plugin.vm_config, `${pluginPath}.vm_config`);
    const vmPath = `${pluginPath}.vm_config`;
    this.only(vm, vmPath, ["vm_id", "runtime", "code", "configuration", "allow_precompiled"]);
    if (vm.runtime != null && vm.runtime !== "envoy.wasm.runtime.v8" && vm.runtime !== "") {
      this.refuse(`${vmPath}.runtime`, `the local runner runs modules on V8 only (envoy.wasm.runtime.v8), got '${String(vm.runtime)}'`);
    }
    const code = this.object(vm.code, `${vmPath}.code`);
    this.only(code, `${vmPath}.code`, ["local"]);
    const local = this.object(code.local, `${vmPath}.code.local`);
    this.only(local, `${vmPath}.code.local`, ["filename", "inline_bytes", "inline_string"]);
    const inlineCode = typeof local.inline_bytes === "string" ? Buffer.from(local.inline_bytes, "base64")
      : typeof local.inline_string === "string" ? Buffer.from(local.inline_string) : undefined;
    // Like Envoy, a relative filename is relative to the working directory, not to the YAML file.
    const filename = typeof local.filename === "string" ? resolve(local.filename) : undefined;
    if (filename === undefined && inlineCode === undefined) this.refuse(`${vmPath}.code.local`, "needs filename, inline_bytes or inline_string");
    return {
      name: String(plugin.name ?? ""),
      rootId: String(plugin.root_id ?? ""),
      vmId: String(vm.vm_id ?? ""),
      filename,
      inlineCode,
      configuration: configurationBytes(plugin.configuration, this.api),
      vmConfiguration: configurationBytes(vm.configuration, this.api),
      failOpen: plugin.fail_open === true,
      path,
    };
  }

  private tcpProxy(config: JsonObject, path: string): TcpProxyConfig {
    this.only(config, path, ["@type", "stat_prefix", "cluster", "weighted_clusters", "idle_timeout", "max_connect_attempts", "access_log"]);
    let weightedClusters: TcpProxyConfig["weightedClusters"];
    if (config.weighted_clusters != null) {
      const weighted = config.weighted_clusters as JsonObject;
      this.only(weighted, `${path}.weighted_clusters`, ["clusters"]);
      weightedClusters = this.list(weighted.clusters, `${path}.weighted_clusters.clusters`).map((entry, i) => {
        const cluster = entry as JsonObject;
        this.only(cluster, `${path}.weighted_clusters.clusters[${i}]`, ["name", "weight"]);
        return { name: String(cluster.name), weight: Number(cluster.weight ?? 0) };
      });
    }
    if (config.cluster == null && weightedClusters === undefined) this.refuse(`${path}`, "needs cluster or weighted_clusters");
    return {
      statPrefix: String(config.stat_prefix ?? ""),
      cluster: typeof config.cluster === "string" ? config.cluster : undefined,
      weightedClusters,
      // Envoy's default idle timeout is one hour; 0s disables it.
      idleTimeoutMs: durationMs(config.idle_timeout, 3_600_000),
      maxConnectAttempts: Number(config.max_connect_attempts ?? 1),
      accessLogs: this.list(config.access_log, `${path}.access_log`)
        .map((entry, i) => this.accessLog(entry as JsonObject, `${path}.access_log[${i}]`)),
    };
  }

  private accessLog(entry: JsonObject, path: string): AccessLogConfig {
    this.only(entry, path, ["name", "typed_config"]);
    const { type, config } = this.typed(entry, path);
    const configPath = `${path}.typed_config`;
    const streams: Record<string, string> = { [TYPE.stdoutLog]: "/dev/stdout", [TYPE.stderrLog]: "/dev/stderr" };
    if (type !== TYPE.fileLog && streams[type] === undefined) {
      this.refuse(`${configPath}.@type`, `access logger ${type} is not supported by the local runner`);
      return { path: "/dev/null", format: DEFAULT_ACCESS_LOG_FORMAT };
    }
    this.only(config, configPath, type === TYPE.fileLog ? ["@type", "path", "log_format", "format"] : ["@type", "log_format"]);
    let format = typeof config.format === "string" ? config.format : DEFAULT_ACCESS_LOG_FORMAT;
    if (config.log_format != null) {
      const logFormat = config.log_format as JsonObject;
      this.only(logFormat, `${configPath}.log_format`, ["text_format_source", "text_format"]);
      const source = logFormat.text_format_source as JsonObject | null | undefined;
      if (source != null) {
        this.only(source, `${configPath}.log_format.text_format_source`, ["inline_string"]);
        format = String(source.inline_string ?? "");
      } else if (typeof logFormat.text_format === "string") {
        format = logFormat.text_format;
      }
    }
    return { path: streams[type] ?? String(config.path), format };
  }

  private cluster(cluster: JsonObject, path: string): ClusterConfig {
    this.only(cluster, path, ["name", "type", "connect_timeout", "lb_policy", "load_assignment", "transport_socket",
      "dns_refresh_rate", "dns_lookup_family"]);
    const type = String(cluster.type ?? "STATIC") as ClusterType;
    if (!["STATIC", "STRICT_DNS", "LOGICAL_DNS", "ORIGINAL_DST"].includes(type)) {
      this.refuse(`${path}.type`, `cluster type ${type} is not supported by the local runner`);
    }
    const lbPolicy = String(cluster.lb_policy ?? "ROUND_ROBIN");
    const expectedPolicy = type === "ORIGINAL_DST" ? "CLUSTER_PROVIDED" : "ROUND_ROBIN";
    if (lbPolicy !== expectedPolicy && !(type !== "ORIGINAL_DST" && lbPolicy === "ROUND_ROBIN")) {
      this.refuse(`${path}.lb_policy`, `the local runner supports ${expectedPolicy} for ${type} clusters, got ${lbPolicy}`);
    }
    const endpoints: SocketAddressConfig[] = [];
    if (cluster.load_assignment != null) {
      const assignment = cluster.load_assignment as JsonObject;
      const assignmentPath = `${path}.load_assignment`;
      this.only(assignment, assignmentPath, ["cluster_name", "endpoints"]);
      this.list(assignment.endpoints, `${assignmentPath}.endpoints`).forEach((locality, i) => {
        const localityPath = `${assignmentPath}.endpoints[${i}]`;
        this.only(locality as JsonObject, localityPath, ["lb_endpoints"]);
        this.list((locality as JsonObject).lb_endpoints, `${localityPath}.lb_endpoints`).forEach((lbEndpoint, k) => {
          const lbPath = `${localityPath}.lb_endpoints[${k}]`;
          this.only(lbEndpoint as JsonObject, lbPath, ["endpoint"]);
          const endpoint = this.object((lbEndpoint as JsonObject).endpoint, `${lbPath}.endpoint`);
          this.only(endpoint, `${lbPath}.endpoint`, ["address"]);
          endpoints.push(this.socketAddress(endpoint.address, `${lbPath}.endpoint.address`));
        });
      });
    }
    if (type === "ORIGINAL_DST" && endpoints.length > 0) this.refuse(`${path}.load_assignment`, "an ORIGINAL_DST cluster takes no endpoints");
    if (type !== "ORIGINAL_DST" && endpoints.length === 0) this.refuse(`${path}.load_assignment`, `a ${type} cluster needs endpoints`);
    return {
      name: String(cluster.name ?? ""),
      type,
      connectTimeoutMs: durationMs(cluster.connect_timeout, 5000),
      endpoints,
      dnsRefreshMs: durationMs(cluster.dns_refresh_rate, 5000),
      dnsLookupFamily: String(cluster.dns_lookup_family ?? "AUTO") as DnsLookupFamily,
      upstreamProxyProtocol: this.transportSocket(cluster.transport_socket, `${path}.transport_socket`),
    };
  }

  private transportSocket(value: Json | undefined, path: string): "V1" | "V2" | undefined {
    if (value == null) return undefined;
    const socket = value as JsonObject;
    this.only(socket, path, ["name", "typed_config"]);
    const { type, config } = this.typed(socket, path);
    if (type === TYPE.rawBuffer) return undefined;
    if (type !== TYPE.upstreamProxyProtocol) {
      this.refuse(`${path}.typed_config.@type`, `transport socket ${type} is not supported by the local runner`);
      return undefined;
    }
    const configPath = `${path}.typed_config`;
    this.only(config, configPath, ["@type", "config", "transport_socket"]);
    const proxy = (config.config ?? {}) as JsonObject;
    this.only(proxy, `${configPath}.config`, ["version"]);
    const inner = config.transport_socket as JsonObject | undefined;
    if (inner != null && this.typed(inner, `${configPath}.transport_socket`).type !== TYPE.rawBuffer) {
      this.refuse(`${configPath}.transport_socket`, "the local runner wraps only raw_buffer in the PROXY protocol socket");
    }
    return proxy.version === "V2" ? "V2" : "V1";
  }
}
