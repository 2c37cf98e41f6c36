// The heap policy of a relaying process (runner, egress router). See native/allocator.c for the
// mechanism: without it, glibc returns the socket read buffers V8 frees to the kernel after each
// collection, and the next reads fault the pages in again (measured: one fault per 4 KiB proxied,
// about half the single-stream throughput; bench/README.md).
import { setFlagsFromString } from "node:v8";
import { loadNativeAddon } from "./addon.js";

interface AllocatorAddon {
  retainFreedHeap(bytes: number): boolean;
}

/**
 * More than V8's 64 MiB external allocation soft limit, the amount of read buffers that can be
 * freed in one collection; resident memory may stay this much above what is in use.
 */
export const RETAINED_HEAP_BYTES = 128 * 1024 * 1024;

/** Returns whether the process allocator took the policy (glibc with the addon built). */
export function retainFreedHeap(bytes = RETAINED_HEAP_BYTES): boolean {
  return loadNativeAddon<AllocatorAddon>()?.retainFreedHeap(bytes) ?? false;
}

/**
 * Keeps V8's marking on the main thread. A relay pinned to a core (as Envoy's workers and this
 * bench's proxies are) has no idle core for V8's concurrent marking threads, and a relay reading
 * a fresh 64 KiB buffer per chunk keeps restarting marking: with the Wasm filter's data
 * callbacks, about 100 mark-compacts per 3 GiB, whose marking threads took the proxy's own core
 * (about half the bulk throughput). On the main thread: 17–20 in 3 GiB, and connection rate
 * unchanged (A/B, bench/README.md). Turning incremental marking off altogether fixed bulk too,
 * but cost a fifth of the connection rate. Set at start, before the heap has grown.
 */
export function tuneCollectorForRelaying(): void {
  setFlagsFromString("--no-concurrent-marking");
}
