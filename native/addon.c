// The runner's one native addon: what Node has no API for (see each function's file).
#include "addon.h"

static void export_function(napi_env env, napi_value exports, const char *name, napi_callback function) {
  napi_value fn;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, function, NULL, &fn);
  napi_set_named_property(env, exports, name, fn);
}

static napi_value init(napi_env env, napi_value exports) {
  export_function(env, exports, "originalDestination", original_destination);
  export_function(env, exports, "retainFreedHeap", retain_freed_heap);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
