// A configuration value read as an Envoy proto message, as Envoy reads it: MessageUtil::loadFromJson
// (source/common/protobuf/utility.cc) runs protobuf's JSON parser with case-insensitive enum
// parsing and unknown fields refused, and protobuf's JsonStringToMessage enables its legacy syntax
// (a single value where a list is expected is a one-element list; "true"/"false" strings for bools).
// Any is resolved by the name after the type URL's last '/', which must be a fully qualified
// message name; TypedStruct (udpa.type.v1 / xds.type.v3) is unwrapped and its `value` read as
// the message its `type_url` names, as Envoy's Config::Utility::translateOpaqueConfig does.
// protoc-gen-validate's rules run on every message (pgv.ts).
// Returns a normalized copy: proto field names (snake_case) as Envoy's docs use them, enum names
// in their canonical case, lists for repeated fields, numbers for numeric fields, TypedStruct
// replaced by the message it holds.
import protobuf from "protobufjs";
import { isJsonObject, type Json, type Problem, type Severity } from "./errors.js";
import { checkField } from "./pgv.js";
import { SHIPPED_API, type EnvoyApi } from "./protos.js";

const WRAPPERS = new Set(["DoubleValue", "FloatValue", "Int64Value", "UInt64Value", "Int32Value", "UInt32Value",
  "BoolValue", "StringValue", "BytesValue"].map((name) => `google.protobuf.${name}`));
/** Well-known types whose JSON form is not an object of their fields. */
const SPECIAL_JSON = new Set([...WRAPPERS, "google.protobuf.Duration", "google.protobuf.Timestamp", "google.protobuf.Struct",
  "google.protobuf.Value", "google.protobuf.ListValue", "google.protobuf.FieldMask"]);
const TYPED_STRUCTS = new Set(["udpa.type.v1.TypedStruct", "xds.type.v3.TypedStruct"]);

const INT32_RANGE: Record<string, [number, number]> = {
  int32: [-2147483648, 2147483647], sint32: [-2147483648, 2147483647], sfixed32: [-2147483648, 2147483647],
  uint32: [0, 4294967295], fixed32: [0, 4294967295],
};
const UNSIGNED = new Set(["uint32", "fixed32", "uint64", "fixed64"]);
/** google/protobuf/duration.proto: ±10,000 years. */
const MAX_DURATION_SECONDS = 315_576_000_000;

function typeName(value: unknown): string {
  if (value === null) return "null";
  return Array.isArray(value) ? "list" : typeof value;
}


