// Numeric values of proxy-wasm ABI 0.2.x, as Envoy's host (proxy-wasm-cpp-host) uses them.

export const WasmResult = {
  Ok: 0,
  NotFound: 1,
  BadArgument: 2,
  SerializationFailure: 3,
  ParseFailure: 4,
  InvalidMemoryAccess: 6,
  Empty: 7,
  CasMismatch: 8,
  InternalFailure: 10,
  Unimplemented: 12,
} as const;
export type WasmResultCode = (typeof WasmResult)[keyof typeof WasmResult];

export const LogLevel = { trace: 0, debug: 1, info: 2, warn: 3, error: 4, critical: 5 } as const;
export type LogLevelName = keyof typeof LogLevel;
export const LOG_LEVEL_NAMES: readonly LogLevelName[] = ["trace", "debug", "info", "warn", "error", "critical"];

/** Network and HTTP callbacks return Continue (0) or Pause (1, Envoy's StopIteration). */
export const FilterAction = { Continue: 0, Pause: 1 } as const;

export const BufferType = {
  HttpRequestBody: 0,
  HttpResponseBody: 1,
  DownstreamData: 2,
  UpstreamData: 3,
  HttpCallResponseBody: 4,
  GrpcReceiveBuffer: 5,
  VmConfiguration: 6,
  PluginConfiguration: 7,
  CallData: 8,
} as const;

export const MapType = {
  HttpRequestHeaders: 0,
  HttpRequestTrailers: 1,
  HttpResponseHeaders: 2,
  HttpResponseTrailers: 3,
  GrpcReceiveInitialMetadata: 4,
  GrpcReceiveTrailingMetadata: 5,
  HttpCallResponseHeaders: 6,
  HttpCallResponseTrailers: 7,
} as const;

export const MetricType = { Counter: 0, Gauge: 1, Histogram: 2 } as const;

export const StreamType = { HttpRequest: 0, HttpResponse: 1, Downstream: 2, Upstream: 3 } as const;

export const PeerType = { Unknown: 0, Local: 1, Remote: 2 } as const;

/** ABI versions this host runs; the module says which by exporting `proxy_abi_version_X_Y_Z`. */
export const SUPPORTED_ABI_EXPORTS = ["proxy_abi_version_0_2_1", "proxy_abi_version_0_2_0", "proxy_abi_version_0_1_0"] as const;
