// What a proxy-wasm callback can reach on the host side. The VM routes each host call to the
// "effective" context (the one whose callback is running, or the one set with
// proxy_set_effective_context); stream and HTTP contexts implement the parts they support.
import { WasmResult, type WasmResultCode } from "./abi.js";
import { builtInForeignFunction } from "./foreign-functions.js";

export interface ForeignResult {
  status: WasmResultCode;
  data?: Uint8Array;
}

export type HeaderPairs = [string, string][];

/**
 * What a context's plugin (its root context) decides for the host calls that are per plugin in
 * Envoy: the log prefix and level, the tick of the root, the configuration of ABI 0.1.0's
 * proxy_get_configuration. Several plugins may share one VM (see vm-registry.ts).
 */
export interface PluginScope {
  log(level: number, message: string): void;
  logLevel(): number;
  setTickPeriod(milliseconds: number): void;
  pluginConfiguration(): Buffer;
}

export interface HostContext {
  readonly id: number;
  /** Root contexts may not touch connection state (Envoy answers NotFound). */
  readonly isRoot: boolean;
  /** The plugin this context belongs to; none for contexts outside any plugin (tests). */
  readonly scope: PluginScope | undefined;
  /** `path` as the guest sends it: segments separated by NUL (proxy-wasm's property path). */
  property(path: string): Uint8Array | undefined;
  setProperty(path: string, value: Buffer): WasmResultCode;
  buffer(type: number): Buffer | undefined;
  setBuffer(type: number, start: number, size: number, data: Buffer): WasmResultCode;
  callForeign(name: string, args: Buffer): ForeignResult;
  closeStream(type: number): WasmResultCode;
  continueStream(type: number): WasmResultCode;
  headers(type: number): HeaderPairs | undefined;
  sendLocalResponse(status: number, details: string, body: Buffer, headers: HeaderPairs): WasmResultCode;
  /** An event of a call this context made (http-call.ts, grpc-call.ts): the module's `callback` runs with the context's id first. */
  deliver(callback: string, ...args: number[]): void;
}

/** Defaults for a context that has none of the optional capabilities. */
export abstract class BaseHostContext implements HostContext {
  abstract readonly id: number;
  abstract readonly isRoot: boolean;
  readonly scope: PluginScope | undefined = undefined;

  property(_path: string): Uint8Array | undefined {
    return undefined;
  }

  setProperty(_path: string, _value: Buffer): WasmResultCode {
    return WasmResult.NotFound;
  }

  buffer(_type: number): Buffer | undefined {
    return undefined;
  }

  setBuffer(_type: number, _start: number, _size: number, _data: Buffer): WasmResultCode {
    return WasmResult.NotFound;
  }

  callForeign(name: string, args: Buffer): ForeignResult {
    return builtInForeignFunction(name, args);
  }

  closeStream(_type: number): WasmResultCode {
    return WasmResult.NotFound;
  }

  continueStream(_type: number): WasmResultCode {
    return WasmResult.NotFound;
  }

  headers(_type: number): HeaderPairs | undefined {
    return undefined;
  }

  sendLocalResponse(_status: number, _details: string, _body: Buffer, _headers: HeaderPairs): WasmResultCode {
    return WasmResult.NotFound;
  }

  deliver(_callback: string, ..._args: number[]): void {
    // Only contexts that run module code receive call events.
  }
}

/**
 * Envoy's set_buffer_bytes on a connection buffer (source/extensions/common/wasm/context.cc,
 * Buffer::copyFrom): start 0 drains `size` bytes and prepends `data`; start at or past the end
 * appends; anything else is BadArgument. Returns the new buffer, or undefined for BadArgument.
 */
export function spliceBuffer(buffer: Buffer, start: number, size: number, data: Buffer): Buffer | undefined {
  if (start === 0) return Buffer.concat([data, buffer.subarray(Math.min(size, buffer.length))]);
  if (start >= buffer.length) return Buffer.concat([buffer, data]);
  return undefined;
}
