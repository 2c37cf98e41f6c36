// Typed wrappers over the ABI imports: the only place that handles guest pointers. Data the host
// returns was allocated through our exported allocator (heap.alloc); it is copied into a managed
// ArrayBuffer and freed here, so callers never own raw memory.
import * as abi from "./imports";
import { BufferType, LogLevel, MapType, MetricType, StreamType, WasmResult } from "./types";

// Two u32 out-parameters (pointer, size) the host writes for every call that returns data.
const returnData: usize = memory.data(8);
const returnSize: usize = returnData + 4;

// What the host returns is consumed before the next host call (copied or decoded), so small
// values (addresses, names) go to a scratch area reused by every call instead of the heap: no
// allocation, no free, no garbage on the connection path.
const SCRATCH_SIZE: usize = 512;
const scratch: usize = memory.data(<i32>SCRATCH_SIZE, 16);
let scratchUsed: usize = 0;

/**
 * Bytes the SDK has allocated on the heap since the last collection: host data and the strings
 * and buffers made from it. The module's runtime collects only when told (exports.ts).
 */
let pressure: usize = 0;

export function collectionPressure(): usize {
  return pressure;
}

export function collected(): void {
  pressure = 0;
}

/** proxy_on_memory_allocate: the scratch area when the value fits, else the heap. */
export function allocateForHost(size: usize): usize {
  const rounded = (size + 7) & ~<usize>7;
  if (rounded <= SCRATCH_SIZE - scratchUsed) {
    const at = scratch + scratchUsed;
    scratchUsed += rounded;
    return at;
  }
  pressure += size;
  return heap.alloc(size);
}

@inline function release(ptr: usize): void {
  if (ptr != 0 && (ptr < scratch || ptr >= scratch + SCRATCH_SIZE)) heap.free(ptr);
}

function takeReturned(): ArrayBuffer {
  const ptr = load<u32>(returnData) as usize;
  const size = load<u32>(returnSize) as usize;
  pressure += size;
  const out = new ArrayBuffer(<i32>size);
  if (size > 0) memory.copy(changetype<usize>(out), ptr, size);
  release(ptr);
  return out;
}

/** The returned bytes as a string, decoded in place: no intermediate copy. */
function takeReturnedString(): string {
  const ptr = load<u32>(returnData) as usize;
  const size = load<u32>(returnSize) as usize;
  if (ptr == 0) return "";
  pressure += size * 2;
  const out = String.UTF8.decodeUnsafe(ptr, size);
  release(ptr);
  return out;
}

@inline function clearReturn(): void {
  store<u32>(returnData, 0);
  store<u32>(returnSize, 0);
  scratchUsed = 0;
}

export function utf8(text: string): ArrayBuffer {
  const out = String.UTF8.encode(text);
  pressure += out.byteLength;
  return out;
}

export function fromUtf8(bytes: ArrayBuffer): string {
  pressure += bytes.byteLength * 2;
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

/**
 * Copies a property's bytes into `into` and returns its full length (which may exceed what
 * fit), or -1 when the host has none. Allocates nothing: the data path's way to read a fact.
 */
export function getPropertyInto(path: ArrayBuffer, into: StaticArray<u8>): i32 {
  if (!askProperty(path)) return -1;
  const ptr = load<u32>(returnData) as usize;
  const size = load<u32>(returnSize);
  const fit = min(size, <u32>into.length);
  const to = changetype<usize>(into);
  // Word by word: short values copy faster inline than through memory.copy's runtime call.
  let at: usize = 0;
  for (; at + 8 <= fit; at += 8) store<u64>(to + at, load<u64>(ptr + at));
  for (; at < fit; at++) store<u8>(to + at, load<u8>(ptr + at));
  release(ptr);
  return <i32>size;
}

@inline function askProperty(path: ArrayBuffer): bool {
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

/**
 * proxy-wasm's header map encoding: the pair count, each name and value length (u32 little
 * endian), then each name and value followed by a NUL. `pairs` alternates names and values.
 */
function encodeHeaderPairs(pairs: string[]): ArrayBuffer {
  const encoded = new Array<ArrayBuffer>(pairs.length);
  let size = 4 + pairs.length * 4;
  for (let i = 0; i < pairs.length; i++) {
    encoded[i] = utf8(pairs[i]);
    size += encoded[i].byteLength + 1;
  }
  const out = new ArrayBuffer(size);
  const base = changetype<usize>(out);
  store<u32>(base, pairs.length / 2);
  let at = base + 4 + pairs.length * 4;
  for (let i = 0; i < pairs.length; i++) {
    store<u32>(base + 4 + i * 4, encoded[i].byteLength);
    memory.copy(at, changetype<usize>(encoded[i]), encoded[i].byteLength);
    at += encoded[i].byteLength;
    store<u8>(at++, 0);
  }
  return out;
}

/** A call proxy_http_call started: its token for onHttpCallResponse, or why the host refused it. */
export class HttpCallResult {
  constructor(public status: WasmResult, public token: u32) {}
}

/**
 * An HTTP call to a cluster of the bootstrap. `headers` alternates names and values and must
 * hold :method, :path and :authority. The answer comes to the calling context's
 * onHttpCallResponse; after a failure or the timeout it has no headers and no body.
 */
export function httpCall(cluster: string, headers: string[], body: string, timeoutMilliseconds: u32): HttpCallResult {
  const name = utf8(cluster);
  const headerBytes = encodeHeaderPairs(headers);
  const bodyBytes = utf8(body);
  const status = abi.proxy_http_call(changetype<usize>(name), name.byteLength, changetype<usize>(headerBytes), headerBytes.byteLength,
    changetype<usize>(bodyBytes), bodyBytes.byteLength, 0, 0, timeoutMilliseconds, returnData) as WasmResult;
  return new HttpCallResult(status, status == WasmResult.Ok ? load<u32>(returnData) : 0);
}

/** Result of a foreign function: the host's status and whatever bytes it returned. */
export class ForeignResult {
  constructor(public status: WasmResult, public data: ArrayBuffer | null) {}
}

function foreignCall(name: ArrayBuffer, args: ArrayBuffer): WasmResult {
  clearReturn();
  return abi.proxy_call_foreign_function(changetype<usize>(name), name.byteLength,
    changetype<usize>(args), args.byteLength, returnData, returnSize);
}

export function callForeignFunction(name: ArrayBuffer, args: ArrayBuffer): ForeignResult {
  const status = foreignCall(name, args);
  if (status != WasmResult.Ok) return new ForeignResult(status, null);
  return new ForeignResult(status, takeReturned());
}

/** A foreign function whose result bytes are not needed: only the status, nothing allocated. */
export function callForeignFunctionForStatus(name: ArrayBuffer, args: ArrayBuffer): WasmResult {
  const status = foreignCall(name, args);
  release(load<u32>(returnData) as usize);
  return status;
}

/** Defines a metric and returns its id, or u32.MAX_VALUE when the host refuses it. */
export function defineMetric(type: MetricType, name: string): u32 {
  const bytes = utf8(name);
  store<u32>(returnData, u32.MAX_VALUE);
  const status = abi.proxy_define_metric(type, changetype<usize>(bytes), bytes.byteLength, returnData);
  return status == WasmResult.Ok ? load<u32>(returnData) : u32.MAX_VALUE;
}

@inline export function incrementMetric(id: u32, offset: i64): void {
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
