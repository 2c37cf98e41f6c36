// Owns the map from context id to context object. The host announces a context before it knows
// (or tells) whether it is a TCP connection or an HTTP request, so the stream or HTTP object is
// created on the first callback of its kind.
import { HttpContext, RootContext, StreamContext } from "./contexts";

type RootFactory = (id: u32) => RootContext;

let rootFactory: RootFactory = (id: u32): RootContext => new RootContext(id);

const roots = new Map<u32, RootContext>();
const pendingParents = new Map<u32, u32>();
const streams = new Map<u32, StreamContext>();
const https = new Map<u32, HttpContext>();

/** Sets the class of root context the module uses; call it at the module's top level. */
export function registerRootContext(factory: RootFactory): void {
  rootFactory = factory;
}

export function createContext(id: u32, parentId: u32): void {
  if (parentId == 0) roots.set(id, rootFactory(id));
  else pendingParents.set(id, parentId);
}

export function rootContext(id: u32): RootContext | null {
  return roots.has(id) ? roots.get(id) : null;
}

export function streamContext(id: u32): StreamContext | null {
  if (streams.has(id)) return streams.get(id);
  const root = takePendingRoot(id);
  if (root == null) return null;
  const context = root.newStreamContext(id);
  if (context != null) streams.set(id, context);
  return context;
}

export function httpContext(id: u32): HttpContext | null {
  if (https.has(id)) return https.get(id);
  const root = takePendingRoot(id);
  if (root == null) return null;
  const context = root.newHttpContext(id);
  if (context != null) https.set(id, context);
  return context;
}

function takePendingRoot(id: u32): RootContext | null {
  if (!pendingParents.has(id)) return null;
  const parentId = pendingParents.get(id);
  pendingParents.delete(id);
  return rootContext(parentId);
}

export function existingStream(id: u32): StreamContext | null {
  return streams.has(id) ? streams.get(id) : null;
}

export function existingHttp(id: u32): HttpContext | null {
  return https.has(id) ? https.get(id) : null;
}

export function deleteContext(id: u32): void {
  pendingParents.delete(id);
  if (streams.has(id)) {
    streams.get(id).onDelete();
    streams.delete(id);
  } else if (https.has(id)) {
    https.get(id).onDelete();
    https.delete(id);
  } else {
    roots.delete(id);
  }
}
