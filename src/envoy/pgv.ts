// protoc-gen-validate's rules, as Envoy enforces them on every configuration message
// (MessageUtil::validate calls the generated Validate()). Rules are read from the API protos'
// `(validate.rules)` options. As the generated code does: scalar and string rules apply to the
// field's value even when it is not set (a missing string is "" and fails min_len: 1); rules on a
// message-typed field (required, Duration, Timestamp, Any, wrappers) apply when it is set, except
// `required`; rules on a oneof member or a proto3 `optional` field apply only when it is set.
// Rule semantics follow protoc-gen-validate's validate.proto and its C++ templates.
import protobuf from "protobufjs";
import { isJsonObject, type Json } from "./errors.js";

type Rules = Record<string, unknown>;
/** A failure of the field, or of the item or entry at `subpath` below it. */
type Fail = (message: string, subpath?: string) => void;

export function fieldRules(field: protobuf.Field): Rules | undefined {
  for (const option of field.parsedOptions ?? []) {
    const rules = (option as Record<string, unknown>)["(validate.rules)"];
    if (rules !== undefined && typeof rules === "object" && rules !== null) return rules as Rules;
  }
  return undefined;
}


/** Whether a field's rules apply when it is unset (see the file comment). */
export function appliesWhenUnset(field: protobuf.Field): boolean {
  if (field.partOf !== null && field.partOf !== undefined) return false;
  if (field.repeated || field instanceof protobuf.MapField) return true;
  return !(field.resolvedType instanceof protobuf.Type);
}

/** The value the generated code sees for an unset field. */
function unsetValue(field: protobuf.Field): Json | undefined {
  if (field instanceof protobuf.MapField) return {};
  if (field.repeated) return [];
  if (field.resolvedType instanceof protobuf.Enum) return 0;
  if (field.resolvedType instanceof protobuf.Type) return undefined;
  if (field.type === "string" || field.type === "bytes") return "";
  if (field.type === "bool") return false;
  return 0;
}

/** Checks one field of a parsed message; `value` is undefined when the field is not set. */
export function checkField(field: protobuf.Field, value: Json | undefined, fail: Fail): void {
  const rules = fieldRules(field);
  if (rules === undefined) return;
  if (value === undefined || value === null) {
    if (isJsonObject(rules.message) && rules.message.required === true) {
      if (field.partOf === null || field.partOf === undefined) fail("is required");
      return;
    }
    for (const kind of ["duration", "timestamp", "any"]) {
      if (isJsonObject(rules[kind]) && (rules[kind] as Rules).required === true) {
        fail("is required");
        return;
      }
    }
    if (!appliesWhenUnset(field)) return;
    value = unsetValue(field);
    if (value === undefined) return;
  }
  checkValue(rules, value, field, fail);
}

function checkValue(rules: Rules, value: Json, field: protobuf.Field | undefined, fail: Fail): void {
  for (const [kind, body] of Object.entries(rules)) {
    if (!isJsonObject(body)) continue;
    switch (kind) {
      case "string": checkString(body, value, fail); break;
      case "bytes": checkBytes(body, value, fail); break;
      case "bool": if (body.const !== undefined && value !== body.const) fail(`must be ${String(body.const)}`); break;
      case "enum": checkEnum(body, value, field, fail); break;
      case "duration": if (typeof value === "string") checkOrdered(body, durationNanos(value), durationNanos, fail, formatDuration); break;
      case "timestamp":
        // Limits are Timestamps ({seconds, nanos} since the epoch), compared as durations since it.
        if (typeof value === "string" && !Number.isNaN(Date.parse(value))) checkOrdered(body, BigInt(Date.parse(value)) * 1_000_000n, durationNanos, fail, String, value);
        break;
      case "any": checkAny(body, value, fail); break;
      case "repeated": checkRepeated(body, value, fail); break;
      case "map": checkMap(body, value, fail); break;
      case "message": break;
      case "double":
      case "float":
        if (typeof value === "number" || typeof value === "string") checkFloat(body, Number(value), fail);
        break;
      default:
        if (typeof value === "number" || (typeof value === "string" && /^-?\d+$/.test(value))) {
          checkOrdered(body, BigInt(typeof value === "number" ? Math.trunc(value) : value), numberValue, fail, String, value);
        }
    }
  }
}

