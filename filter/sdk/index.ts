// The SDK's public surface for filter authors.
export * from "./types";
export * from "./contexts";
export * from "./hostcalls";
export { registerRootContext } from "./dispatcher";
export { encodeFilterState, setEnvoyFilterState, FILTER_STATE_TCP_PROXY_CLUSTER } from "./envoy";
