// Raw host functions of proxy-wasm ABI 0.2.1 that this SDK uses. Only hostcalls.ts may call them:
// everything else works with typed values, never with guest pointers.

@external("env", "proxy_log")
export declare function proxy_log(level: i32, messagePtr: usize, messageSize: usize): i32;

@external("env", "proxy_get_log_level")
export declare function proxy_get_log_level(returnLevel: usize): i32;

@external("env", "proxy_get_property")
export declare function proxy_get_property(pathPtr: usize, pathSize: usize, returnData: usize, returnSize: usize): i32;

@external("env", "proxy_set_property")
export declare function proxy_set_property(pathPtr: usize, pathSize: usize, dataPtr: usize, dataSize: usize): i32;

@external("env", "proxy_get_buffer_bytes")
export declare function proxy_get_buffer_bytes(bufferType: i32, start: u32, maxSize: u32, returnData: usize, returnSize: usize): i32;

@external("env", "proxy_set_buffer_bytes")
export declare function proxy_set_buffer_bytes(bufferType: i32, start: u32, size: u32, dataPtr: usize, dataSize: usize): i32;

@external("env", "proxy_get_header_map_value")
export declare function proxy_get_header_map_value(mapType: i32, keyPtr: usize, keySize: usize, returnData: usize, returnSize: usize): i32;

@external("env", "proxy_replace_header_map_value")
export declare function proxy_replace_header_map_value(mapType: i32, keyPtr: usize, keySize: usize, valuePtr: usize, valueSize: usize): i32;

@external("env", "proxy_remove_header_map_value")
export declare function proxy_remove_header_map_value(mapType: i32, keyPtr: usize, keySize: usize): i32;

@external("env", "proxy_send_local_response")
export declare function proxy_send_local_response(
  statusCode: u32, detailsPtr: usize, detailsSize: usize, bodyPtr: usize, bodySize: usize,
  headersPtr: usize, headersSize: usize, grpcStatus: i32): i32;

@external("env", "proxy_close_stream")
export declare function proxy_close_stream(streamType: i32): i32;

@external("env", "proxy_continue_stream")
export declare function proxy_continue_stream(streamType: i32): i32;

@external("env", "proxy_call_foreign_function")
export declare function proxy_call_foreign_function(
  namePtr: usize, nameSize: usize, argsPtr: usize, argsSize: usize, returnData: usize, returnSize: usize): i32;

@external("env", "proxy_define_metric")
export declare function proxy_define_metric(metricType: i32, namePtr: usize, nameSize: usize, returnId: usize): i32;

@external("env", "proxy_increment_metric")
export declare function proxy_increment_metric(metricId: u32, offset: i64): i32;

@external("env", "proxy_record_metric")
export declare function proxy_record_metric(metricId: u32, value: u64): i32;

@external("env", "proxy_get_metric")
export declare function proxy_get_metric(metricId: u32, returnValue: usize): i32;

@external("env", "proxy_http_call")
export declare function proxy_http_call(
  upstreamPtr: usize, upstreamSize: usize, headersPtr: usize, headersSize: usize, bodyPtr: usize, bodySize: usize,
  trailersPtr: usize, trailersSize: usize, timeoutMilliseconds: u32, returnToken: usize): i32;
