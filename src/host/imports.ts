// Every host function a proxy-wasm module may import, as proxy-wasm-cpp-host registers them
// (src/wasm.cc registerCallbacks): the common proxy_* set for every ABI version, the functions
// specific to the module's version (0.1.0: get_configuration, continue_request/response,
// clear_route_cache; 0.2.0: continue_stream, close_stream; 0.2.1: those and get_log_level),
// Emscripten's two helpers, and the WASI preview1 functions under both wasi_unstable and
// wasi_snapshot_preview1. Every i32 argument is read as unsigned, as cpp-host's
// ConvertFunctionWordToUint32 does (a Rust SDK asks for usize::MAX bytes as 0xFFFFFFFF). While
// the VM starts, only proxy_log and the WASI calls cpp-host's startVm allows may run.
import { randomFillSync } from "node:crypto";
import { BufferType, MapType, WasmResult, type WasmResultCode } from "./abi.js";
import type { HostContext } from "./context.js";
import { decodeHeaderPairs, encodeHeaderPairs } from "./header-pairs.js";
import type { GrpcCalls } from "./grpc-call.js";
import type { HttpCalls } from "./http-call.js";
import type { GuestMemory } from "./memory.js";
import type { MetricRegistry } from "./metrics.js";
import type { SharedData, SharedQueues } from "./shared-data.js";

export interface AbiHost {
  readonly memory: GuestMemory;
  /** True while _initialize/_start runs: Envoy allows only logging and WASI then. */
  readonly restricted: boolean;
  readonly metrics: MetricRegistry;
  readonly shared: SharedData;
  readonly queues: SharedQueues;
  /** The VM's vm_id: the scope of the queues it registers. */
  readonly vmId: string;
  effective(): HostContext;
  setEffectiveContext(id: number): WasmResultCode;
  log(level: number, message: string): void;
  logLevel(): number;
  setTickPeriod(milliseconds: number): void;
  done(): WasmResultCode;
  pluginConfiguration(): Buffer;
  readonly httpCalls: HttpCalls;
  readonly grpcCalls: GrpcCalls;
}

export class RestrictedCallError extends Error {}

export class ProcExit extends Error {
  constructor(readonly code: number) {
    super(`module called proc_exit(${code})`);
  }
}

type HostFunction = (...args: never[]) => number | bigint | void;

/** An i32 from Wasm arrives as a signed JavaScript number; the ABI's are all u32. */
function unsigned(value: unknown): unknown {
  return typeof value === "number" ? value >>> 0 : value;
}

/** Functions of the module's ABI version only (cpp-host registers them per version). */
const ABI_SPECIFIC: Record<string, readonly string[]> = {
  "0.1.0": ["proxy_get_configuration", "proxy_continue_request", "proxy_continue_response", "proxy_clear_route_cache"],
  "0.2.0": ["proxy_continue_stream", "proxy_close_stream"],
  "0.2.1": ["proxy_continue_stream", "proxy_close_stream", "proxy_get_log_level"],
};
const ALL_ABI_SPECIFIC = new Set(Object.values(ABI_SPECIFIC).flat());

/** WASI calls allowed while _initialize/_start/main run (cpp-host WasmBase::startVm). */
const WASI_ALLOWED_AT_START = new Set(["fd_write", "args_sizes_get", "args_get", "environ_sizes_get", "environ_get",
  "fd_prestat_get", "fd_prestat_dir_name", "clock_time_get", "random_get"]);


/** `module.field` for every function in an import object, for clear load errors. */
export function importNames(imports: Record<string, Record<string, unknown>>): Set<string> {
  const names = new Set<string>();
  for (const [module, fields] of Object.entries(imports)) for (const field of Object.keys(fields)) names.add(`${module}.${field}`);
  return names;
}

