// Upstream clusters: where tcp_proxy connects. STATIC endpoints as written; STRICT_DNS resolves
// every endpoint's name to all its addresses and refreshes them every dns_refresh_rate;
// LOGICAL_DNS uses the first address of the first endpoint; ORIGINAL_DST connects to the
// connection's original destination (or filter state envoy.network.transport_socket.original_dst_address).
// Envoy docs: intro/arch_overview/upstream/service_discovery.
import type { LookupAddress } from "node:dns";
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import type { ClusterConfig, DnsLookupFamily } from "../envoy/model.js";
import { formatEndpoint, type Endpoint } from "../host/properties.js";
import type { HostStatus } from "../server/admin-render.js";
import { clusterStats, type ClusterStats } from "./stats.js";
import type { StatsStore } from "../server/stats-store.js";

/**
 * The answers dns_lookup_family keeps (cluster.proto, DnsLookupFamily): AUTO prefers IPv6 and
 * falls back to IPv4, V4_PREFERRED the other way round, ALL keeps both.
 */
function ofFamily(answers: LookupAddress[], family: DnsLookupFamily): LookupAddress[] {
  const v4 = answers.filter((a) => a.family === 4);
  const v6 = answers.filter((a) => a.family === 6);
  switch (family) {
    case "V4_ONLY": return v4;
    case "V6_ONLY": return v6;
    case "V4_PREFERRED": return v4.length > 0 ? v4 : v6;
    case "ALL": return answers;
    default: return v6.length > 0 ? v6 : v4;
  }
}

export class Cluster {
  readonly stats: ClusterStats;
  private hosts: Endpoint[] = [];
  private next = 0;
  private refresh: NodeJS.Timeout | undefined;
  /** Per-host connection counts, by IP:PORT, as Envoy's /clusters shows them. */
  private readonly perHost = new Map<string, HostStatus>();

  constructor(readonly config: ClusterConfig, store: StatsStore, private readonly onDnsError: (message: string) => void) {
    this.stats = clusterStats(store, config.name);
    if (config.type === "STATIC") this.hosts = config.endpoints.map(({ address, port }) => ({ address, port }));
  }

  /** Resolves DNS endpoints once, then keeps STRICT_DNS hosts fresh. */
  async start(): Promise<void> {
    if (this.config.type !== "STRICT_DNS" && this.config.type !== "LOGICAL_DNS") return;
    await this.resolve();
    if (this.config.type === "STRICT_DNS") {
      this.refresh = setInterval(() => void this.resolve(), this.config.dnsRefreshMs);
      this.refresh.unref();
    }
  }

  stop(): void {
    if (this.refresh !== undefined) clearInterval(this.refresh);
  }

  private async resolve(): Promise<void> {
    const endpoints = this.config.type === "LOGICAL_DNS" ? this.config.endpoints.slice(0, 1) : this.config.endpoints;
    const resolved: Endpoint[] = [];
    for (const { address, port } of endpoints) {
      if (isIP(address) !== 0) {
        resolved.push({ address, port });
        continue;
      }
      try {
        const answers = ofFamily(await lookup(address, { all: true }), this.config.dnsLookupFamily);
        const chosen = this.config.type === "LOGICAL_DNS" ? answers.slice(0, 1) : answers;
        for (const answer of chosen) resolved.push({ address: answer.address, port });
      } catch (error) {
        this.onDnsError(`cluster '${this.config.name}': cannot resolve '${address}': ${(error as Error).message}`);
      }
    }
    // A failed refresh keeps the last good hosts, as Envoy does.
    if (resolved.length > 0 || this.hosts.length === 0) this.hosts = resolved;
  }

  /**
   * The host for the next connection attempt (round robin), or undefined when the cluster has
   * none. `originalDestination` is used by ORIGINAL_DST clusters.
   */
  pickHost(originalDestination: Endpoint | undefined): Endpoint | undefined {
    if (this.config.type === "ORIGINAL_DST") return originalDestination;
    if (this.hosts.length === 0) return undefined;
    const host = this.hosts[this.next % this.hosts.length];
    this.next = (this.next + 1) % this.hosts.length;
    return host;
  }

  /** The counters of one host. */
  hostStats(host: Endpoint): HostStatus {
    const key = formatEndpoint(host);
    let stats = this.perHost.get(key);
    if (stats === undefined) {
      stats = { address: host, cxTotal: 0, cxActive: 0, cxConnectFail: 0 };
      this.perHost.set(key, stats);
    }
    return stats;
  }

  /** An original destination with no connection left is forgotten, as Envoy cleans up unused ORIGINAL_DST hosts. */
  hostIdle(stats: HostStatus): void {
    if (this.config.type === "ORIGINAL_DST" && stats.cxActive === 0) this.perHost.delete(formatEndpoint(stats.address));
  }

  /** The hosts with their counters: configured or resolved ones, or the original destinations in use. */
  hostStatuses(): HostStatus[] {
    return this.config.type === "ORIGINAL_DST" ? [...this.perHost.values()] : this.hosts.map((host) => this.hostStats(host));
  }
}
