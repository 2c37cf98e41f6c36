// `wasmerang explain`: one connection with the facts given, through the real module in the
// in-process host, and what it did: the outcome, the cluster and the rule (from the module's own
// decision line at debug), the filter state it wrote, the counters it bumped, the PROXY header it
// would put in front of the client's bytes; from a bootstrap, also what tcp_proxy then does.
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { isJsonObject, type JsonObject } from "./envoy/errors.js";
import { parseEnvoyYaml } from "./envoy/envoy-yaml.js";
import { checkBootstrap, readYamlFile } from "./envoy/load.js";
import { envoyApi } from "./envoy/protos.js";
import { tcpProxyRoute } from "./envoy/tcp-proxy-route.js";
import { configurationBytes } from "./envoy/wasm-config.js";
import { FilterHarness } from "./host/harness.js";
import { WASM_TYPES } from "./validate/wasm-filters.js";
import { PACKAGE_ROOT } from "./version.js";


/** The project's own module, as built into the package. */
export const WASMERANG_MODULE = join(PACKAGE_ROOT, "dist", "wasmerang.wasm");

export interface ExplainFacts {
  source: string;
  destination?: string;
  serverName?: string;
  /** Dynamic metadata: namespace → key → value (what proxy_protocol TLV rules would write). */
  metadata?: Record<string, Record<string, string>>;
  /** Filter state an earlier filter set: key → value. */
  filterState?: Record<string, string>;
  /** An HTTP request instead of a TCP connection: the module runs as an HTTP filter. */
  request?: { method?: string; path?: string; authority?: string; headers?: Record<string, string> };
}

/** What one connection or request through the harness showed. */
interface Run {
  rejected: boolean;
  filterState: ReadonlyMap<string, string>;
  proxyHeader?: string;
  /** tcp_proxy's cluster from the filter state (connections only). */
  chosen?: string;
}

function runConnection(harness: FilterHarness, facts: ExplainFacts): Run {
  const connection = harness.connect(facts);
  const rejected = connection.closedReason !== undefined;
  // The filter's own PROXY header goes in front of the client's first bytes.
  const written = rejected ? undefined : connection.downstream("").data;
  connection.close();
  return { rejected, filterState: connection.filterState, proxyHeader: written !== undefined && written.length > 0 ? written.toString("latin1") : undefined,
    chosen: connection.cluster };
}

function runRequest(harness: FilterHarness, facts: ExplainFacts, request: NonNullable<ExplainFacts["request"]>): Run {
  const result = harness.request({ source: facts.source, destination: facts.destination, filterState: facts.filterState, ...request });
  return { rejected: result.localResponse !== undefined, filterState: result.filterState };
}

export interface TcpProxyOutcome {
  /** The cluster tcp_proxy connects to. */
  cluster: string | undefined;
  defined: boolean;
  note: string;
}

export interface Explanation {
  outcome: "routed" | "rejected" | "passthrough" | "not applied";
  cluster?: string;
  /** The deciding rule (its index, and its name when it has one), or the default. */
  rule: { index: number; name?: string } | "default";
  reason?: string;
  filterState: Record<string, string>;
  counters: Record<string, number>;
  proxyHeader?: string;
  decisionLine: string;
  /** Each rule before the deciding one, with the first of its matchers that did not hold. */
  earlierRules: { index: number; name?: string; failed: string }[];
  tcpProxy?: TcpProxyOutcome;
}

export interface FilterUnderTest {
  module: string | Uint8Array;
  configuration: string;
  /** The tcp_proxy after the filter and the defined clusters, when the filter came from a bootstrap. */
  tcpProxy?: { config: JsonObject; clusters: Set<string> };
}


/** The decision line's words (filter/router.ts logDecision): `rule=NAME` then `cluster=X` or `action=Y [reason=Z]`. */
const DECISION = /rule=(\S*) (?:cluster=(\S+)|action=(\w+)(?: reason=(\S+))?)/;
/** The module's trace line per earlier rule (filter/router.ts traceEarlierRules). */
const EARLIER_RULE = /^wasmerang: rules\[(\d+)\] (.*) no match: (.+)$/;