function numberValue(limit: unknown): bigint {
  return BigInt(Math.trunc(Number(limit)));
}

function durationNanos(value: unknown): bigint {
  if (typeof value === "string") {
    const match = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/.exec(value);
    if (match === null) return 0n;
    const nanos = BigInt(match[2]!) * 1_000_000_000n + BigInt((match[3] ?? "").padEnd(9, "0"));
    return match[1] === "-" ? -nanos : nanos;
  }
  const { seconds = 0, nanos = 0 } = (value ?? {}) as { seconds?: number | string; nanos?: number };
  return BigInt(seconds) * 1_000_000_000n + BigInt(nanos);
}

function formatDuration(nanos: bigint): string {
  const sign = nanos < 0n ? "-" : "";
  const abs = nanos < 0n ? -nanos : nanos;
  const fraction = (abs % 1_000_000_000n).toString().padStart(9, "0").replace(/0+$/, "");
  return `${sign}${abs / 1_000_000_000n}${fraction === "" ? "" : `.${fraction}`}s`;
}

/** const, in, not_in and the range rules, as protoc-gen-validate's templates write them. */
function checkOrdered(body: Rules, value: bigint, limitOf: (limit: unknown) => bigint, fail: Fail,
  format: (value: bigint) => string, shown: unknown = format(value)): void {
  const limit = (key: string) => (body[key] === undefined ? undefined : limitOf(body[key]));
  const constant = limit("const");
  if (constant !== undefined && value !== constant) fail(`must be ${format(constant)}, got ${String(shown)}`);
  const gt = limit("gt"), gte = limit("gte"), lt = limit("lt"), lte = limit("lte");
  const lower = gt ?? gte, upper = lt ?? lte;
  const aboveLower = lower === undefined || (gt !== undefined ? value > gt : value >= gte!);
  const belowUpper = upper === undefined || (lt !== undefined ? value < lt : value <= lte!);
  const describe = (kind: string, bound: bigint) => `${kind} ${format(bound)}`;
  const lowerText = lower === undefined ? "" : describe(gt !== undefined ? ">" : ">=", lower);
  const upperText = upper === undefined ? "" : describe(lt !== undefined ? "<" : "<=", upper);
  if (lower !== undefined && upper !== undefined && upper < lower) {
    // An exclusive range: protoc-gen-validate then requires the value outside [upper, lower].
    if (!aboveLower && !belowUpper) fail(`must be ${lowerText} or ${upperText}, got ${String(shown)}`);
  } else if (!aboveLower || !belowUpper) {
    fail(`must be ${[lowerText, upperText].filter((text) => text !== "").join(" and ")}, got ${String(shown)}`);
  }
  const members = (key: string) => (Array.isArray(body[key]) ? (body[key] as unknown[]).map(limitOf) : undefined);
  const inList = members("in");
  if (inList !== undefined && !inList.includes(value)) fail(`must be one of ${inList.map(format).join(", ")}, got ${String(shown)}`);
  if (members("not_in")?.includes(value)) fail(`must not be ${String(shown)}`);
}

function checkFloat(body: Rules, value: number, fail: Fail): void {
  const bound = (key: string) => (body[key] === undefined ? undefined : Number(body[key]));
  const gt = bound("gt"), gte = bound("gte"), lt = bound("lt"), lte = bound("lte");
  if ((gt !== undefined && !(value > gt)) || (gte !== undefined && !(value >= gte)) ||
    (lt !== undefined && !(value < lt)) || (lte !== undefined && !(value <= lte))) {
    const parts = [gt !== undefined ? `> ${gt}` : "", gte !== undefined ? `>= ${gte}` : "", lt !== undefined ? `< ${lt}` : "", lte !== undefined ? `<= ${lte}` : ""];
    fail(`must be ${parts.filter((part) => part !== "").join(" and ")}, got ${value}`);
  }
}

