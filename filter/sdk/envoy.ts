// Envoy's foreign function `set_envoy_filter_state` (Envoy >= 1.28,
// source/extensions/common/wasm/foreign.cc). Its argument is the protobuf message
// envoy.source.extensions.common.wasm.SetEnvoyFilterStateArguments
//   { string path = 1; string value = 2; LifeSpan span = 3; }
// encoded here by hand: two length-delimited strings and an optional varint are all it needs,
// and a protobuf runtime would multiply the module's size.
import { callForeignFunctionForStatus, utf8 } from "./hostcalls";
import { WasmResult } from "./types";

export const FILTER_STATE_TCP_PROXY_CLUSTER = "envoy.tcp_proxy.cluster";
/** The address an ORIGINAL_DST cluster connects to (IP:PORT), instead of the connection's local address. */
export const FILTER_STATE_ORIGINAL_DST_ADDRESS = "envoy.network.transport_socket.original_dst_address";

const FUNCTION_NAME = utf8("set_envoy_filter_state");

function varintSize(value: u32): i32 {
  let size = 1;
  while (value >= 0x80) {
    value >>>= 7;
    size++;
  }
  return size;
}

function writeVarint(at: usize, value: u32): usize {
  while (value >= 0x80) {
    store<u8>(at++, (value & 0x7f) | 0x80);
    value >>>= 7;
  }
  store<u8>(at++, value);
  return at;
}

function writeField(at: usize, tag: u8, bytes: ArrayBuffer): usize {
  store<u8>(at++, tag);
  at = writeVarint(at, bytes.byteLength);
  memory.copy(at, changetype<usize>(bytes), bytes.byteLength);
  return at + bytes.byteLength;
}

/** Serialized SetEnvoyFilterStateArguments; span 0 (FilterChain) is omitted, as proto3 does. */
export function encodeFilterState(path: string, value: string, span: u32 = 0): ArrayBuffer {
  const pathBytes = utf8(path);
  const valueBytes = utf8(value);
  let size = 2 + varintSize(pathBytes.byteLength) + pathBytes.byteLength
    + varintSize(valueBytes.byteLength) + valueBytes.byteLength;
  if (span != 0) size += 1 + varintSize(span);
  const out = new ArrayBuffer(size);
  let at = changetype<usize>(out);
  at = writeField(at, 0x0a, pathBytes);
  at = writeField(at, 0x12, valueBytes);
  if (span != 0) {
    store<u8>(at++, 0x18);
    writeVarint(at, span);
  }
  return out;
}

/** Calls set_envoy_filter_state with pre-encoded arguments (see encodeFilterState). */
export function setEnvoyFilterState(encodedArguments: ArrayBuffer): WasmResult {
  return callForeignFunctionForStatus(FUNCTION_NAME, encodedArguments);
}
