// Heap policy for a proxy process on glibc. Node hands every socket read a fresh 64 KiB buffer
// from malloc and frees it only when V8 collects the Buffer, which it does after about 64 MiB of
// external memory (V8's external allocation soft limit). glibc then trims the freed top of the
// heap back to the kernel (M_TRIM_THRESHOLD, 128 KiB by default), so the next 64 MiB of reads
// fault every page in again: one page fault per 4 KiB proxied, which costs a relay about half its
// throughput. Keeping that much freed heap mapped removes the faults; the price is resident
// memory that stays at its high-water mark, bounded by the threshold.
#include "addon.h"
#ifdef __GLIBC__
#include <malloc.h>
#endif

// retainFreedHeap(bytes) -> true when the allocator took the setting
napi_value retain_freed_heap(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  int64_t bytes = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_int64(env, argv[0], &bytes) != napi_ok || bytes < 0 || bytes > (int64_t)1 << 40) {
    napi_throw_range_error(env, NULL, "retainFreedHeap(bytes) needs a byte count between 0 and 2^40");
    return NULL;
  }
#ifdef __GLIBC__
  bool taken = mallopt(M_TRIM_THRESHOLD, (int)(bytes > 0x7fffffff ? 0x7fffffff : bytes)) == 1;
#else
  bool taken = false;
#endif
  napi_get_boolean(env, taken, &result);
  return result;
}
