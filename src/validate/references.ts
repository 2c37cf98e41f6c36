// Checks across a bootstrap that Envoy's per-message validation does not make, each reported at
// the path at fault:
// - filter order: a terminal network filter (tcp_proxy, http_connection_manager, ...) must be the
//   last of its chain, and the last must be terminal; the same for envoy.filters.http.router among
//   HTTP filters (Envoy refuses both: Config::Utility::validateTerminalFilters);
// - clusters named by tcp_proxy, routes, weighted_clusters, remote Wasm code and Wasmerang's policy
//   (the names the module defined counters for at configure, and `{dst_port}` templates matched
//   against the defined names): an error when nothing else can define clusters, a warning when
//   the bootstrap has a CDS source;
// - traps: weighted_clusters on a tcp_proxy behind Wasmerang (tcp_proxy then ignores the
//   envoy.tcp_proxy.cluster filter state: TcpProxy::Config::getRouteFromEntries picks a weighted
//   cluster first), and a policy matching server_names on a listener without tls_inspector (the
//   SNI is then never known, so those rules never match).
import { isJsonObject, type Json, type Problem, type JsonObject } from "../envoy/errors.js";
import { isWasmerang, WASM_TYPES, type CheckedWasmFilter } from "./wasm-filters.js";


const TCP_PROXY = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
const HTTP_CONNECTION_MANAGER = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const ROUTER = "envoy.extensions.filters.http.router.v3.Router";
const TLS_INSPECTOR = "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector";

/** Network filters Envoy's factories declare terminal (isTerminalFilterByProto). */
const TERMINAL_NETWORK_FILTERS = new Set([TCP_PROXY, HTTP_CONNECTION_MANAGER,
  "envoy.extensions.filters.network.redis_proxy.v3.RedisProxy",
  "envoy.extensions.filters.network.thrift_proxy.v3.ThriftProxy",
  "envoy.extensions.filters.network.direct_response.v3.Config",
  "envoy.extensions.filters.network.echo.v3.Echo",
  "envoy.extensions.filters.network.dubbo_proxy.v3.DubboProxy",
  "envoy.extensions.filters.network.rocketmq_proxy.v3.RocketmqProxy",
  "envoy.extensions.filters.network.generic_proxy.v3.GenericProxy",
]);

const CLUSTER_COUNTER = /^wasmerang\.cluster\.(.*)\.routed$/;


function list(value: Json | undefined): Json[] {
  return Array.isArray(value) ? value : [];
}

function typeOf(filter: Json | undefined): string | undefined {
  if (!isJsonObject(filter) || !isJsonObject(filter.typed_config)) return undefined;
  const type = filter.typed_config["@type"];
  return typeof type === "string" ? type : undefined;
}

interface ClusterReference {
  path: string;
  name: string;
}

export class ReferenceChecker {
  private readonly defined = new Set<string>();
  /** Each static cluster's discovery type (STATIC when unset, as Envoy defaults it). */
  private readonly clusterTypes = new Map<string, string>();
  private readonly hasCds: boolean;
  private readonly references: ClusterReference[] = [];

  constructor(private readonly bootstrap: JsonObject, private readonly wasm: CheckedWasmFilter[], private readonly problems: Problem[]) {
    const resources = isJsonObject(bootstrap.static_resources) ? bootstrap.static_resources : {};
    for (const cluster of list(resources.clusters)) {
      if (!isJsonObject(cluster) || typeof cluster.name !== "string") continue;
      this.defined.add(cluster.name);
      this.clusterTypes.set(cluster.name, typeof cluster.type === "string" ? cluster.type : "STATIC");
    }
    const dynamic = isJsonObject(bootstrap.dynamic_resources) ? bootstrap.dynamic_resources : {};
    this.hasCds = dynamic.cds_config != null || dynamic.cds_resources_locator != null;
  }

  check(): void {
    const resources = isJsonObject(this.bootstrap.static_resources) ? this.bootstrap.static_resources : {};
    list(resources.listeners).forEach((listener, i) => {
      if (isJsonObject(listener)) this.listener(listener, `static_resources.listeners[${i}]`);
    });
    this.collectRemoteCode(this.bootstrap, "");
    for (const reference of this.references) this.checkCluster(reference);
    for (const filter of this.wasm) {
      this.checkPolicyClusters(filter);
      this.checkOriginalDstClusters(filter);
    }
  }