function camel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function join(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

function isDeprecated(options: Record<string, unknown> | undefined): boolean {
  return options?.deprecated === true;
}

export class ProtoValidator {
  readonly problems: Problem[] = [];

  /**
   * `partial`: the value is a fragment merged into a message elsewhere (an EnvoyFilter MERGE
   * patch), so only what it sets is checked; rules about fields it leaves out are not.
   */
  constructor(private readonly api: EnvoyApi, private readonly partial = false) {}

  /** Validates `value` as message `type` at `path`; returns the normalized value. */
  message(value: unknown, type: protobuf.Type, path: string): Json {
    const fullName = type.fullName.replace(/^\./, "");
    if (SPECIAL_JSON.has(fullName)) return this.wellKnown(value, fullName, path);
    if (fullName === "google.protobuf.Any") return this.any(value, path);
    if (!isJsonObject(value)) {
      this.fail(path, `expected an object (${fullName}), got ${typeName(value)}`);
      return null;
    }
    const out: { [key: string]: Json } = {};
    const oneofSeen = new Map<string, string>();
    for (const [key, item] of Object.entries(value)) {
      const field = type.fields[key] ?? type.fieldsArray.find((f) => camel(f.name) === key || f.options?.json_name === key);
      const fieldPath = join(path, key);
      if (field === undefined) {
        this.fail(fieldPath, `unknown field (not in ${fullName})`);
        continue;
      }
      if (item === null) continue;
      if (field.partOf !== null && field.partOf !== undefined && !field.partOf.name.startsWith("_")) {
        const other = oneofSeen.get(field.partOf.name);
        if (other !== undefined) this.fail(fieldPath, `only one of oneof '${field.partOf.name}' may be set (also set: ${other})`);
        oneofSeen.set(field.partOf.name, field.name);
      }
      if (isDeprecated(field.options)) {
        this.warn(fieldPath, `deprecated in Envoy's API (${fullName}.${field.name}); Envoy accepts it with a warning, a future release may not`);
      }
      out[field.name] = this.field(item, field, fieldPath);
    }
    for (const field of type.fieldsArray) {
      if (this.partial && out[field.name] == null) continue;
      checkField(field, out[field.name] ?? undefined, (message, subpath = "") => this.fail(join(path, field.name) + subpath, message));
    }
    for (const oneof of type.oneofsArray) {
      if (!this.partial && oneof.options?.["(validate.required)"] === true && !oneof.fieldsArray.some((f) => out[f.name] != null)) {
        this.fail(join(path, oneof.name), `one of ${oneof.fieldsArray.map((f) => f.name).join(", ")} is required`);
      }
    }
    return out;
  }

  private field(value: unknown, field: protobuf.Field, path: string): Json {
    if (field instanceof protobuf.MapField) {
      if (!isJsonObject(value)) {
        this.fail(path, `expected a map, got ${typeName(value)}`);
        return null;
      }
      const out: { [key: string]: Json } = {};
      for (const [key, item] of Object.entries(value)) out[key] = this.single(item, field, `${path}.${key}`);
      return out;
    }
    if (field.repeated) {
      if (!Array.isArray(value)) return [this.single(value, field, path)];
      return value.map((item, i) => this.single(item, field, `${path}[${i}]`));
    }
    return this.single(value, field, path);
  }

  private single(value: unknown, field: protobuf.Field, path: string): Json {
    const resolved = field.resolvedType;
    if (resolved instanceof protobuf.Type) return this.message(value, resolved, path);
    if (resolved instanceof protobuf.Enum) return this.enumValue(value, resolved, path);
    return this.scalar(value, field.type, path);
  }

  private enumValue(value: unknown, type: protobuf.Enum, path: string): Json {
    if (typeof value === "number" && Number.isInteger(value)) return type.valuesById[value] ?? value;
    if (typeof value === "string") {
      const name = value in type.values ? value : Object.keys(type.values).find((known) => known === value.toUpperCase());
      if (name !== undefined) {
        const options = type.valuesOptions?.[name];
        if (isDeprecated(options)) this.warn(path, `${name} is deprecated in Envoy's API (${type.name}); Envoy accepts it with a warning`);
        return name;
      }
    }
    this.fail(path, `expected one of ${Object.keys(type.values).join(", ")}, got ${JSON.stringify(value)}`);
    return null;
  }

  private scalar(value: unknown, type: string, path: string): Json {
    const wrong = (expected: string): Json => {
      this.fail(path, `expected ${expected}, got ${typeName(value)} ${JSON.stringify(value)}`);
      return null;
    };
    switch (type) {
      case "string":
        return typeof value === "string" ? value : wrong("a string");
      case "bool":
        if (typeof value === "boolean") return value;
        return value === "true" || value === "false" ? value === "true" : wrong("true or false");
      case "bytes":
        return typeof value === "string" && /^[A-Za-z0-9+/_-]*={0,2}$/.test(value) ? value : wrong("base64 bytes");
      case "double":
      case "float": {
        if (value === "NaN" || value === "Infinity" || value === "-Infinity") return value;
        const number = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
        if (typeof number !== "number" || Number.isNaN(number)) return wrong("a number");
        if (type === "float" && Math.abs(number) > 3.4028234663852886e38) return wrong("a number within float's range");
        return number;
      }
      default: {
        const number = typeof value === "string" && /^-?\d+(\.0*)?$/.test(value) ? Number(value) : value;
        if (typeof number !== "number" || !Number.isInteger(number)) return wrong(`an integer (${type})`);
        const range = INT32_RANGE[type];
        if (range !== undefined && (number < range[0] || number > range[1])) return wrong(`an integer in ${range[0]}..${range[1]}`);
        if (UNSIGNED.has(type) && number < 0) return wrong("a non-negative integer");
        return number;
      }
    }
  }

  private wellKnown(value: unknown, fullName: string, path: string): Json {
    if (WRAPPERS.has(fullName)) {
      const scalarType = fullName.replace("google.protobuf.", "").replace("Value", "").toLowerCase();
      return this.scalar(value, scalarType, path);
    }
    switch (fullName) {
      case "google.protobuf.Duration": {
        const match = typeof value === "string" ? /^-?(\d+)(\.\d{1,9})?s$/.exec(value) : null;
        if (match === null) {
          this.fail(path, `expected a duration such as "5s" or "0.25s", got ${JSON.stringify(value)}`);
          return null;
        }
        if (Number(match[1]) > MAX_DURATION_SECONDS) this.fail(path, `a duration is at most ${MAX_DURATION_SECONDS}s (10,000 years)`);
        return value as string;
      }
      case "google.protobuf.Timestamp":
        if (typeof value === "string" && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$/.test(value)) return value;
        this.fail(path, `expected an RFC 3339 timestamp such as "2024-01-01T00:00:00Z", got ${JSON.stringify(value)}`);
        return null;
      case "google.protobuf.FieldMask":
        return typeof value === "string" ? value : (this.fail(path, "expected a string"), null);
      case "google.protobuf.Struct":
        return isJsonObject(value) ? value : (this.fail(path, `expected an object, got ${typeName(value)}`), null);
      case "google.protobuf.ListValue":
        return Array.isArray(value) ? (value as Json[]) : (this.fail(path, `expected a list, got ${typeName(value)}`), null);
      default:
        return value as Json;
    }
  }

  /** The message an Any's type URL names, or undefined (reported) when it names none. */
  private resolveTypeUrl(url: unknown, path: string): protobuf.Type | undefined {
    if (typeof url !== "string" || url.lastIndexOf("/") <= 0) {
      this.fail(path, `is required and must be a type URL such as type.googleapis.com/envoy.extensions...`);
      return undefined;
    }
    const name = url.slice(url.lastIndexOf("/") + 1);
    const type = this.api.message(name);
    if (type === undefined) {
      if (/^envoy\.(api\.v2|config\.filter)\.|\.v2(alpha\d*)?\.[A-Z]/.test(name)) {
        this.fail(path, `'${name}' is an Envoy v2 API type, removed from Envoy (v1.18 and later read only v3 types)`);
      } else if (!/^[a-z_][\w]*(\.[a-z_][\w]*)+\.[A-Z]\w*/.test(name)) {
        this.fail(path, `'${name}' is not a fully qualified message name (such as envoy.extensions.filters.http.router.v3.Router)`);
      } else {
        this.warn(path, `type '${name}' is not in ${SHIPPED_API}; its configuration was not checked`);
      }
    }
    return type;
  }

  private any(value: unknown, path: string): Json {
    if (!isJsonObject(value)) {
      this.fail(path, `expected an object with "@type", got ${typeName(value)}`);
      return null;
    }
    const { "@type": url, ...rest } = value;
    const type = this.resolveTypeUrl(url, join(path, "@type"));
    if (type === undefined) return { ...value };
    const name = type.fullName.slice(1);
    if (SPECIAL_JSON.has(name)) {
      const extra = Object.keys(rest).filter((key) => key !== "value");
      if (extra.length > 0) this.fail(join(path, extra[0]!), `unknown field (an Any of ${name} holds only "value")`);
      return { "@type": name, value: this.wellKnown(rest.value, name, join(path, "value")) };
    }
    const inner = this.message(rest, type, path);
    if (TYPED_STRUCTS.has(name) && isJsonObject(inner)) return this.typedStruct(inner, path);
    return isJsonObject(inner) ? { "@type": name, ...inner } : null;
  }

  /** The message a TypedStruct holds, normalized as if it had been written as that message's Any. */
  private typedStruct(typedStruct: { [key: string]: Json }, path: string): Json {
    const type = this.resolveTypeUrl(typedStruct.type_url, join(path, "type_url"));
    if (type === undefined) return typedStruct;
    const name = type.fullName.slice(1);
    const inner = this.message(typedStruct.value ?? {}, type, join(path, "value"));
    return isJsonObject(inner) ? { "@type": name, ...inner } : null;
  }

  private fail(path: string, message: string): void {
    this.report(path, message, "error");
  }

  private warn(path: string, message: string): void {
    this.report(path, message, "warning");
  }

  private report(path: string, message: string, severity: Severity): void {
    this.problems.push({ path, message, severity });
  }
}
