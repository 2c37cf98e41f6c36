// The runner's own stats, named as Envoy names them (listener.<address>., cluster.<name>.,
// tcp.<stat_prefix>.), so dashboards built for Envoy read the same names here. Counters are
// objects resolved once at configuration time: the data path only bumps a number.
import type { Counter, StatsStore } from "../server/stats-store.js";

/** Envoy's stat name for a listener address: `127.0.0.1_10000`, `[::1]_10000`. */
export function listenerStatName(address: string, port: number): string {
  return address.includes(":") ? `[${address}]_${port}` : `${address}_${port}`;
}

export interface ListenerStats {
  downstreamCxTotal: Counter;
  downstreamCxActive: Counter;
  downstreamCxDestroy: Counter;
  /** Connections closed by a listener filter (bad PROXY header, timeout). */
  downstreamListenerFilterError: Counter;
  /** Connections closed by a network filter (reject, Wasm failure). */
  downstreamCxFilterClosed: Counter;
  /** Connections refused because the process's connection limit was reached. */
  downstreamGlobalCxOverflow: Counter;
}

export function listenerStats(store: StatsStore, statName: string): ListenerStats {
  const prefix = `listener.${statName}.`;
  return {
    downstreamCxTotal: store.counter(`${prefix}downstream_cx_total`),
    downstreamCxActive: store.gauge(`${prefix}downstream_cx_active`),
    downstreamCxDestroy: store.counter(`${prefix}downstream_cx_destroy`),
    downstreamListenerFilterError: store.counter(`${prefix}downstream_listener_filter_error`),
    downstreamCxFilterClosed: store.counter(`${prefix}downstream_cx_filter_closed`),
    downstreamGlobalCxOverflow: store.counter(`${prefix}downstream_global_cx_overflow`),
  };
}

export interface TcpProxyStats {
  downstreamCxTotal: Counter;
  downstreamCxNoRoute: Counter;
  downstreamCxRxBytesTotal: Counter;
  downstreamCxTxBytesTotal: Counter;
  idleTimeout: Counter;
}

export function tcpProxyStats(store: StatsStore, statPrefix: string): TcpProxyStats {
  const prefix = `tcp.${statPrefix}.`;
  return {
    downstreamCxTotal: store.counter(`${prefix}downstream_cx_total`),
    downstreamCxNoRoute: store.counter(`${prefix}downstream_cx_no_route`),
    downstreamCxRxBytesTotal: store.counter(`${prefix}downstream_cx_rx_bytes_total`),
    downstreamCxTxBytesTotal: store.counter(`${prefix}downstream_cx_tx_bytes_total`),
    idleTimeout: store.counter(`${prefix}idle_timeout`),
  };
}

export interface ClusterStats {
  upstreamCxTotal: Counter;
  upstreamCxActive: Counter;
  upstreamCxConnectFail: Counter;
  upstreamCxConnectTimeout: Counter;
  upstreamCxNoneHealthy: Counter;
  upstreamCxRxBytesTotal: Counter;
  upstreamCxTxBytesTotal: Counter;
  /** HTTP requests whose route timeout fired. */
  upstreamRqTimeout: Counter;
}

export function clusterStats(store: StatsStore, cluster: string): ClusterStats {
  const prefix = `cluster.${cluster}.`;
  return {
    upstreamCxTotal: store.counter(`${prefix}upstream_cx_total`),
    upstreamCxActive: store.gauge(`${prefix}upstream_cx_active`),
    upstreamCxConnectFail: store.counter(`${prefix}upstream_cx_connect_fail`),
    upstreamCxConnectTimeout: store.counter(`${prefix}upstream_cx_connect_timeout`),
    upstreamCxNoneHealthy: store.counter(`${prefix}upstream_cx_none_healthy`),
    upstreamCxRxBytesTotal: store.counter(`${prefix}upstream_cx_rx_bytes_total`),
    upstreamCxTxBytesTotal: store.counter(`${prefix}upstream_cx_tx_bytes_total`),
    upstreamRqTimeout: store.counter(`${prefix}upstream_rq_timeout`),
  };
}
