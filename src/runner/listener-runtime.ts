// Everything a listener's connections need, built once per configuration generation: the loaded
// Wasm plugins, the clusters, access logs and pre-resolved stats. A reload builds a new one;
// connections keep the generation they started with.
import type { Logger } from "pino";
import type { ListenerConfig } from "../envoy/model.js";
import { tcpProxyRoute } from "../envoy/tcp-proxy-route.js";
import type { Plugin } from "../host/plugin.js";
import type { AccessLog } from "./access-log.js";
import type { Cluster } from "./cluster.js";
import type { HttpProxy } from "./http-proxy.js";
import { listenerStatName, listenerStats, tcpProxyStats, type ListenerStats, type TcpProxyStats } from "./stats.js";
import type { StatsStore } from "../server/stats-store.js";

/** Envoy's listener_filters_timeout default: a listener filter that waits longer closes the connection. */
export const LISTENER_FILTERS_TIMEOUT_MS = 15_000;

/** Envoy's per_connection_buffer_limit_bytes default (listener.proto): 1 MiB. */
export const DEFAULT_BUFFER_LIMIT_BYTES = 1024 * 1024;

/** A listener's per_connection_buffer_limit_bytes (Envoy's default 1 MiB; 0: none). */
export function bufferLimit(config: ListenerConfig): number {
  const limit = config.perConnectionBufferLimitBytes ?? DEFAULT_BUFFER_LIMIT_BYTES;
  return limit === 0 ? Infinity : limit;
}

export class ListenerRuntime {
  readonly stats: ListenerStats;
  /** tcp_proxy's stats (tcp.<stat_prefix>.); an HTTP listener has the connection manager's instead. */
  readonly tcpStats: TcpProxyStats | undefined;
  /** tcp_proxy's access logs, opened. */
  readonly accessLogs: readonly AccessLog[];
  /** Whether the original_dst listener filter runs (it needs no bytes). */
  readonly restoresOriginalDestination: boolean;
  /** The listener filters that wait for the connection's first bytes, in order. */
  readonly byteListenerFilters: readonly string[];
  /** Bytes a connection's filters may hold unread before the downstream stops being read. */
  readonly bufferLimitBytes: number;
  private readonly totalWeight: number;

  constructor(
    readonly config: ListenerConfig,
    readonly plugins: readonly Plugin[],
    readonly clusters: ReadonlyMap<string, Cluster>,
    store: StatsStore,
    readonly logger: Logger,
    /** The HTTP connection manager, when the listener ends with one instead of tcp_proxy. */
    readonly http: HttpProxy | undefined,
    accessLogs: readonly AccessLog[],
  ) {
    this.accessLogs = accessLogs;
    this.stats = listenerStats(store, listenerStatName(config.address.address, config.address.port));
    this.tcpStats = config.tcpProxy === undefined ? undefined : tcpProxyStats(store, config.tcpProxy.statPrefix);
    this.totalWeight = (config.tcpProxy?.weightedClusters ?? []).reduce((sum, c) => sum + c.weight, 0);
    this.restoresOriginalDestination = config.listenerFilters.includes("original_dst");
    this.byteListenerFilters = config.listenerFilters.filter((name) => name !== "original_dst");
    this.bufferLimitBytes = bufferLimit(config);
  }

  /**
   * tcp_proxy's route (source/common/tcp_proxy/tcp_proxy.cc, Config::getRouteFromEntries):
   * weighted_clusters win; otherwise the filter state envoy.tcp_proxy.cluster; otherwise `cluster`.
   */
  routeCluster(filterStateCluster: string | undefined): string | undefined {
    const weighted = this.config.tcpProxy?.weightedClusters ?? [];
    const route = tcpProxyRoute(this.totalWeight > 0, filterStateCluster, this.config.tcpProxy?.cluster);
    if (route.kind === "cluster") return route.cluster;
    let point = Math.floor(Math.random() * this.totalWeight);
    for (const cluster of weighted) {
      if (point < cluster.weight) return cluster.name;
      point -= cluster.weight;
    }
    return undefined;
  }

  get idleTimeoutMs(): number {
    return this.config.tcpProxy?.idleTimeoutMs ?? 0;
  }

  get maxConnectAttempts(): number {
    return this.config.tcpProxy?.maxConnectAttempts ?? 1;
  }

  async close(): Promise<void> {
    await this.http?.close();
    await Promise.all(this.accessLogs.map((log) => log.close()));
  }
}