export function createImports(host: AbiHost, abiVersion: string): Record<string, Record<string, HostFunction>> {
  const mem = () => host.memory;
  const ctx = () => host.effective();
  const returnBytes = (data: Uint8Array | undefined, ptrAddress: number, sizeAddress: number): WasmResultCode => {
    if (data === undefined) return WasmResult.NotFound;
    mem().returnBytes(data, ptrAddress, sizeAddress);
    return WasmResult.Ok;
  };
  // An HTTP call's answer and a gRPC event are readable only while their callback runs.
  const bufferOf = (type: number) => (type === BufferType.HttpCallResponseBody ? host.httpCalls.current?.body
    : type === BufferType.GrpcReceiveBuffer ? host.grpcCalls.current?.message : ctx().buffer(type));
  const headersOf = (type: number) => {
    switch (type) {
      case MapType.HttpCallResponseHeaders: return host.httpCalls.current?.headers;
      case MapType.HttpCallResponseTrailers: return host.httpCalls.current?.trailers;
      case MapType.GrpcReceiveInitialMetadata: return host.grpcCalls.current?.initialMetadata;
      case MapType.GrpcReceiveTrailingMetadata: return host.grpcCalls.current?.trailingMetadata;
      default: return ctx().headers(type);
    }
  };
  const pairsAt = (ptr: number, size: number) => (size === 0 ? [] : decodeHeaderPairs(mem().copy(ptr, size)));
  const grpcStart = (servicePtr: number, serviceSize: number, serviceNamePtr: number, serviceNameSize: number, methodPtr: number,
    methodSize: number, metadataPtr: number, metadataSize: number, timeoutMs: number, tokenPtr: number, message?: Buffer) => {
    const { status, token } = host.grpcCalls.start(ctx(), mem().copy(servicePtr, serviceSize), {
      service: mem().string(serviceNamePtr, serviceNameSize), method: mem().string(methodPtr, methodSize),
      metadata: pairsAt(metadataPtr, metadataSize), timeoutMs,
    }, message);
    if (token !== undefined) mem().writeU32(tokenPtr, token);
    return status;
  };

  const proxy: Record<string, HostFunction> = {
    proxy_get_log_level: (levelPtr: number) => {
      mem().writeU32(levelPtr, host.logLevel());
      return WasmResult.Ok;
    },
    proxy_get_status: (codePtr: number, messagePtr: number, messageSize: number) => {
      mem().writeU32(codePtr, 0);
      return returnBytes(Buffer.alloc(0), messagePtr, messageSize);
    },
    proxy_set_tick_period_milliseconds: (period: number) => {
      host.setTickPeriod(period);
      return WasmResult.Ok;
    },
    proxy_get_current_time_nanoseconds: (timePtr: number) => {
      mem().writeU64(timePtr, BigInt(Date.now()) * 1_000_000n);
      return WasmResult.Ok;
    },
    proxy_get_property: (pathPtr: number, pathSize: number, dataPtr: number, sizePtr: number) =>
      returnBytes(ctx().property(mem().string(pathPtr, pathSize)), dataPtr, sizePtr),
    proxy_set_property: (pathPtr: number, pathSize: number, valuePtr: number, valueSize: number) =>
      ctx().setProperty(mem().string(pathPtr, pathSize), mem().copy(valuePtr, valueSize)),
    proxy_continue_stream: (stream: number) => ctx().continueStream(stream),
    proxy_close_stream: (stream: number) => ctx().closeStream(stream),
    proxy_send_local_response: (status: number, detailsPtr: number, detailsSize: number, bodyPtr: number,
      bodySize: number, headersPtr: number, headersSize: number, _grpcStatus: number) =>
      ctx().sendLocalResponse(status, mem().string(detailsPtr, detailsSize), mem().copy(bodyPtr, bodySize), pairsAt(headersPtr, headersSize)),
    proxy_get_buffer_status: (type: number, lengthPtr: number, flagsPtr: number) => {
      const buffer = bufferOf(type);
      if (buffer === undefined) return WasmResult.NotFound;
      mem().writeU32(lengthPtr, buffer.length);
      mem().writeU32(flagsPtr, 0);
      return WasmResult.Ok;
    },
    proxy_get_buffer_bytes: (type: number, start: number, maxSize: number, dataPtr: number, sizePtr: number) => {
      const buffer = bufferOf(type);
      if (buffer === undefined) return WasmResult.NotFound;
      if (start > buffer.length) return WasmResult.BadArgument;
      return returnBytes(buffer.subarray(start, start + maxSize), dataPtr, sizePtr);
    },
    proxy_set_buffer_bytes: (type: number, start: number, size: number, dataPtr: number, dataSize: number) =>
      ctx().setBuffer(type, start, size, mem().copy(dataPtr, dataSize)),
    proxy_get_header_map_value: (type: number, keyPtr: number, keySize: number, dataPtr: number, sizePtr: number) => {
      const key = mem().string(keyPtr, keySize).toLowerCase();
      const pair = headersOf(type)?.find(([name]) => name === key);
      return returnBytes(pair === undefined ? undefined : Buffer.from(pair[1]), dataPtr, sizePtr);
    },
    proxy_add_header_map_value: (type: number, keyPtr: number, keySize: number, valuePtr: number, valueSize: number) => {
      const headers = headersOf(type);
      if (headers === undefined) return WasmResult.NotFound;
      headers.push([mem().string(keyPtr, keySize).toLowerCase(), mem().string(valuePtr, valueSize)]);
      return WasmResult.Ok;
    },
    proxy_replace_header_map_value: (type: number, keyPtr: number, keySize: number, valuePtr: number, valueSize: number) => {
      const headers = headersOf(type);
      if (headers === undefined) return WasmResult.NotFound;
      const key = mem().string(keyPtr, keySize).toLowerCase();
      const value = mem().string(valuePtr, valueSize);
      const kept = headers.filter(([name]) => name !== key);
      headers.length = 0;
      headers.push(...kept, [key, value]);
      return WasmResult.Ok;
    },
    proxy_remove_header_map_value: (type: number, keyPtr: number, keySize: number) => {
      const headers = headersOf(type);
      if (headers === undefined) return WasmResult.NotFound;
      const key = mem().string(keyPtr, keySize).toLowerCase();
      const kept = headers.filter(([name]) => name !== key);
      headers.length = 0;
      headers.push(...kept);
      return WasmResult.Ok;
    },
    proxy_get_header_map_pairs: (type: number, dataPtr: number, sizePtr: number) => {
      const headers = headersOf(type);
      return returnBytes(headers === undefined ? undefined : encodeHeaderPairs(headers), dataPtr, sizePtr);
    },
    proxy_set_header_map_pairs: (type: number, dataPtr: number, dataSize: number) => {
      const headers = headersOf(type);
      if (headers === undefined) return WasmResult.NotFound;
      const pairs = decodeHeaderPairs(mem().copy(dataPtr, dataSize));
      headers.length = 0;
      headers.push(...pairs.map(([name, value]): [string, string] => [name.toLowerCase(), value]));
      return WasmResult.Ok;
    },
    proxy_get_header_map_size: (type: number, sizePtr: number) => {
      const headers = headersOf(type);
      if (headers === undefined) return WasmResult.NotFound;
      mem().writeU32(sizePtr, encodeHeaderPairs(headers).length);
      return WasmResult.Ok;
    },
    proxy_get_shared_data: (keyPtr: number, keySize: number, dataPtr: number, sizePtr: number, casPtr: number) => {
      const entry = host.shared.get(mem().string(keyPtr, keySize));
      if (entry === undefined) return WasmResult.NotFound;
      mem().returnBytes(entry.value, dataPtr, sizePtr);
      mem().writeU32(casPtr, entry.cas);
      return WasmResult.Ok;
    },
    proxy_set_shared_data: (keyPtr: number, keySize: number, valuePtr: number, valueSize: number, cas: number) =>
      host.shared.set(mem().string(keyPtr, keySize), mem().copy(valuePtr, valueSize), cas),
    proxy_register_shared_queue: (namePtr: number, nameSize: number, tokenPtr: number) => {
      const context = ctx();
      const token = host.queues.register(host.vmId, mem().string(namePtr, nameSize), (ready) => context.deliver("proxy_on_queue_ready", ready));
      mem().writeU32(tokenPtr, token);
      return WasmResult.Ok;
    },
    proxy_resolve_shared_queue: (vmIdPtr: number, vmIdSize: number, namePtr: number, nameSize: number, tokenPtr: number) => {
      const token = host.queues.resolve(mem().string(vmIdPtr, vmIdSize), mem().string(namePtr, nameSize));
      if (token === undefined) return WasmResult.NotFound;
      mem().writeU32(tokenPtr, token);
      return WasmResult.Ok;
    },
    proxy_enqueue_shared_queue: (token: number, dataPtr: number, dataSize: number) =>
      host.queues.enqueue(token, mem().copy(dataPtr, dataSize)),
    proxy_dequeue_shared_queue: (token: number, dataPtr: number, sizePtr: number) => {
      const item = host.queues.dequeue(token);
      return typeof item === "number" ? item : returnBytes(item, dataPtr, sizePtr);
    },
    proxy_define_metric: (type: number, namePtr: number, nameSize: number, idPtr: number) => {
      const id = host.metrics.define(type, mem().string(namePtr, nameSize));
      if (id === undefined) return WasmResult.BadArgument;
      mem().writeU32(idPtr, id);
      return WasmResult.Ok;
    },
    proxy_increment_metric: (id: number, offset: bigint) =>
      host.metrics.increment(id, BigInt(offset)) ? WasmResult.Ok : WasmResult.NotFound,
    proxy_record_metric: (id: number, value: bigint) =>
      host.metrics.record(id, BigInt.asUintN(64, BigInt(value))) ? WasmResult.Ok : WasmResult.NotFound,
    proxy_get_metric: (id: number, valuePtr: number) => {
      const metric = host.metrics.get(id);
      if (metric === undefined) return WasmResult.NotFound;
      mem().writeU64(valuePtr, metric.value);
      return WasmResult.Ok;
    },
    proxy_set_effective_context: (id: number) => host.setEffectiveContext(id),
    proxy_done: () => host.done(),
    proxy_call_foreign_function: (namePtr: number, nameSize: number, argsPtr: number, argsSize: number,
      dataPtr: number, sizePtr: number) => {
      const result = ctx().callForeign(mem().string(namePtr, nameSize), mem().copy(argsPtr, argsSize));
      if (result.status !== WasmResult.Ok) return result.status;
      return returnBytes(result.data ?? Buffer.alloc(0), dataPtr, sizePtr);
    },
    proxy_http_call: (upstreamPtr: number, upstreamSize: number, headersPtr: number, headersSize: number, bodyPtr: number, bodySize: number,
      trailersPtr: number, trailersSize: number, timeoutMs: number, tokenPtr: number) => {
      const { status, token } = host.httpCalls.start(ctx(), {
        cluster: mem().string(upstreamPtr, upstreamSize),
        headers: pairsAt(headersPtr, headersSize),
        body: mem().copy(bodyPtr, bodySize),
        trailers: pairsAt(trailersPtr, trailersSize),
        timeoutMs,
      });
      if (token !== undefined) mem().writeU32(tokenPtr, token);
      return status;
    },
    proxy_grpc_call: (servicePtr: number, serviceSize: number, serviceNamePtr: number, serviceNameSize: number, methodPtr: number, methodSize: number,
      metadataPtr: number, metadataSize: number, messagePtr: number, messageSize: number, timeoutMs: number, tokenPtr: number) =>
      grpcStart(servicePtr, serviceSize, serviceNamePtr, serviceNameSize, methodPtr, methodSize, metadataPtr, metadataSize, timeoutMs, tokenPtr,
        mem().copy(messagePtr, messageSize)),
    proxy_grpc_stream: (servicePtr: number, serviceSize: number, serviceNamePtr: number, serviceNameSize: number, methodPtr: number, methodSize: number,
      metadataPtr: number, metadataSize: number, tokenPtr: number) =>
      grpcStart(servicePtr, serviceSize, serviceNamePtr, serviceNameSize, methodPtr, methodSize, metadataPtr, metadataSize, 0, tokenPtr),
    proxy_grpc_send: (token: number, messagePtr: number, messageSize: number, endStream: number) =>
      host.grpcCalls.send(token, mem().copy(messagePtr, messageSize), endStream !== 0),
    proxy_grpc_cancel: (token: number) => host.grpcCalls.cancel(token),
    proxy_grpc_close: (token: number) => host.grpcCalls.close(token),
    // ABI 0.1.0 names that older SDKs still import.
    proxy_get_configuration: (dataPtr: number, sizePtr: number) => returnBytes(host.pluginConfiguration(), dataPtr, sizePtr),
    proxy_continue_request: () => ctx().continueStream(0),
    proxy_continue_response: () => ctx().continueStream(1),
    proxy_clear_route_cache: () => WasmResult.Ok,
  };

  proxy.proxy_log = (level: number, ptr: number, size: number) => {
    host.log(level, mem().string(ptr, size));
    return WasmResult.Ok;
  };
  const specific = new Set(ABI_SPECIFIC[abiVersion] ?? []);
  const env: Record<string, HostFunction> = {
    emscripten_notify_memory_growth: () => undefined,
    pthread_equal: (a: number, b: number) => (a === b ? 1 : 0),
  };
  for (const [name, fn] of Object.entries(proxy)) {
    if (ALL_ABI_SPECIFIC.has(name) && !specific.has(name)) continue;
    env[name] = hostCall(host, name, fn, name === "proxy_log");
  }
  const wasi: Record<string, HostFunction> = {};
  for (const [name, fn] of Object.entries(createWasi(host))) wasi[name] = hostCall(host, `WASI ${name}`, fn, WASI_ALLOWED_AT_START.has(name));
  return { env, wasi_snapshot_preview1: wasi, wasi_unstable: wasi };
}

