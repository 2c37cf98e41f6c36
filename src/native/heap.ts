// The heap policy of a relaying process (runner, egress router). See native/allocator.c for the
// mechanism: without it, glibc returns the socket read buffers V8 frees to the kernel after each
// collection, and the next reads fault the pages in again (measured: one fault per 4 KiB proxied,
// about half the single-stream throughput; bench/README.md).
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
