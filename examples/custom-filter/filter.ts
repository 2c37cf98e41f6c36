// A custom routing filter built on Wasmerang's SDK layer: TLS traffic (destination port 443)
// goes to cluster `tls-egress`, everything else to `plain-egress`. Build it with
//   npx asc examples/custom-filter/filter.ts -o dist/custom-filter.wasm --target release
import {
  Action, encodeFilterState, FILTER_STATE_TCP_PROXY_CLUSTER, getProperty, log, LogLevel, propertyPath,
  registerRootContext, RootContext, setEnvoyFilterState, StreamContext, WasmResult,
} from "../../filter/sdk";

export * from "../../filter/sdk/exports";

const DESTINATION_PORT = propertyPath(["destination", "port"]);
const TLS = encodeFilterState(FILTER_STATE_TCP_PROXY_CLUSTER, "tls-egress");
const PLAIN = encodeFilterState(FILTER_STATE_TCP_PROXY_CLUSTER, "plain-egress");

class PortRouter extends StreamContext {
  onNewConnection(): Action {
    const port = getProperty(DESTINATION_PORT);
    // destination.port is an 8-byte little-endian integer.
    const isTls = port != null && port.byteLength == 8 && load<u64>(changetype<usize>(port)) == 443;
    if (setEnvoyFilterState(isTls ? TLS : PLAIN) != WasmResult.Ok) log(LogLevel.Warn, "port-router: cluster not set");
    return Action.Continue;
  }
}

class PortRouterRoot extends RootContext {
  newStreamContext(id: u32): StreamContext | null {
    return new PortRouter(id, this);
  }
}

registerRootContext((id: u32): RootContext => new PortRouterRoot(id));
