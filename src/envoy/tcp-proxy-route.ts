// Where tcp_proxy sends a connection (source/common/tcp_proxy/tcp_proxy.cc,
// Config::getRouteFromEntries): weighted_clusters when it has them, whatever a filter set; else
// the filter state envoy.tcp_proxy.cluster a filter set; else its own `cluster`. The runner
// routes by it and `explain` reports it, so both say the same.
export type TcpProxyRoute =
  | { kind: "weighted" }
  | { kind: "cluster"; cluster: string | undefined; from: "filter state" | "cluster" };

export function tcpProxyRoute(hasWeightedClusters: boolean, filterStateCluster: string | undefined, cluster: string | undefined): TcpProxyRoute {
  if (hasWeightedClusters) return { kind: "weighted" };
  return filterStateCluster !== undefined ? { kind: "cluster", cluster: filterStateCluster, from: "filter state" } : { kind: "cluster", cluster, from: "cluster" };
}
