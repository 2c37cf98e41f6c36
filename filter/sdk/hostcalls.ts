// Typed wrappers over the ABI imports: the only place that handles guest pointers. Data the host
// returns was allocated through our exported allocator (heap.alloc); it is copied into a managed
// ArrayBuffer and freed here, so callers never own raw memory.
import * as abi from "./imports";
import { BufferType, LogLevel, MapType, MetricType, StreamType, WasmResult } from "./types";

// Two u32 out-parameters (pointer, size) the host writes for every call that returns data.
const returnData: usize = memory.data(8);
const returnSize: usize = returnData + 4;

/** Bytes the host has handed in since the last collection (see proxy_on_delete). */
export let receivedSinceCollect: usize = 0;

export function resetReceived(): void {
  receivedSinceCollect = 0;
}

/** The size of what the host returned, counted toward the next collection. */
function returnedSize(): usize {
  const size = load<u32>(returnSize) as usize;
  receivedSinceCollect += size;
  return size;
}

function takeReturned(): ArrayBuffer {
  const ptr = load<u32>(returnData) as usize;
  const size = returnedSize();
  const out = new ArrayBuffer(<i32>size);
  if (size > 0) memory.copy(changetype<usize>(out), ptr, size);
  if (ptr != 0) heap.free(ptr);
  return out;
}

/** The returned bytes as a string, decoded in place: no intermediate copy. */
function takeReturnedString(): string {
  const ptr = load<u32>(returnData) as usize;
  const size = returnedSize();
  if (ptr == 0) return "";
  const out = String.UTF8.decodeUnsafe(ptr, size);
  heap.free(ptr);
  return out;
}

function clearReturn(): void {
  store<u32>(returnData, 0);
  store<u32>(returnSize, 0);
}

export function utf8(text: string): ArrayBuffer {
  return String.UTF8.encode(text);
}

export function fromUtf8(bytes: ArrayBuffer): string {
  return String.UTF8.decode(bytes);
}

export function log(level: LogLevel, message: string): void {
  const bytes = utf8(message);
  abi.proxy_log(level, changetype<usize>(bytes), bytes.byteLength);
}

/** The host's current log level; Info when the host cannot say. */
export function hostLogLevel(): LogLevel {
  const slot = returnData;
  store<u32>(slot, LogLevel.Info);
  abi.proxy_get_log_level(slot);
  return load<u32>(slot) as LogLevel;
}

/** Property path as Envoy expects it: segments joined by NUL, no trailing NUL. */
export function propertyPath(segments: string[]): ArrayBuffer {
  return utf8(segments.join("\0"));
}

/** A property's raw bytes, or null when the host has none (NotFound, or not yet available). */
export function getProperty(path: ArrayBuffer): ArrayBuffer | null {
  return askProperty(path) ? takeReturned() : null;
}

/** A string property (an address, a name) as text; "" when the host has none. */
export function getPropertyString(path: ArrayBuffer): string {
  return askProperty(path) ? takeReturnedString() : "";
}

function askProperty(path: ArrayBuffer): bool {
  clearReturn();
  return abi.proxy_get_property(changetype<usize>(path), path.byteLength, returnData, returnSize) == WasmResult.Ok;
}

export function setProperty(path: ArrayBuffer, value: ArrayBuffer): WasmResult {
  return abi.proxy_set_property(changetype<usize>(path), path.byteLength, changetype<usize>(value), value.byteLength);
}

export function getBufferBytes(buffer: BufferType, start: u32, maxSize: u32): ArrayBuffer | null {
  clearReturn();
  const status = abi.proxy_get_buffer_bytes(buffer, start, maxSize, returnData, returnSize);
  if (status != WasmResult.Ok) return null;
  return takeReturned();
}

/** Replaces `size` bytes at `start` of the buffer with `data` (size 0 inserts, as in Envoy). */
export function setBufferBytes(buffer: BufferType, start: u32, size: u32, data: ArrayBuffer): WasmResult {
  return abi.proxy_set_buffer_bytes(buffer, start, size, changetype<usize>(data), data.byteLength);
}

export function getHeader(map: MapType, name: string): string | null {
  const key = utf8(name);
  clearReturn();
  const status = abi.proxy_get_header_map_value(map, changetype<usize>(key), key.byteLength, returnData, returnSize);
  if (status != WasmResult.Ok) return null;
  return fromUtf8(takeReturned());
}

export function replaceHeader(map: MapType, name: string, value: string): WasmResult {
  const key = utf8(name);
  const bytes = utf8(value);
  return abi.proxy_replace_header_map_value(map, changetype<usize>(key), key.byteLength, changetype<usize>(bytes), bytes.byteLength);
}

export function removeHeader(map: MapType, name: string): WasmResult {
  const key = utf8(name);
  return abi.proxy_remove_header_map_value(map, changetype<usize>(key), key.byteLength);
}

/** Answers an HTTP request from the proxy itself; the request goes no further. */
export function sendLocalResponse(status: u32, details: string, body: string): WasmResult {
  const detailBytes = utf8(details);
  const bodyBytes = utf8(body);
  // An empty serialized header map: a u32 count of zero.
  const headers = new ArrayBuffer(4);
  return abi.proxy_send_local_response(status, changetype<usize>(detailBytes), detailBytes.byteLength,
    changetype<usize>(bodyBytes), bodyBytes.byteLength, changetype<usize>(headers), 4, -1);
}

export function closeStream(stream: StreamType): WasmResult {
  return abi.proxy_close_stream(stream);
}

export function continueStream(stream: StreamType): WasmResult {
  return abi.proxy_continue_stream(stream);
}

/** Result of a foreign function: the host's status and whatever bytes it returned. */
export class ForeignResult {
  constructor(public status: WasmResult, public data: ArrayBuffer | null) {}
}

export function callForeignFunction(name: ArrayBuffer, args: ArrayBuffer): ForeignResult {
  clearReturn();
  const status = abi.proxy_call_foreign_function(changetype<usize>(name), name.byteLength,
    changetype<usize>(args), args.byteLength, returnData, returnSize);
  if (status != WasmResult.Ok) return new ForeignResult(status, null);
  return new ForeignResult(status, takeReturned());
}

/** Defines a metric and returns its id, or u32.MAX_VALUE when the host refuses it. */
export function defineMetric(type: MetricType, name: string): u32 {
  const bytes = utf8(name);
  store<u32>(returnData, u32.MAX_VALUE);
  const status = abi.proxy_define_metric(type, changetype<usize>(bytes), bytes.byteLength, returnData);
  return status == WasmResult.Ok ? load<u32>(returnData) : u32.MAX_VALUE;
}

export function incrementMetric(id: u32, offset: i64): void {
  if (id != u32.MAX_VALUE) abi.proxy_increment_metric(id, offset);
}

export function recordMetric(id: u32, value: u64): void {
  if (id != u32.MAX_VALUE) abi.proxy_record_metric(id, value);
}

export function getMetric(id: u32): u64 {
  const slot = memory.data(8);
  store<u64>(slot, 0);
  abi.proxy_get_metric(id, slot);
  return load<u64>(slot);
}