// protoc-gen-validate's well_known_regex (validate.proto: KnownRegex), strict by default.
const HEADER_NAME_STRICT = /^:?[0-9a-zA-Z!#$%&'*+\-.^_|~`]+$/;
const HEADER_VALUE_STRICT = /^[^\u0000-\u0008\u000A-\u001F\u007F]*$/;
const HEADER_LOOSE = /^[^\u0000\u000A\u000D]*$/;

function checkString(body: Rules, value: Json, fail: Fail): void {
  if (typeof value !== "string") return;
  if (body.ignore_empty === true && value === "") return;
  const length = [...value].length;
  const bytes = Buffer.byteLength(value);
  const number = (key: string) => (body[key] === undefined ? undefined : Number(body[key]));
  const minLen = number("min_len"), maxLen = number("max_len"), minBytes = number("min_bytes"), maxBytes = number("max_bytes");
  if (number("len") !== undefined && length !== number("len")) fail(`must be exactly ${number("len")} character(s) long`);
  if (minLen !== undefined && length < minLen) fail(minLen === 1 ? "must not be empty" : `must be at least ${minLen} characters long`);
  if (maxLen !== undefined && length > maxLen) fail(`must be at most ${maxLen} characters long, got ${length}`);
  if (minBytes !== undefined && bytes < minBytes) fail(minBytes === 1 ? "must not be empty" : `must be at least ${minBytes} bytes long`);
  if (maxBytes !== undefined && bytes > maxBytes) fail(`must be at most ${maxBytes} bytes long, got ${bytes}`);
  if (typeof body.const === "string" && value !== body.const) fail(`must be '${body.const}'`);
  if (typeof body.prefix === "string" && !value.startsWith(body.prefix)) fail(`must start with '${body.prefix}'`);
  if (typeof body.suffix === "string" && !value.endsWith(body.suffix)) fail(`must end with '${body.suffix}'`);
  if (typeof body.contains === "string" && !value.includes(body.contains)) fail(`must contain '${body.contains}'`);
  if (typeof body.not_contains === "string" && value.includes(body.not_contains)) fail(`must not contain '${body.not_contains}'`);
  if (Array.isArray(body.in) && !body.in.includes(value)) fail(`must be one of ${body.in.map((item) => `'${String(item)}'`).join(", ")}`);
  if (Array.isArray(body.not_in) && body.not_in.includes(value)) fail(`must not be '${value}'`);
  // RE2 syntax; the API's patterns are within what JavaScript's engine reads the same way.
  if (typeof body.pattern === "string" && !new RegExp(body.pattern, "u").test(value)) fail(`must match ${body.pattern}`);
  const regex = body.well_known_regex;
  if (regex !== undefined) {
    const strict = body.strict !== false;
    const isName = regex === "HTTP_HEADER_NAME" || regex === 1;
    const pattern = !strict ? HEADER_LOOSE : isName ? HEADER_NAME_STRICT : HEADER_VALUE_STRICT;
    if (!pattern.test(value)) fail(`is not a valid HTTP header ${isName ? "name" : "value"}: ${JSON.stringify(value)}`);
  }
  if (body.address === true || body.ip === true || body.ipv4 === true || body.ipv6 === true || body.hostname === true) {
    checkWellKnownAddress(body, value, fail);
  }
}

function checkWellKnownAddress(body: Rules, value: string, fail: Fail): void {
  const ipv4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/.test(value);
  const ipv6 = value.includes(":") && /^[0-9a-fA-F:.]+$/.test(value);
  const hostname = value.length <= 253 && /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?$/.test(value);
  const ok = body.ipv4 === true ? ipv4 : body.ipv6 === true ? ipv6 : body.ip === true ? ipv4 || ipv6 : body.hostname === true ? hostname : ipv4 || ipv6 || hostname;
  if (!ok) fail(`is not a valid ${body.ipv4 === true ? "IPv4 address" : body.ipv6 === true ? "IPv6 address" : body.ip === true ? "IP address" : body.hostname === true ? "hostname" : "address"}: '${value}'`);
}

function checkBytes(body: Rules, value: Json, fail: Fail): void {
  if (typeof value !== "string") return;
  const length = Buffer.from(value, "base64").length;
  if (body.min_len !== undefined && length < Number(body.min_len)) fail(`must be at least ${String(body.min_len)} byte(s) long`);
  if (body.max_len !== undefined && length > Number(body.max_len)) fail(`must be at most ${String(body.max_len)} bytes long, got ${length}`);
}

function checkEnum(body: Rules, value: Json, field: protobuf.Field | undefined, fail: Fail): void {
  const type = field?.resolvedType;
  const number = typeof value === "number" ? value : type instanceof protobuf.Enum ? type.values[String(value)] : undefined;
  if (body.defined_only === true && typeof value === "number" && type instanceof protobuf.Enum && type.valuesById[value] === undefined) {
    fail(`${value} is not a value of ${type.name}`);
  }
  if (number === undefined) return;
  if (body.const !== undefined && number !== body.const) fail(`must be ${String(body.const)}`);
  const names = (list: unknown[]) => list.map((item) => (type instanceof protobuf.Enum ? type.valuesById[Number(item)] ?? item : item)).join(", ");
  if (Array.isArray(body.in) && !body.in.includes(number)) fail(`must be one of ${names(body.in)}, got ${String(value)}`);
  if (Array.isArray(body.not_in) && body.not_in.includes(number)) fail(`must not be ${String(value)}`);
}

function checkAny(body: Rules, value: Json, fail: Fail): void {
  const url = isJsonObject(value) ? value["@type"] : undefined;
  if (typeof url !== "string") return;
  const full = `type.googleapis.com/${url}`;
  if (Array.isArray(body.in) && !body.in.includes(full)) fail(`must be one of ${body.in.join(", ")}, got ${full}`);
  if (Array.isArray(body.not_in) && body.not_in.includes(full)) fail(`must not be ${full}`);
}

function checkRepeated(body: Rules, value: Json, fail: Fail): void {
  if (!Array.isArray(value)) return;
  if (body.min_items !== undefined && value.length < Number(body.min_items)) {
    fail(Number(body.min_items) === 1 ? "needs at least one item" : `needs at least ${String(body.min_items)} items`);
  }
  if (body.max_items !== undefined && value.length > Number(body.max_items)) fail(`takes at most ${String(body.max_items)} item(s), got ${value.length}`);
  if (body.unique === true && new Set(value.map((item) => JSON.stringify(item))).size !== value.length) fail("must not repeat an item");
  if (isJsonObject(body.items)) {
    value.forEach((item, i) => checkValue(body.items as Rules, item, undefined, (message, sub = "") => fail(message, `[${i}]${sub}`)));
  }
}

function checkMap(body: Rules, value: Json, fail: Fail): void {
  if (!isJsonObject(value)) return;
  const entries = Object.entries(value);
  if (body.min_pairs !== undefined && entries.length < Number(body.min_pairs)) fail(`needs at least ${String(body.min_pairs)} entr${Number(body.min_pairs) === 1 ? "y" : "ies"}`);
  if (body.max_pairs !== undefined && entries.length > Number(body.max_pairs)) fail(`takes at most ${String(body.max_pairs)} entries`);
  for (const [key, item] of entries) {
    if (isJsonObject(body.keys)) checkValue(body.keys as Rules, key, undefined, (message) => fail(`key '${key}' ${message}`));
    if (isJsonObject(body.values)) checkValue(body.values as Rules, item as Json, undefined, (message, sub = "") => fail(message, `.${key}${sub}`));
  }
}
