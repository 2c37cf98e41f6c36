// The SDK's public surface for filter authors.
export * from "./types";
export * from "./contexts";
export {
  callForeignFunction, closeStream, continueStream, defineMetric, ForeignResult, fromUtf8, getBufferBytes, getHeader,
  getMetric, getProperty, getPropertyInto, getPropertyString, hostLogLevel, httpCall, HttpCallResult, incrementMetric, log, propertyPath,
  recordMetric, removeHeader, replaceHeader, sendLocalResponse, setBufferBytes, setProperty, utf8,
} from "./hostcalls";
export { registerRootContext } from "./dispatcher";
export { formatNumber } from "./format";
export { encodeFilterState, setEnvoyFilterState, FILTER_STATE_ORIGINAL_DST_ADDRESS, FILTER_STATE_TCP_PROXY_CLUSTER } from "./envoy";