  /**
   * The original_dst action's cluster must be an ORIGINAL_DST one: any other type connects to its
   * own endpoints, and the destination the rule allows is never reached.
   */
  private checkOriginalDstClusters(filter: CheckedWasmFilter): void {
    list(filter.policy?.rules).forEach((rule, i) => {
      const action = isJsonObject(rule) && isJsonObject(rule.action) ? rule.action : {};
      const cluster = action.original_dst;
      const type = typeof cluster === "string" ? this.clusterTypes.get(cluster) : undefined;
      if (type === undefined || type === "ORIGINAL_DST") return;
      this.problems.push({ path: `${filter.configurationPath}.rules[${i}].action.original_dst`, severity: "warning",
        message: `cluster '${String(cluster)}' is ${type}, not ORIGINAL_DST: tcp_proxy connects to its endpoints, never to the connection's destination` });
    });
  }

  private listener(listener: JsonObject, path: string): void {
    const hasTlsInspector = list(listener.listener_filters).some((filter) => typeOf(filter) === TLS_INSPECTOR);
    const chains = list(listener.filter_chains).map((chain, j) => ({ chain, path: `${path}.filter_chains[${j}]` }));
    if (isJsonObject(listener.default_filter_chain)) chains.push({ chain: listener.default_filter_chain, path: `${path}.default_filter_chain` });
    for (const { chain, path: chainPath } of chains) {
      if (isJsonObject(chain)) this.chain(list(chain.filters), `${chainPath}.filters`, hasTlsInspector);
    }
  }

  private chain(filters: Json[], path: string, hasTlsInspector: boolean): void {
    this.checkOrder(filters.map(typeOf), path, TERMINAL_NETWORK_FILTERS, "network");
    let wasmerangBefore: CheckedWasmFilter | undefined;
    filters.forEach((filter, k) => {
      const type = typeOf(filter);
      const configPath = `${path}[${k}].typed_config`;
      const config = isJsonObject(filter) && isJsonObject(filter.typed_config) ? filter.typed_config : {};
      if (type === WASM_TYPES.network) {
        const checked = this.wasm.find((candidate) => candidate.path === configPath);
        if (checked !== undefined && isWasmerang(checked.metrics)) {
          wasmerangBefore = checked;
          if (usesServerNames(checked.policy) && !hasTlsInspector) {
            this.problems.push({ path: configPath, severity: "warning",
              message: "the policy matches server_names, but this listener has no tls_inspector listener filter: the SNI is never known, so those rules never match" });
          }
        }
      } else if (type === TCP_PROXY) {
        this.tcpProxy(config, configPath, wasmerangBefore);
      } else if (type === HTTP_CONNECTION_MANAGER) {
        this.httpConnectionManager(config, configPath);
      }
    });
  }

  private checkOrder(types: (string | undefined)[], path: string, terminal: Set<string>, kind: string): void {
    types.forEach((type, k) => {
      if (type === undefined) return;
      const last = k === types.length - 1;
      if (terminal.has(type) && !last) {
        this.problems.push({ path: `${path}[${k}]`, severity: "error", message: `${type} is a terminal filter and must be the last in its ${kind} filter chain (Envoy refuses the configuration)` });
      }
      if (last && !terminal.has(type) && (type === WASM_TYPES.network || type === WASM_TYPES.http)) {
        this.problems.push({ path: `${path}[${k}]`, severity: "error", message: `the last filter of a ${kind} filter chain must be terminal; ${type} is not (Envoy refuses the configuration)` });
      }
    });
  }

  private tcpProxy(config: JsonObject, path: string, wasmerang: CheckedWasmFilter | undefined): void {
    if (typeof config.cluster === "string") this.references.push({ path: `${path}.cluster`, name: config.cluster });
    const weighted = isJsonObject(config.weighted_clusters) ? list(config.weighted_clusters.clusters) : [];
    weighted.forEach((cluster, i) => {
      if (isJsonObject(cluster) && typeof cluster.name === "string") this.references.push({ path: `${path}.weighted_clusters.clusters[${i}].name`, name: cluster.name });
    });
    if (weighted.length > 0 && wasmerang !== undefined) {
      this.problems.push({ path: `${path}.weighted_clusters`, severity: "warning",
        message: `tcp_proxy ignores the cluster Wasmerang chooses (filter state envoy.tcp_proxy.cluster, set by ${wasmerang.path}) when it has weighted_clusters: every connection goes to a weighted cluster` });
    }
  }

