// Envoy's admin endpoints that matter for a TCP proxy: /stats (text), /stats/prometheus,
// /clusters, /ready. Binds where admin.address says; the examples and defaults use loopback.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import { formatEndpoint } from "../host/properties.js";
import type { Cluster } from "./cluster.js";

export interface StatSample {
  name: string;
  value: number | bigint;
  kind: "counter" | "gauge";
}

export interface TagNames {
  clusters: string[];
  listeners: string[];
  tcpPrefixes: string[];
}

const NO_TAGS: TagNames = { clusters: [], listeners: [], tcpPrefixes: [] };

export interface AdminSource {
  stats(): StatSample[];
  /** Upstream clusters, when the server has any (the egress router has none). */
  clusters?(): readonly Cluster[];
  /** Known names, for Envoy's tag extraction in the Prometheus output. */
  tagNames?(): TagNames;
  ready(): boolean;
}

/** Custom Wasm metrics live under this namespace in /stats; Prometheus output strips it (Envoy >= 1.22). */
export const WASM_CUSTOM_NAMESPACE = "wasmcustom.";

const sanitize = (name: string): string => name.replace(/[^a-zA-Z0-9_]/g, "_");

function prometheusLine(sample: StatSample, tags: TagNames): { name: string; labels: string } {
  if (sample.name.startsWith(WASM_CUSTOM_NAMESPACE)) return { name: sanitize(sample.name.slice(WASM_CUSTOM_NAMESPACE.length)), labels: "" };
  const extractors: [string, string[], string][] = [
    ["cluster.", tags.clusters, "envoy_cluster_name"],
    ["listener.", tags.listeners, "envoy_listener_address"],
    ["tcp.", tags.tcpPrefixes, "envoy_tcp_prefix"],
    ["http.", tags.tcpPrefixes, "envoy_http_conn_manager_prefix"],
  ];
  for (const [prefix, names, label] of extractors) {
    if (!sample.name.startsWith(prefix)) continue;
    const rest = sample.name.slice(prefix.length);
    const tag = names.filter((n) => rest.startsWith(`${n}.`)).sort((a, b) => b.length - a.length)[0];
    if (tag === undefined) continue;
    const value = tag.replace(/\\/g, "\\\\").replace(/"/g, '\\"');
    return { name: `envoy_${sanitize(prefix)}${sanitize(rest.slice(tag.length + 1))}`, labels: `{${label}="${value}"}` };
  }
  return { name: `envoy_${sanitize(sample.name)}`, labels: "" };
}

export function renderPrometheus(source: AdminSource): string {
  const tags = source.tagNames?.() ?? NO_TAGS;
  const groups = new Map<string, { kind: string; lines: string[] }>();
  for (const sample of source.stats()) {
    const { name, labels } = prometheusLine(sample, tags);
    let group = groups.get(name);
    if (group === undefined) {
      group = { kind: sample.kind, lines: [] };
      groups.set(name, group);
    }
    group.lines.push(`${name}${labels} ${sample.value}`);
  }
  return [...groups].map(([name, group]) => `# TYPE ${name} ${group.kind}\n${group.lines.join("\n")}\n`).join("");
}

export function renderClusters(clusters: readonly Cluster[]): string {
  const lines: string[] = [];
  for (const cluster of clusters) {
    const name = cluster.config.name;
    lines.push(`${name}::observability_name::${name}`);
    for (const host of cluster.hostList) {
      const at = `${name}::${formatEndpoint(host)}`;
      lines.push(`${at}::health_flags::healthy`);
    }
    lines.push(`${name}::upstream_cx_total::${cluster.stats.upstreamCxTotal.value}`);
    lines.push(`${name}::upstream_cx_active::${cluster.stats.upstreamCxActive.value}`);
  }
  return `${lines.join("\n")}\n`;
}

export class AdminServer {
  private constructor(private readonly server: Server) {}

  static async listen(address: string, port: number, source: AdminSource, logger: Logger): Promise<AdminServer> {
    const server = createServer((request, response) => {
      const path = (request.url ?? "/").split("?")[0];
      const send = (status: number, body: string, type = "text/plain; charset=utf-8") => {
        response.writeHead(status, { "content-type": type });
        response.end(body);
      };
      if (request.method !== "GET") return send(405, "only GET is supported\n");
      switch (path) {
        case "/stats":
          return send(200, source.stats().map((s) => `${s.name}: ${s.value}`).join("\n") + "\n");
        case "/stats/prometheus":
          return send(200, renderPrometheus(source), "text/plain; version=0.0.4");
        case "/clusters":
          return send(200, renderClusters(source.clusters?.() ?? []));
        case "/ready":
          return source.ready() ? send(200, "LIVE\n") : send(503, "DRAINING\n");
        default:
          return send(404, "endpoints: /stats /stats/prometheus /clusters /ready\n");
      }
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, address, () => {
        server.off("error", reject);
        resolve();
      });
    });
    // Past the bind, the only errors are failed accepts (EMFILE): that client is dropped, admin stays up.
    server.on("error", (error) => logger.warn({ error: error.message }, "admin accept failed"));
    return new AdminServer(server);
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.closeAllConnections();
      this.server.close(() => resolve());
    });
  }
}
