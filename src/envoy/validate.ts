// Checks a YAML/JSON document against an Envoy proto message with proto3's JSON mapping: unknown
// fields, wrong types, bad enum names, two members of one oneof, unknown `@type` URLs in Any, and
// the protoc-gen-validate rules Envoy enforces most often (required, min_len, min_items, ranges).
// Returns a normalized copy whose keys are the proto field names (snake_case) Envoy's docs use.
import protobuf from "protobufjs";

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[], source: string) {
    super(`${source}: ${problems.length === 1 ? problems[0] : `${problems.length} problems:\n  ${problems.join("\n  ")}`}`);
  }
}

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const WRAPPERS = new Set(["DoubleValue", "FloatValue", "Int64Value", "UInt64Value", "Int32Value", "UInt32Value",
  "BoolValue", "StringValue", "BytesValue"].map((name) => `google.protobuf.${name}`));
/** Well-known types whose JSON form is not an object of their fields. */
const SPECIAL_JSON = new Set([...WRAPPERS, "google.protobuf.Duration", "google.protobuf.Timestamp", "google.protobuf.Struct",
  "google.protobuf.Value", "google.protobuf.ListValue", "google.protobuf.FieldMask"]);

const INT32_RANGE: Record<string, [number, number]> = {
  int32: [-2147483648, 2147483647], sint32: [-2147483648, 2147483647], sfixed32: [-2147483648, 2147483647],
  uint32: [0, 4294967295], fixed32: [0, 4294967295],
};
const INT64 = new Set(["int64", "uint64", "sint64", "fixed64", "sfixed64"]);

function typeName(value: unknown): string {
  if (value === null) return "null";
  return Array.isArray(value) ? "list" : typeof value;
}

