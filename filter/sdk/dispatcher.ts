// Owns the map from context id to context object. The host announces a context before it knows
// (or tells) whether it is a TCP connection or an HTTP request, so the stream or HTTP object is
// created on the first callback of its kind. One map of slots (rather than one map per kind)
// keeps the module small: every Map<K, V> instantiation is code of its own.
import { HttpContext, RootContext, StreamContext } from "./contexts";

type RootFactory = (id: u32) => RootContext;

let rootFactory: RootFactory = (id: u32): RootContext => new RootContext(id);

class Slot {
  root: RootContext | null = null;
  /** The root a not-yet-typed context belongs to. */
  parent: RootContext | null = null;
  stream: StreamContext | null = null;
  http: HttpContext | null = null;
}

const slots = new Map<u32, Slot>();

function slot(id: u32): Slot | null {
  return slots.has(id) ? slots.get(id) : null;
}

/** Sets the class of root context the module uses; call it at the module's top level. */
export function registerRootContext(factory: RootFactory): void {
  rootFactory = factory;
}

export function createContext(id: u32, parentId: u32): void {
  const entry = new Slot();
  if (parentId == 0) entry.root = rootFactory(id);
  else entry.parent = rootContext(parentId);
  slots.set(id, entry);
}

export function rootContext(id: u32): RootContext | null {
  const entry = slot(id);
  return entry == null ? null : entry.root;
}

export function streamContext(id: u32): StreamContext | null {
  const entry = slot(id);
  if (entry == null) return null;
  if (entry.stream == null && entry.parent != null) {
    entry.stream = changetype<RootContext>(entry.parent).newStreamContext(id);
    entry.parent = null;
  }
  return entry.stream;
}

export function httpContext(id: u32): HttpContext | null {
  const entry = slot(id);
  if (entry == null) return null;
  if (entry.http == null && entry.parent != null) {
    entry.http = changetype<RootContext>(entry.parent).newHttpContext(id);
    entry.parent = null;
  }
  return entry.http;
}

export function existingStream(id: u32): StreamContext | null {
  const entry = slot(id);
  return entry == null ? null : entry.stream;
}

export function existingHttp(id: u32): HttpContext | null {
  const entry = slot(id);
  return entry == null ? null : entry.http;
}

export function deleteContext(id: u32): void {
  const entry = slot(id);
  if (entry == null) return;
  const stream = entry.stream;
  if (stream != null) stream.onDelete();
  const http = entry.http;
  if (http != null) http.onDelete();
  slots.delete(id);
}
