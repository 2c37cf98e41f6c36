// The bytes a proxy-wasm module receives as its plugin or VM configuration, from the Any in
// Envoy's PluginConfig/VmConfig: a StringValue's or BytesValue's value, otherwise the message
// serialized as protobuf (Envoy's anyToBytes, source/extensions/common/wasm/plugin.cc). A Struct
// therefore arrives as protobuf, not JSON: only Istio turns a WasmPlugin's pluginConfig into JSON
// (in a StringValue).
import type { Json } from "./errors.js";
import type { EnvoyApi } from "./protos.js";

type JsonObject = { [key: string]: Json };

export const STRING_VALUE = "google.protobuf.StringValue";
export const BYTES_VALUE = "google.protobuf.BytesValue";
const STRUCT = "google.protobuf.Struct";

/** A JSON value as google.protobuf.Value's fields (protobufjs has no JSON mapping for Struct). */
function protoValue(value: Json): JsonObject {
  if (value === null) return { null_value: 0 };
  if (typeof value === "number") return { number_value: value };
  if (typeof value === "string") return { string_value: value };
  if (typeof value === "boolean") return { bool_value: value };
  if (Array.isArray(value)) return { list_value: { values: value.map(protoValue) } };
  return { struct_value: protoStruct(value) };
}

function protoStruct(value: JsonObject): JsonObject {
  return { fields: Object.fromEntries(Object.entries(value).map(([key, item]) => [key, protoValue(item)])) };
}

/** The configuration bytes for a normalized Any (proto-json.ts), as Envoy hands them to the module. */
export function configurationBytes(any: Json | undefined, api: EnvoyApi): Buffer {
  if (any === undefined || any === null || typeof any !== "object" || Array.isArray(any)) return Buffer.alloc(0);
  const { "@type": type, ...fields } = any;
  if (type === STRING_VALUE) return Buffer.from(String(fields.value ?? ""));
  if (type === BYTES_VALUE) return Buffer.from(String(fields.value ?? ""), "base64");
  const message = api.message(String(type));
  if (message === undefined) return Buffer.alloc(0);
  const object = type === STRUCT ? protoStruct((fields.value ?? {}) as JsonObject) : fields;
  return Buffer.from(message.encode(message.fromObject(object)).finish());
}
