// Owns the map from context id to context object. The host announces a context before it knows
// (or tells) whether it is a TCP connection or an HTTP request, so the stream or HTTP object is
// created on the first callback of its kind.
//
// The table is open addressing over flat arrays (linear probing, deletion by backward shift),
// not a Map: a Map allocates as entries come and go and would leave garbage on every
// connection, where this table allocates only when the number of live contexts doubles.
import { HttpContext, RootContext, StreamContext } from "./contexts";

type RootFactory = (id: u32) => RootContext;

let rootFactory: RootFactory = (id: u32): RootContext => new RootContext(id);

const enum Kind {
  Root = 1,
  /** Announced, not yet typed: `objects` holds the parent root. */
  Pending = 2,
  Stream = 3,
  Http = 4,
  /** Typed, but the root made no object for it. */
  None = 5,
}

const INITIAL_CAPACITY = 64;

/** Context ids; 0 marks a free slot (the host never uses id 0). */
let ids = new StaticArray<u32>(INITIAL_CAPACITY);
let kinds = new StaticArray<i32>(INITIAL_CAPACITY);
let objects = new StaticArray<Object | null>(INITIAL_CAPACITY);
let live = 0;
/** Context objects a root made anew, rather than handed out again, since the last collection. */
let madeContexts = 0;

export function contextsMade(): i32 {
  return madeContexts;
}

export function forgetContextsMade(): void {
  madeContexts = 0;
}

/** The slot of the last id found: a context's callbacks come in a row for the same id. */
let lastId: u32 = 0;
let lastAt: i32 = -1;

@inline function home(id: u32, mask: u32): u32 {
  // Fibonacci hashing: ids are sequential, so spread them over the table.
  return (id * 0x9e3779b1) >>> 7 & mask;
}

/** The slot holding `id`, or -1. */
@inline function find(id: u32): i32 {
  if (id == lastId) return lastAt;
  const mask = <u32>ids.length - 1;
  let at = home(id, mask);
  while (true) {
    const here = unchecked(ids[at]);
    if (here == id) {
      lastId = id;
      lastAt = <i32>at;
      return lastAt;
    }
    if (here == 0) return -1;
    at = (at + 1) & mask;
  }
}

/** Entries move when the table grows or shrinks: forget the remembered slot. */
function forgetLast(): void {
  lastId = 0;
  lastAt = -1;
}

function place(id: u32, kind: i32, object: Object | null): void {
  const mask = <u32>ids.length - 1;
  let at = home(id, mask);
  while (unchecked(ids[at]) != 0 && unchecked(ids[at]) != id) at = (at + 1) & mask;
  if (unchecked(ids[at]) == 0) live++;
  lastId = id;
  lastAt = <i32>at;
  unchecked(ids[at] = id);
  unchecked(kinds[at] = kind);
  unchecked(objects[at] = object);
}

function grow(): void {
  const oldIds = ids;
  const oldKinds = kinds;
  const oldObjects = objects;
  const capacity = oldIds.length * 2;
  forgetLast();
  ids = new StaticArray<u32>(capacity);
  kinds = new StaticArray<i32>(capacity);
  objects = new StaticArray<Object | null>(capacity);
  live = 0;
  for (let i = 0; i < oldIds.length; i++) {
    if (unchecked(oldIds[i]) != 0) place(unchecked(oldIds[i]), unchecked(oldKinds[i]), unchecked(oldObjects[i]));
  }
}

/** Empties slot `at` and moves later entries of the same probe run back (no tombstones). */
function remove(at: u32): void {
  forgetLast();
  const mask = <u32>ids.length - 1;
  let hole = at;
  let next = (at + 1) & mask;
  while (unchecked(ids[next]) != 0) {
    const wanted = home(unchecked(ids[next]), mask);
    // Move the entry into the hole unless its home lies cyclically in (hole, next].
    if (((next - wanted) & mask) >= ((next - hole) & mask)) {
      unchecked(ids[hole] = ids[next]);
      unchecked(kinds[hole] = kinds[next]);
      unchecked(objects[hole] = objects[next]);
      hole = next;
    }
    next = (next + 1) & mask;
  }
  unchecked(ids[hole] = 0);
  unchecked(objects[hole] = null);
  live--;
}

/** Sets the class of root context the module uses; call it at the module's top level. */
export function registerRootContext(factory: RootFactory): void {
  rootFactory = factory;
}

export function createContext(id: u32, parentId: u32): void {
  if ((live + 1) * 2 > ids.length) grow();
  if (parentId == 0) {
    place(id, Kind.Root, rootFactory(id));
    return;
  }
  const parent = rootContext(parentId);
  place(id, parent == null ? Kind.None : Kind.Pending, parent);
}

export function rootContext(id: u32): RootContext | null {
  const at = find(id);
  return at >= 0 && unchecked(kinds[at]) == Kind.Root ? changetype<RootContext>(unchecked(objects[at])) : null;
}

/**
 * The stream context, made by the root on the connection's first callback. The id is assigned
 * here, so a root may hand out a recycled object (see StreamContext.onDelete).
 */
export function streamContext(id: u32): StreamContext | null {
  const at = find(id);
  if (at < 0) return null;
  const kind = unchecked(kinds[at]);
  if (kind == Kind.Stream) return changetype<StreamContext>(unchecked(objects[at]));
  if (kind != Kind.Pending) return null;
  const stream = changetype<RootContext>(unchecked(objects[at])).newStreamContext(id);
  if (stream != null) {
    // A recycled object still carries its previous connection's id.
    if (stream.id == id) madeContexts++;
    stream.id = id;
  }
  unchecked(kinds[at] = stream == null ? Kind.None : Kind.Stream);
  unchecked(objects[at] = stream);
  return stream;
}

/** The HTTP context, made by the root on the request's first callback. */
export function httpContext(id: u32): HttpContext | null {
  const at = find(id);
  if (at < 0) return null;
  const kind = unchecked(kinds[at]);
  if (kind == Kind.Http) return changetype<HttpContext>(unchecked(objects[at]));
  if (kind != Kind.Pending) return null;
  const http = changetype<RootContext>(unchecked(objects[at])).newHttpContext(id);
  if (http != null) {
    if (http.id == id) madeContexts++;
    http.id = id;
  }
  unchecked(kinds[at] = http == null ? Kind.None : Kind.Http);
  unchecked(objects[at] = http);
  return http;
}

export function existingStream(id: u32): StreamContext | null {
  const at = find(id);
  return at >= 0 && unchecked(kinds[at]) == Kind.Stream ? changetype<StreamContext>(unchecked(objects[at])) : null;
}

export function existingHttp(id: u32): HttpContext | null {
  const at = find(id);
  return at >= 0 && unchecked(kinds[at]) == Kind.Http ? changetype<HttpContext>(unchecked(objects[at])) : null;
}

export function deleteContext(id: u32): void {
  const at = find(id);
  if (at < 0) return;
  const kind = unchecked(kinds[at]);
  const object = unchecked(objects[at]);
  remove(<u32>at);
  if (kind == Kind.Stream) changetype<StreamContext>(object).onDelete();
  else if (kind == Kind.Http) changetype<HttpContext>(object).onDelete();
}