/** The module's line once configured (filter/wasmerang.ts describe): how many rules the policy has. */
const CONFIGURED = /^wasmerang: configured: rules=(\d+)/;

/**
 * The rule the decision line names (the module calls its default `default`, and unnamed rules
 * `-`); its index is the number of rules traced before it, one trace line per earlier rule. The
 * default traced every rule, which also tells it from a rule someone named `default`.
 */
function ruleOf(name: string, earlierRules: number, ruleCount: number | undefined): Explanation["rule"] {
  if (name === "" || (ruleCount === undefined ? name === "default" : earlierRules >= ruleCount)) return "default";
  return name === "-" ? { index: earlierRules } : { index: earlierRules, name };
}

/** What tcp_proxy then does with the filter's choice (tcp-proxy-route.ts), and whether its cluster exists. */
function tcpProxyOutcome(tcpProxy: JsonObject, clusters: Set<string>, chosen: string | undefined): TcpProxyOutcome {
  const route = tcpProxyRoute(isJsonObject(tcpProxy.weighted_clusters), chosen, typeof tcpProxy.cluster === "string" ? tcpProxy.cluster : undefined);
  if (route.kind === "weighted") {
    return { cluster: undefined, defined: true, note: "weighted_clusters: tcp_proxy picks a weighted cluster and ignores the filter's choice" };
  }
  const { cluster } = route;
  const defined = cluster !== undefined && clusters.has(cluster);
  const via = route.from === "filter state" ? "the filter's choice" : "its own cluster";
  return { cluster, defined, note: defined ? `connects to ${cluster} (${via})` : `cluster '${cluster}' is not defined: the connection is closed (NC)` };
}

export async function explain(filter: FilterUnderTest, facts: ExplainFacts): Promise<Explanation> {
  const harness = await FilterHarness.load({ module: filter.module, configuration: filter.configuration, logLevel: "trace" });
  const before = harness.metrics();
  const run = facts.request === undefined ? runConnection(harness, facts) : runRequest(harness, facts, facts.request);
  const { rejected } = run;
  const after = harness.metrics();
  harness.close();
  const line = harness.logs.map((record) => record.message).reverse().find((message) => DECISION.test(message)) ?? "";
  const [, ruleName = "", cluster, action, reason] = DECISION.exec(line) ?? [];
  const earlierRules = harness.logs.flatMap((record) => {
    const match = EARLIER_RULE.exec(record.message);
    return match === null ? [] : [{ index: Number(match[1]), ...(match[2] === "" ? {} : { name: match[2] }), failed: match[3]! }];
  });
  const configured = harness.logs.map((record) => CONFIGURED.exec(record.message)).find((match) => match !== null);
  const ruleCount = configured ? Number(configured[1]) : undefined;
  const counters = Object.fromEntries(Object.entries(after).filter(([name, value]) => value !== (before[name] ?? 0))
    .map(([name, value]) => [name, value - (before[name] ?? 0)]));
  const explanation: Explanation = {
    outcome: rejected || action === "reject" ? "rejected" : action === "passthrough" ? "passthrough" : cluster !== undefined ? "routed" : "not applied",
    cluster,
    rule: ruleOf(ruleName, earlierRules.length, ruleCount),
    reason,
    filterState: Object.fromEntries(run.filterState),
    counters,
    proxyHeader: run.proxyHeader,
    decisionLine: line,
    earlierRules,
  };
  if (filter.tcpProxy !== undefined && !rejected && facts.request === undefined) explanation.tcpProxy = tcpProxyOutcome(filter.tcpProxy.config, filter.tcpProxy.clusters, run.chosen);
  return explanation;
}

/** The Wasm filters of a chain of `kind`: network filters, or the HTTP connection manager's HTTP filters. */
function wasmFiltersOf(filters: JsonObject[], kind: "network" | "http"): JsonObject[] {
  if (kind === "network") return filters;
  const manager = filters.find((f) => isJsonObject(f.typed_config) && String(f.typed_config["@type"]).endsWith("http_connection_manager.v3.HttpConnectionManager"));
  const httpFilters = isJsonObject(manager?.typed_config) ? manager.typed_config.http_filters : undefined;
  return Array.isArray(httpFilters) ? httpFilters.filter(isJsonObject) : [];
}