  private httpConnectionManager(config: JsonObject, path: string): void {
    const filters = list(config.http_filters);
    this.checkOrder(filters.map(typeOf), `${path}.http_filters`, new Set([ROUTER]), "HTTP");
    const routeConfig = isJsonObject(config.route_config) ? config.route_config : {};
    list(routeConfig.virtual_hosts).forEach((host, i) => {
      if (!isJsonObject(host)) return;
      list(host.routes).forEach((route, k) => {
        if (!isJsonObject(route) || !isJsonObject(route.route)) return;
        const actionPath = `${path}.route_config.virtual_hosts[${i}].routes[${k}].route`;
        const action = route.route;
        if (typeof action.cluster === "string") this.references.push({ path: `${actionPath}.cluster`, name: action.cluster });
        const weighted = isJsonObject(action.weighted_clusters) ? list(action.weighted_clusters.clusters) : [];
        weighted.forEach((cluster, c) => {
          if (isJsonObject(cluster) && typeof cluster.name === "string") this.references.push({ path: `${actionPath}.weighted_clusters.clusters[${c}].name`, name: cluster.name });
        });
      });
    });
  }

  /** Remote Wasm code is fetched through a cluster of the bootstrap. */
  private collectRemoteCode(node: Json, path: string): void {
    if (Array.isArray(node)) {
      node.forEach((item, i) => this.collectRemoteCode(item, `${path}[${i}]`));
      return;
    }
    if (!isJsonObject(node)) return;
    if (isJsonObject(node.remote) && isJsonObject(node.remote.http_uri) && typeof node.remote.http_uri.cluster === "string") {
      this.references.push({ path: `${path}.remote.http_uri.cluster`, name: node.remote.http_uri.cluster });
    }
    for (const [key, item] of Object.entries(node)) this.collectRemoteCode(item, path === "" ? key : `${path}.${key}`);
  }

  private checkCluster(reference: ClusterReference): void {
    if (this.defined.has(reference.name)) return;
    this.problems.push({ path: reference.path, severity: this.hasCds ? "warning" : "error", message: `cluster '${reference.name}' ${this.undefinedReason()}` });
  }

  private undefinedReason(): string {
    return this.hasCds
      ? "is not among the static clusters; it must come from CDS"
      : "is not defined (static_resources.clusters, and no CDS source): Envoy closes every connection routed to it";
  }

  /**
   * The clusters the module named at configure (its per-cluster counters), and `{dst_port}`
   * templates in its configuration. Names that appear in the configuration text are the policy's
   * own; others come from the reference routing it falls back to, which a catch-all rule may make
   * unreachable, so those are warnings.
   */
  private checkPolicyClusters(filter: CheckedWasmFilter): void {
    const path = filter.configurationPath;
    for (const metric of filter.metrics ?? []) {
      const name = CLUSTER_COUNTER.exec(metric)?.[1];
      if (name === undefined || this.defined.has(name)) continue;
      const named = filter.configuration.includes(name);
      this.problems.push({ path, severity: named && !this.hasCds ? "error" : "warning",
        message: named ? `the policy routes to cluster '${name}', which ${this.undefinedReason()}`
          : `the policy's default (reference routing) routes to cluster '${name}', which ${this.undefinedReason()}; if no connection reaches the default, give the policy a "default"` });
    }
    for (const template of new Set(filter.configuration.match(/[^"\s]*\{dst_port\}[^"\s]*/g) ?? [])) {
      const pattern = new RegExp(`^${template.split("{dst_port}").map((piece) => piece.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("\\d{1,5}")}$`);
      if ([...this.defined].some((name) => pattern.test(name))) continue;
      this.problems.push({ path, severity: this.hasCds ? "warning" : "error",
        message: `no defined cluster matches the policy's template '${template}'${this.hasCds ? " (they must come from CDS)" : ": Envoy closes every connection it routes"}` });
    }
  }
}


function usesServerNames(policy: JsonObject | undefined): boolean {
  return list(policy?.rules).some((rule) => isJsonObject(rule) && isJsonObject(rule.match) && list(rule.match.server_names).length > 0);
}