function isObject(value: unknown): value is { [key: string]: Json } {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function camel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

export class ProtoValidator {
  readonly problems: string[] = [];

  constructor(private readonly root: protobuf.Root) {}

  /** Validates `value` as message `type` at `path`; returns the normalized value. */
  message(value: unknown, type: protobuf.Type, path: string): Json {
    const fullName = type.fullName.replace(/^\./, "");
    if (SPECIAL_JSON.has(fullName)) return this.wellKnown(value, fullName, path);
    if (fullName === "google.protobuf.Any") return this.any(value, path);
    if (!isObject(value)) {
      this.fail(path, `expected an object (${fullName}), got ${typeName(value)}`);
      return null;
    }
    const out: { [key: string]: Json } = {};
    const oneofSeen = new Map<string, string>();
    for (const [key, item] of Object.entries(value)) {
      const field = type.fields[key] ?? type.fieldsArray.find((f) => camel(f.name) === key);
      const fieldPath = path === "" ? key : `${path}.${key}`;
      if (field === undefined) {
        this.fail(fieldPath, `unknown field (not in ${fullName})`);
        continue;
      }
      if (field.partOf !== null && field.partOf !== undefined && item !== null) {
        const other = oneofSeen.get(field.partOf.name);
        if (other !== undefined) this.fail(fieldPath, `only one of oneof '${field.partOf.name}' may be set (also set: ${other})`);
        oneofSeen.set(field.partOf.name, field.name);
      }
      out[field.name] = this.field(item, field, fieldPath);
    }
    this.checkRequired(type, out, path);
    return out;
  }

  private checkRequired(type: protobuf.Type, out: { [key: string]: Json }, path: string): void {
    for (const field of type.fieldsArray) {
      const options = field.options ?? {};
      const fieldPath = path === "" ? field.name : `${path}.${field.name}`;
      const present = out[field.name] !== undefined && out[field.name] !== null;
      // Rules on a oneof member apply only when that member is the one set (protoc-gen-validate).
      const inOneof = field.partOf !== null && field.partOf !== undefined;
      if (options["(validate.rules).message.required"] === true && !present && !inOneof) this.fail(fieldPath, "is required");
    }
    for (const oneof of type.oneofsArray) {
      if (oneof.options?.["(validate.required)"] === true && !oneof.fieldsArray.some((f) => out[f.name] != null)) {
        this.fail(path === "" ? oneof.name : `${path}.${oneof.name}`,
          `one of ${oneof.fieldsArray.map((f) => f.name).join(", ")} is required`);
      }
    }
  }

  private field(value: unknown, field: protobuf.Field, path: string): Json {
    if (value === null) return null;
    if (field instanceof protobuf.MapField) {
      if (!isObject(value)) {
        this.fail(path, `expected a map, got ${typeName(value)}`);
        return null;
      }
      const out: { [key: string]: Json } = {};
      for (const [key, item] of Object.entries(value)) out[key] = this.single(item, field, `${path}.${key}`);
      return out;
    }
    if (field.repeated) {
      if (!Array.isArray(value)) {
        this.fail(path, `expected a list, got ${typeName(value)}`);
        return null;
      }
      const minItems = field.options?.["(validate.rules).repeated.min_items"];
      if (typeof minItems === "number" && value.length < minItems) this.fail(path, `needs at least ${minItems} item(s)`);
      return value.map((item, i) => this.single(item, field, `${path}[${i}]`));
    }
    return this.single(value, field, path);
  }

  private single(value: unknown, field: protobuf.Field, path: string): Json {
    const resolved = field.resolvedType;
    if (resolved instanceof protobuf.Type) return this.message(value, resolved, path);
    if (resolved instanceof protobuf.Enum) return this.enumValue(value, resolved, path);
    const checked = this.scalar(value, field.type, path);
    this.checkScalarRules(checked, field, path);
    return checked;
  }

  private checkScalarRules(value: Json, field: protobuf.Field, path: string): void {
    const options = field.options ?? {};
    for (const [key, limit] of Object.entries(options)) {
      const rule = /^\(validate\.rules\)\.\w+\.(min_len|min_bytes|gt|gte|lt|lte)$/.exec(key)?.[1];
      if (rule === undefined || typeof limit !== "number") continue;
      if ((rule === "min_len" || rule === "min_bytes") && typeof value === "string" && value.length < limit) {
        this.fail(path, `must be at least ${limit} character(s) long`);
      }
      if (typeof value === "number") {
        const ok = rule === "gt" ? value > limit : rule === "gte" ? value >= limit : rule === "lt" ? value < limit : rule === "lte" ? value <= limit : true;
        if (!ok) this.fail(path, `must be ${{ gt: ">", gte: ">=", lt: "<", lte: "<=" }[rule]} ${limit}, got ${value}`);
      }
    }
  }

  private enumValue(value: unknown, type: protobuf.Enum, path: string): Json {
    if (typeof value === "string" && value in type.values) return value;
    if (typeof value === "number" && Object.values(type.values).includes(value)) return type.valuesById[value] ?? value;
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
        return typeof value === "boolean" ? value : wrong("true or false");
      case "bytes":
        return typeof value === "string" && /^[A-Za-z0-9+/_-]*={0,2}$/.test(value) ? value : wrong("base64 bytes");
      case "double":
      case "float":
        return typeof value === "number" || value === "NaN" || value === "Infinity" || value === "-Infinity" ? value : wrong("a number");
      default: {
        const number = typeof value === "string" && /^-?\d+$/.test(value) ? Number(value) : value;
        if (typeof number !== "number" || !Number.isInteger(number)) return wrong(`an integer (${type})`);
        const range = INT32_RANGE[type];
        if (range !== undefined && (number < range[0] || number > range[1])) return wrong(`an integer in ${range[0]}..${range[1]}`);
        if (INT64.has(type) && type.startsWith("u") && number < 0) return wrong("a non-negative integer");
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
      case "google.protobuf.Duration":
        if (typeof value === "string" && /^-?\d+(\.\d{1,9})?s$/.test(value)) return value;
        this.fail(path, `expected a duration such as "5s" or "0.25s", got ${JSON.stringify(value)}`);
        return null;
      case "google.protobuf.Timestamp":
      case "google.protobuf.FieldMask":
        return typeof value === "string" ? value : (this.fail(path, "expected a string"), null);
      case "google.protobuf.Struct":
        return isObject(value) ? value : (this.fail(path, `expected an object, got ${typeName(value)}`), null);
      case "google.protobuf.ListValue":
        return Array.isArray(value) ? (value as Json[]) : (this.fail(path, `expected a list, got ${typeName(value)}`), null);
      default:
        return value as Json;
    }
  }

  private any(value: unknown, path: string): Json {
    if (!isObject(value)) {
      this.fail(path, `expected an object with "@type", got ${typeName(value)}`);
      return null;
    }
    const url = value["@type"];
    if (typeof url !== "string" || !url.includes("/")) {
      this.fail(`${path}.@type`, `is required and must be a type URL such as type.googleapis.com/envoy...`);
      return null;
    }
    const name = url.slice(url.lastIndexOf("/") + 1);
    let type: protobuf.Type;
    try {
      type = this.root.lookupType(name);
    } catch {
      this.fail(`${path}.@type`, `unknown type '${name}' (no such message in Envoy's API)`);
      return null;
    }
    const { "@type": _, ...rest } = value;
    if (SPECIAL_JSON.has(name)) {
      const extra = Object.keys(rest).filter((key) => key !== "value");
      if (extra.length > 0) this.fail(`${path}.${extra[0]}`, `unknown field (an Any of ${name} holds only "value")`);
      return { "@type": name, value: this.wellKnown(rest.value, name, `${path}.value`) };
    }
    const inner = this.message(rest, type, path);
    return isObject(inner) ? { "@type": name, ...inner } : null;
  }

  private fail(path: string, message: string): void {
    this.problems.push(`${path}: ${message}`);
  }
}
