// Upstream clusters: where tcp_proxy connects. STATIC endpoints as written; STRICT_DNS resolves
// every endpoint's name to all its addresses and refreshes them every dns_refresh_rate;
// LOGICAL_DNS uses the first address of the first endpoint; ORIGINAL_DST connects to the
// connection's original destination (or filter state envoy.network.transport_socket.original_dst_address).
// Envoy docs: intro/arch_overview/upstream/service_discovery.
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import type { ClusterConfig } from "../envoy/model.js";
import type { Endpoint } from "../host/properties.js";
import { clusterStats, type ClusterStats, type StatsStore } from "./stats.js";

export class Cluster {
  readonly stats: ClusterStats;
  private hosts: Endpoint[] = [];
  private next = 0;
  private refresh: NodeJS.Timeout | undefined;

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
        const answers = await lookup(address, { all: true });
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

  get hostList(): readonly Endpoint[] {
    return this.hosts;
  }
}
