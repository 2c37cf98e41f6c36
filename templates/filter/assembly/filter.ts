// A proxy-wasm network filter for envoy.filters.network.wasm: TLS connections whose SNI ends in
// `.internal` go to cluster `internal`, all others to `external`, through the filter state
// tcp_proxy reads (envoy.tcp_proxy.cluster). Each choice is counted in the metric
// `routes.internal` or `routes.external`. The SNI needs the tls_inspector listener filter.
import {
  Action, defineMetric, encodeFilterState, FILTER_STATE_TCP_PROXY_CLUSTER, getPropertyString, incrementMetric, log, LogLevel,
  MetricType, propertyPath, registerRootContext, RootContext, setEnvoyFilterState, StreamContext, WasmResult,
} from "wasmerang/sdk";

export * from "wasmerang/sdk/exports";

const SERVER_NAME = propertyPath(["connection", "requested_server_name"]);
const INTERNAL = encodeFilterState(FILTER_STATE_TCP_PROXY_CLUSTER, "internal");
const EXTERNAL = encodeFilterState(FILTER_STATE_TCP_PROXY_CLUSTER, "external");

class SniRouter extends StreamContext {
  onNewConnection(): Action {
    const root = this.root as SniRouterRoot;
    const internal = getPropertyString(SERVER_NAME).toLowerCase().endsWith(".internal");
    if (setEnvoyFilterState(internal ? INTERNAL : EXTERNAL) != WasmResult.Ok) log(LogLevel.Warn, "sni-router: cluster not set");
    incrementMetric(internal ? root.internalCount : root.externalCount, 1);
    return Action.Continue;
  }
}

class SniRouterRoot extends RootContext {
  internalCount: u32 = 0;
  externalCount: u32 = 0;

  onConfigure(configuration: string): bool {
    this.internalCount = defineMetric(MetricType.Counter, "routes.internal");
    this.externalCount = defineMetric(MetricType.Counter, "routes.external");
    return true;
  }

  newStreamContext(id: u32): StreamContext | null {
    return new SniRouter(id, this);
  }
}

registerRootContext((id: u32): RootContext => new SniRouterRoot(id));
