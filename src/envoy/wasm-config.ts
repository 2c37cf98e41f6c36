// The bytes a proxy-wasm module receives as its plugin or VM configuration, from the Any in
// Envoy's PluginConfig/VmConfig (envoy/extensions/wasm/v3/wasm.proto, `configuration`): a
// StringValue's or BytesValue's value as it is, a Struct serialized as JSON, any other message
// serialized as protobuf (Envoy's anyToBytes, source/extensions/common/wasm/plugin.cc).
import type { Json } from "./errors.js";
import type { EnvoyApi } from "./protos.js";

const STRING_VALUE = "google.protobuf.StringValue";
const BYTES_VALUE = "google.protobuf.BytesValue";
const STRUCT = "google.protobuf.Struct";

/** The configuration bytes for a normalized Any (proto-json.ts), as Envoy hands them to the module. */
export function configurationBytes(any: Json | undefined, api: EnvoyApi): Buffer {
  if (any === undefined || any === null || typeof any !== "object" || Array.isArray(any)) return Buffer.alloc(0);
  const { "@type": type, ...fields } = any;
  if (type === STRING_VALUE) return Buffer.from(String(fields.value ?? ""));
  if (type === BYTES_VALUE) return Buffer.from(String(fields.value ?? ""), "base64");
  if (type === STRUCT) return Buffer.from(JSON.stringify(fields.value ?? {}));
  const message = api.message(String(type));
  if (message === undefined) return Buffer.alloc(0);
  return Buffer.from(message.encode(message.fromObject(fields)).finish());
}
