// Envoy's built-in foreign functions other than set_envoy_filter_state (filter-state.ts), as
// source/extensions/common/wasm/foreign.cc registers them: `compress` and `uncompress` (zlib's
// compress2/uncompress: the zlib format, SerializationFailure for data zlib refuses),
// `clear_route_cache` (the runner's HTTP routing is made after the filters anyway: Ok), and
// `declare_property` (accepted when its arguments are a protobuf message; properties it declares
// are stored with set_property as any other).
import { deflateSync, inflateSync } from "node:zlib";
import protobuf from "protobufjs";
import { WasmResult } from "./abi.js";
import type { ForeignResult } from "./context.js";

function decodesAsMessage(bytes: Buffer): boolean {
  const reader = protobuf.Reader.create(bytes);
  try {
    while (reader.pos < reader.len) reader.skipType(reader.uint32() & 7);
    return true;
  } catch {
    return false;
  }
}

const BUILT_IN: Record<string, (args: Buffer) => ForeignResult> = {
  compress: (args) => ({ status: WasmResult.Ok, data: deflateSync(args) }),
  uncompress: (args) => {
    try {
      return { status: WasmResult.Ok, data: inflateSync(args) };
    } catch {
      return { status: WasmResult.SerializationFailure };
    }
  },
  clear_route_cache: () => ({ status: WasmResult.Ok }),
  declare_property: (args) => ({ status: decodesAsMessage(args) ? WasmResult.Ok : WasmResult.BadArgument }),
};

/** The built-in function's result, or NotFound for a name Envoy does not register. */
export function builtInForeignFunction(name: string, args: Buffer): ForeignResult {
  return BUILT_IN[name]?.(args) ?? { status: WasmResult.NotFound };
}