/**
 * The function as the module calls it: arguments unsigned, refused while the VM starts unless
 * allowed then. Fixed parameters rather than rest arguments, and no more of them than the
 * function declares up to six: these wrappers are on the per-connection path (proxy_get_property
 * takes 4 arguments, proxy_call_foreign_function 6); the longest, proxy_grpc_call, takes 12.
 */
function hostCall(host: AbiHost, name: string, fn: HostFunction, allowedAtStart: boolean): HostFunction {
  const call = fn as (...args: unknown[]) => number | bigint | void;
  const refuse = () => new RestrictedCallError(`${name} called while the VM starts; only proxy_log and some WASI calls are allowed then`);
  if (fn.length <= 6) {
    return ((a: never, b: never, c: never, d: never, e: never, f: never) => {
      if (host.restricted && !allowedAtStart) throw refuse();
      return call(unsigned(a), unsigned(b), unsigned(c), unsigned(d), unsigned(e), unsigned(f));
    }) as HostFunction;
  }
  return ((a: never, b: never, c: never, d: never, e: never, f: never, g: never, h: never, i: never, j: never, k: never, l: never) => {
    if (host.restricted && !allowedAtStart) throw refuse();
    return call(unsigned(a), unsigned(b), unsigned(c), unsigned(d), unsigned(e), unsigned(f), unsigned(g), unsigned(h), unsigned(i), unsigned(j), unsigned(k), unsigned(l));
  }) as HostFunction;
}