/**
 * The Wasm filter of a bootstrap's listener (the named one, else the first with one): a network
 * filter with its tcp_proxy, or with `kind` http the HTTP filter of its connection manager.
 */
export async function filterFromBootstrap(file: string, listenerName: string | undefined, moduleOverride: string | undefined,
  kind: "network" | "http" = "network"): Promise<FilterUnderTest> {
  const { normalized, problems } = checkBootstrap(parseEnvoyYaml(await readYamlFile(file), file));
  const errors = problems.filter((problem) => problem.severity === "error");
  if (errors.length > 0) throw new Error(`${file}: ${errors[0]!.path}: ${errors[0]!.message}`);
  const bootstrap = normalized as JsonObject;
  const resources = isJsonObject(bootstrap.static_resources) ? bootstrap.static_resources : {};
  const clusters = new Set((Array.isArray(resources.clusters) ? resources.clusters : []).flatMap((c) => (isJsonObject(c) && typeof c.name === "string" ? [c.name] : [])));
  const listeners = (Array.isArray(resources.listeners) ? resources.listeners : []).filter(isJsonObject);
  for (const listener of listeners) {
    if (listenerName !== undefined && listener.name !== listenerName) continue;
    for (const chain of Array.isArray(listener.filter_chains) ? listener.filter_chains : []) {
      const filters = isJsonObject(chain) && Array.isArray(chain.filters) ? chain.filters.filter(isJsonObject) : [];
      const wasm = wasmFiltersOf(filters, kind).find((f) => isJsonObject(f.typed_config) && f.typed_config["@type"] === WASM_TYPES[kind]);
      if (wasm === undefined) continue;
      const plugin = (wasm.typed_config as JsonObject).config as JsonObject;
      const vm = isJsonObject(plugin.vm_config) ? plugin.vm_config : {};
      const local = isJsonObject(vm.code) && isJsonObject(vm.code.local) ? vm.code.local : {};
      const module = moduleOverride ?? (typeof local.filename === "string" ? resolve(local.filename) : undefined);
      if (module === undefined) throw new Error(`${file}: the filter's module is not a local file; pass --module FILE`);
      const tcpProxy = filters.find((f) => isJsonObject(f.typed_config) && String(f.typed_config["@type"]).endsWith("tcp_proxy.v3.TcpProxy"));
      return {
        module: await readFile(module),
        configuration: configurationBytes(plugin.configuration, envoyApi()).toString(),
        tcpProxy: tcpProxy === undefined ? undefined : { config: tcpProxy.typed_config as JsonObject, clusters },
      };
    }
  }
  throw new Error(`${file}: no listener${listenerName === undefined ? "" : ` '${listenerName}'`} with an envoy.filters.${kind}.wasm filter`);
}

export function renderExplanation(explanation: Explanation): string {
  const rule = explanation.rule === "default" ? "the policy's default"
    : `rule ${explanation.rule.index}${explanation.rule.name === undefined ? "" : ` '${explanation.rule.name}'`}`;
  const lines = [
    `outcome: ${explanation.outcome}${explanation.cluster === undefined ? "" : ` to ${explanation.cluster}`} (${rule})${explanation.reason === undefined ? "" : `, reason ${explanation.reason}`}`,
    ...explanation.earlierRules.map((earlier) => `  rule ${earlier.index}${earlier.name === undefined ? "" : ` '${earlier.name}'`} did not match: ${earlier.failed}`),
    `filter state: ${Object.entries(explanation.filterState).map(([key, value]) => `${key}=${value}`).join(", ") || "none"}`,
    `counters: ${Object.entries(explanation.counters).map(([name, delta]) => `${name} +${delta}`).join(", ") || "none"}`,
  ];
  if (explanation.proxyHeader !== undefined) lines.push(`PROXY header: ${JSON.stringify(explanation.proxyHeader)}`);
  if (explanation.tcpProxy !== undefined) lines.push(`tcp_proxy: ${explanation.tcpProxy.note}`);
  lines.push(`decision: ${explanation.decisionLine}`);
  return `${lines.join("\n")}\n`;
}
