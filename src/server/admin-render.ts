// What the admin endpoints print, in Envoy's formats: /stats as text or JSON, /stats/prometheus
// with Envoy's tag extraction, /clusters as text or JSON (envoy.admin.v3.Clusters). Output is built
// in turns of a few thousand entries, letting the connections that share the thread run between
// them: with 10,000 clusters a dump is tens of thousands of lines.
import { formatEndpoint, type Endpoint } from "../host/properties.js";

export interface StatSample {
  name: string;
  value: number | bigint;
  kind: "counter" | "gauge";
}

/** Envoy prints stats sorted by name. */
export function byName(a: StatSample, b: StatSample): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

export interface TagNames {
  clusters: string[];
  listeners: string[];
  tcpPrefixes: string[];
}

export const NO_TAGS: TagNames = { clusters: [], listeners: [], tcpPrefixes: [] };

export interface HostStatus {
  address: Endpoint;
  cxTotal: number;
  cxActive: number;
  cxConnectFail: number;
}

export interface ClusterStatus {
  name: string;
  hosts: HostStatus[];
}

const TURN = 2048;

/** `fn` over `items`, giving the event loop a turn after every TURN of them. */
export async function mapInTurns<T, R>(items: readonly T[], fn: (item: T) => R): Promise<R[]> {
  const out: R[] = [];
  for (let start = 0; start < items.length; start += TURN) {
    if (start > 0) await new Promise((resolve) => setImmediate(resolve));
    for (let i = start; i < Math.min(items.length, start + TURN); i++) out.push(fn(items[i]!));
  }
  return out;
}

/** Custom Wasm metrics live under this namespace in /stats; Prometheus output strips it (Envoy >= 1.22). */
export const WASM_CUSTOM_NAMESPACE = "wasmcustom.";

const sanitize = (name: string): string => name.replace(/[^a-zA-Z0-9_]/g, "_");

type Extractor = [prefix: string, names: ReadonlySet<string>, label: string];

function extractors(tags: TagNames): Extractor[] {
  return [
    ["cluster.", new Set(tags.clusters), "envoy_cluster_name"],
    ["listener.", new Set(tags.listeners), "envoy_listener_address"],
    ["tcp.", new Set(tags.tcpPrefixes), "envoy_tcp_prefix"],
    ["http.", new Set(tags.tcpPrefixes), "envoy_http_conn_manager_prefix"],
  ];
}

/**
 * Envoy's tag extraction: `cluster.<name>.<stat>` becomes `envoy_cluster_<stat>{envoy_cluster_name="<name>"}`.
 * Names may hold dots, so the longest known name ending at a dot wins; the cost is the length of
 * the stat's name, not the number of names (admin must stay cheap with 10,000 clusters).
 */
function prometheusLine(sample: StatSample, extract: readonly Extractor[]): { name: string; labels: string } {
  if (sample.name.startsWith(WASM_CUSTOM_NAMESPACE)) return { name: sanitize(sample.name.slice(WASM_CUSTOM_NAMESPACE.length)), labels: "" };
  for (const [prefix, names, label] of extract) {
    if (!sample.name.startsWith(prefix)) continue;
    const rest = sample.name.slice(prefix.length);
    for (let dot = rest.lastIndexOf("."); dot > 0; dot = rest.lastIndexOf(".", dot - 1)) {
      const tag = rest.slice(0, dot);
      if (!names.has(tag)) continue;
      const value = tag.replace(/\\/g, "\\\\").replace(/"/g, '\\"');
      return { name: `envoy_${sanitize(prefix)}${sanitize(rest.slice(dot + 1))}`, labels: `{${label}="${value}"}` };
    }
  }
  return { name: `envoy_${sanitize(sample.name)}`, labels: "" };
}

export async function renderPrometheus(samples: readonly StatSample[], tags: TagNames): Promise<string> {
  const extract = extractors(tags);
  const lines = await mapInTurns(samples, (sample) => ({ sample, ...prometheusLine(sample, extract) }));
  const groups = new Map<string, { kind: string; lines: string[] }>();
  for (const { sample, name, labels } of lines) {
    let group = groups.get(name);
    if (group === undefined) {
      group = { kind: sample.kind, lines: [] };
      groups.set(name, group);
    }
    group.lines.push(`${name}${labels} ${sample.value}`);
  }
  return [...groups].map(([name, group]) => `# TYPE ${name} ${group.kind}\n${group.lines.join("\n")}\n`).join("");
}

export async function renderStatsText(samples: readonly StatSample[]): Promise<string> {
  return (await mapInTurns(samples, (s) => `${s.name}: ${s.value}\n`)).join("");
}

/** Envoy's /stats?format=json: {"stats": [{"name", "value"}]} (no histograms here). */
export async function renderStatsJson(samples: readonly StatSample[]): Promise<string> {
  return JSON.stringify({ stats: await mapInTurns(samples, (s) => ({ name: s.name, value: Number(s.value) })) }, null, 1);
}

const HOST_STATS = (host: HostStatus): [string, number, "COUNTER" | "GAUGE"][] => [
  ["cx_active", host.cxActive, "GAUGE"], ["cx_connect_fail", host.cxConnectFail, "COUNTER"], ["cx_total", host.cxTotal, "COUNTER"],
];

/** Envoy's /clusters text: `cluster::host::stat::value` lines. */
export function renderClustersText(clusters: readonly ClusterStatus[]): string {
  const lines: string[] = [];
  for (const { name, hosts } of clusters) {
    lines.push(`${name}::observability_name::${name}`, `${name}::added_via_api::false`);
    for (const host of hosts) {
      const at = `${name}::${formatEndpoint(host.address)}`;
      for (const [stat, value] of HOST_STATS(host)) lines.push(`${at}::${stat}::${value}`);
      lines.push(`${at}::health_flags::healthy`, `${at}::weight::1`);
    }
  }
  return lines.map((line) => `${line}\n`).join("");
}

/** Envoy's /clusters?format=json: envoy.admin.v3.Clusters in proto3 JSON (64-bit values as strings). */
export function renderClustersJson(clusters: readonly ClusterStatus[]): string {
  return JSON.stringify({
    cluster_statuses: clusters.map(({ name, hosts }) => ({
      name,
      observability_name: name,
      added_via_api: false,
      host_statuses: hosts.map((host) => ({
        address: { socket_address: { address: host.address.address, port_value: host.address.port } },
        stats: HOST_STATS(host).map(([stat, value, type]) => ({ name: stat, value: String(value), type })),
        health_status: { eds_health_status: "HEALTHY" },
        weight: 1,
      })),
    })),
  }, null, 1);
}
