// The functions of the runner's native addon, one file each; addon.c exports them to JavaScript.
#ifndef WASMERANG_ADDON_H
#define WASMERANG_ADDON_H
#include <node_api.h>

napi_value original_destination(napi_env env, napi_callback_info info);
napi_value retain_freed_heap(napi_env env, napi_callback_info info);

#endif
