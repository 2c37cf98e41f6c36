// The functions the host calls. A module's entry file re-exports this file (`export * from`),
// which gives it the ABI version marker, the allocator and every callback.
import { allocateForHost, collected, collectionPressure, fromUtf8, getBufferBytes } from "./hostcalls";
import {
  contextsMade, createContext, deleteContext, forgetContextsMade, existingHttp, existingStream, httpContext, rootContext, streamContext,
} from "./dispatcher";
import { Action, BufferType, PeerType } from "./types";
// Compiled in so that `--use abort=filter/sdk/abort/abortWithLog` (asconfig.json) resolves.
import "./abort";

export function proxy_abi_version_0_2_1(): void {}

/** Allocator the host uses to return data; blocks are unmanaged so the GC never moves them. */
export function proxy_on_memory_allocate(size: usize): usize {
  return allocateForHost(size);
}

export function proxy_on_context_create(contextId: u32, parentContextId: u32): void {
  createContext(contextId, parentContextId);
}

function readBuffer(buffer: BufferType, size: u32): string {
  if (size == 0) return "";
  const bytes = getBufferBytes(buffer, 0, size);
  return bytes == null ? "" : fromUtf8(bytes);
}

export function proxy_on_vm_start(rootId: u32, vmConfigurationSize: u32): bool {
  const root = rootContext(rootId);
  return root == null || root.onVmStart(readBuffer(BufferType.VmConfiguration, vmConfigurationSize));
}

export function proxy_on_configure(rootId: u32, pluginConfigurationSize: u32): bool {
  const root = rootContext(rootId);
  const configured = root == null || root.onConfigure(readBuffer(BufferType.PluginConfiguration, pluginConfigurationSize));
  // Reading a configuration leaves its whole parse behind: collect it now, not on a connection.
  collect();
  return configured;
}

export function proxy_on_tick(rootId: u32): void {
  const root = rootContext(rootId);
  if (root != null) root.onTick();
}

export function proxy_on_new_connection(contextId: u32): Action {
  const context = streamContext(contextId);
  return context == null ? Action.Continue : context.onNewConnection();
}

export function proxy_on_downstream_data(contextId: u32, size: u32, endOfStream: bool): Action {
  const context = streamContext(contextId);
  return context == null ? Action.Continue : context.onDownstreamData(size, endOfStream);
}

export function proxy_on_upstream_data(contextId: u32, size: u32, endOfStream: bool): Action {
  const context = streamContext(contextId);
  return context == null ? Action.Continue : context.onUpstreamData(size, endOfStream);
}

export function proxy_on_downstream_connection_close(contextId: u32, peer: PeerType): void {
  const context = existingStream(contextId);
  if (context != null) context.onDownstreamClose(peer);
}

export function proxy_on_upstream_connection_close(contextId: u32, peer: PeerType): void {
  const context = existingStream(contextId);
  if (context != null) context.onUpstreamClose(peer);
}

export function proxy_on_request_headers(contextId: u32, headerCount: u32, endOfStream: bool): Action {
  const context = httpContext(contextId);
  return context == null ? Action.Continue : context.onRequestHeaders(headerCount, endOfStream);
}

export function proxy_on_request_body(contextId: u32, size: u32, endOfStream: bool): Action {
  const context = httpContext(contextId);
  return context == null ? Action.Continue : context.onRequestBody(size, endOfStream);
}

export function proxy_on_response_headers(contextId: u32, headerCount: u32, endOfStream: bool): Action {
  const context = httpContext(contextId);
  return context == null ? Action.Continue : context.onResponseHeaders(headerCount, endOfStream);
}

export function proxy_on_response_body(contextId: u32, size: u32, endOfStream: bool): Action {
  const context = httpContext(contextId);
  return context == null ? Action.Continue : context.onResponseBody(size, endOfStream);
}

export function proxy_on_http_call_response(contextId: u32, token: u32, headerCount: u32, bodySize: u32, trailerCount: u32): void {
  const stream = existingStream(contextId);
  if (stream != null) return stream.onHttpCallResponse(token, headerCount, bodySize, trailerCount);
  const http = existingHttp(contextId);
  if (http != null) return http.onHttpCallResponse(token, headerCount, bodySize, trailerCount);
  const root = rootContext(contextId);
  if (root != null) root.onHttpCallResponse(token, headerCount, bodySize, trailerCount);
}

export function proxy_on_done(contextId: u32): bool {
  const root = rootContext(contextId);
  return root == null || root.onDone();
}

export function proxy_on_log(contextId: u32): void {
  const stream = existingStream(contextId);
  if (stream != null) {
    stream.onLog();
    return;
  }
  const http = existingHttp(contextId);
  if (http != null) http.onLog();
}

// The module uses AssemblyScript's minimal runtime (asconfig.json): it is half the size of the
// incremental one, but collects only when told. Collecting here is safe because this export is
// entered from the host with nothing of ours on the stack. It happens once the SDK has
// allocated COLLECT_AFTER_BYTES (host data, strings and buffers made from it), or once roots have
// made COLLECT_EVERY new context objects, for what a filter allocates by itself. A filter that
// hands its context objects out again and allocates nothing per connection (Wasmerang's) is
// never collected on the connection path.
const COLLECT_EVERY = 4096;
const COLLECT_AFTER_BYTES: usize = 64 * 1024;

function collect(): void {
  forgetContextsMade();
  collected();
  __collect();
}

export function proxy_on_delete(contextId: u32): void {
  deleteContext(contextId);
  if (contextsMade() >= COLLECT_EVERY || collectionPressure() >= COLLECT_AFTER_BYTES) collect();
}