const WASI_SUCCESS = 0;
const WASI_EBADF = 8;
const WASI_ENOSYS = 52;

/**
 * WASI as Envoy offers it: stdout/stderr go to the log, clocks and randomness work, no files;
 * Go's wasip1 runtime also needs fd_fdstat_set_flags, sched_yield and poll_oneoff.
 */
function createWasi(host: AbiHost): Record<string, HostFunction> {
  const mem = () => host.memory;
  return {
    fd_write: (fd: number, iovs: number, iovsLength: number, writtenPtr: number) => {
      if (fd !== 1 && fd !== 2) return WASI_EBADF;
      const view = mem();
      let text = "";
      let written = 0;
      for (let i = 0; i < iovsLength; i++) {
        const header = view.copy(iovs + i * 8, 8);
        const ptr = header.readUInt32LE(0);
        const length = header.readUInt32LE(4);
        text += view.string(ptr, length);
        written += length;
      }
      host.log(fd === 1 ? 2 : 4, text.replace(/\n$/, ""));
      view.writeU32(writtenPtr, written);
      return WASI_SUCCESS;
    },
    fd_read: () => WASI_EBADF,
    fd_seek: () => WASI_EBADF,
    fd_close: () => WASI_EBADF,
    fd_fdstat_get: () => WASI_EBADF,
    // Go's wasip1 runtime sets stdio non-blocking; there is nothing to change.
    fd_fdstat_set_flags: (fd: number) => (fd <= 2 ? WASI_SUCCESS : WASI_EBADF),
    path_open: () => WASI_ENOSYS,
    fd_prestat_get: () => WASI_EBADF,
    fd_prestat_dir_name: () => WASI_EBADF,
    environ_sizes_get: (countPtr: number, sizePtr: number) => {
      mem().writeU32(countPtr, 0);
      mem().writeU32(sizePtr, 0);
      return WASI_SUCCESS;
    },
    environ_get: () => WASI_SUCCESS,
    args_sizes_get: (countPtr: number, sizePtr: number) => {
      mem().writeU32(countPtr, 0);
      mem().writeU32(sizePtr, 0);
      return WASI_SUCCESS;
    },
    args_get: () => WASI_SUCCESS,
    clock_time_get: (clock: number, _precision: bigint, timePtr: number) => {
      // Clock 0 is wall time; the others are monotonic.
      mem().writeU64(timePtr, clock === 0 ? BigInt(Date.now()) * 1_000_000n : process.hrtime.bigint());
      return WASI_SUCCESS;
    },
    random_get: (ptr: number, length: number) => {
      mem().write(ptr, randomFillSync(Buffer.alloc(length)));
      return WASI_SUCCESS;
    },
    sched_yield: () => WASI_SUCCESS,
    poll_oneoff: () => WASI_ENOSYS,
    proc_exit: (code: number) => {
      throw new ProcExit(code);
    },
  };
}
