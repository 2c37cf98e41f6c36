// YAML read as Envoy reads it. Envoy does not use YAML's own types: it turns each document into a
// protobuf Value tree with yaml-cpp (source/common/protobuf/yaml_utility.cc, parseYamlNode) and
// hands that, as JSON, to protobuf's JSON parser. A quoted scalar is a string; a plain one is null
// (`~`, `null`, empty), a bool (yaml-cpp's convert<bool>: y/n, yes/no, true/false, on/off in lower,
// upper or capitalised case), an integer (C++ stream parsing with base detection: 0x hex, leading-0
// octal; a number within int32 stays a number, a larger one becomes its decimal string), or else a
// string — floats included, which protobuf's parser converts by the field's type.
import { isAlias, isMap, isScalar, isSeq, parseAllDocuments, type Document, type YAMLMap } from "yaml";
import { ConfigError } from "./errors.js";

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

const YAML_CPP_NULL = /^(?:~|null|Null|NULL)?$/;
const YAML_CPP_TRUE = /^(?:y|Y|yes|Yes|YES|true|True|TRUE|on|On|ON)$/;
const YAML_CPP_FALSE = /^(?:n|N|no|No|NO|false|False|FALSE|off|Off|OFF)$/;
const CPP_INTEGER = /^[-+]?(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/;

function cppInteger(text: string): bigint {
  const sign = text.startsWith("-") ? -1n : 1n;
  const digits = text.replace(/^[-+]/, "");
  if (/^0[xX]/.test(digits)) return sign * BigInt(digits);
  if (digits.length > 1 && digits.startsWith("0")) return sign * BigInt(`0o${digits.slice(1)}`);
  return sign * BigInt(digits);
}

/** A plain scalar's value; values beyond int64 fail yaml-cpp's conversion and stay strings. */
function plainScalar(text: string): unknown {
  if (YAML_CPP_NULL.test(text)) return null;
  if (YAML_CPP_TRUE.test(text)) return true;
  if (YAML_CPP_FALSE.test(text)) return false;
  if (CPP_INTEGER.test(text)) {
    const value = cppInteger(text);
    if (value >= INT32_MIN && value <= INT32_MAX) return Number(value);
    if (value >= INT64_MIN && value <= INT64_MAX) return value.toString();
  }
  return text;
}

/** Envoy's Value tree from yaml's node tree (read with the failsafe schema: every scalar as its text). */
class ValueBuilder {
  private depth = 0;

  constructor(private readonly document: Document) {}

  value(node: unknown): unknown {
    if (++this.depth > 256) throw new Error("nesting deeper than 256 levels (or an alias cycle)");
    try {
      if (isAlias(node)) return this.value(node.resolve(this.document));
      if (isScalar(node)) {
        if (node.value === null || node.value === undefined) return null;
        return node.type === "PLAIN" ? plainScalar(String(node.value)) : String(node.value);
      }
      if (isSeq(node)) return node.items.map((item) => this.value(item));
      if (isMap(node)) return this.map(node);
      return null;
    } finally {
      this.depth--;
    }
  }

  /** Keys are their text (yaml-cpp's as<std::string>); `<<` merges a map or a list of maps under the keys already set. */
  private map(node: YAMLMap): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    const merged: Record<string, unknown>[] = [];
    for (const pair of node.items) {
      // Envoy skips entries whose key is tagged !ignore (a place to keep anchors).
      if (isScalar(pair.key) && pair.key.tag === "!ignore") continue;
      const keyNode = isAlias(pair.key) ? pair.key.resolve(this.document) : pair.key;
      const key = isScalar(keyNode) ? String(keyNode.value ?? "") : JSON.stringify(this.value(keyNode));
      const isMerge = isScalar(pair.key) && pair.key.type === "PLAIN" && key === "<<";
      if (!isMerge) {
        out[key] = this.value(pair.value);
        continue;
      }
      const source = this.value(pair.value);
      for (const item of Array.isArray(source) ? source : [source]) {
        if (item !== null && typeof item === "object" && !Array.isArray(item)) merged.push(item as Record<string, unknown>);
      }
    }
    for (const source of merged) {
      for (const [key, item] of Object.entries(source)) if (!(key in out)) out[key] = item;
    }
    return out;
  }
}

export interface YamlDocument {
  value: unknown;
  /** 1-based line of the document's start, for messages about one of several documents. */
  line: number;
}

/**
 * Every document of a YAML text, with Envoy's scalar rules. Syntax errors carry their line and
 * column. Anchors, aliases and `<<` merge keys are resolved.
 */
export function parseEnvoyYamlDocuments(text: string, source: string): YamlDocument[] {
  const documents = parseAllDocuments(text, { schema: "failsafe", uniqueKeys: true, prettyErrors: true });
  const list = Array.isArray(documents) ? documents : [documents];
  const errors = list.flatMap((document) => document.errors.map((error) => error.message.split("\n")[0]!));
  if (errors.length > 0) throw new ConfigError(errors, source);
  return list.map((document) => ({
    value: new ValueBuilder(document).value(document.contents),
    line: lineOf(text, document.contents?.range?.[0] ?? document.range[0]),
  }));
}

function lineOf(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/**
 * One Envoy YAML document: yaml-cpp's `YAML::Load`, which Envoy's loadFromYaml uses, reads only
 * the first document of a stream; a bootstrap with more is refused rather than half-read.
 */
export function parseEnvoyYaml(text: string, source: string): unknown {
  const documents = parseEnvoyYamlDocuments(text, source);
  if (documents.length > 1) {
    throw new ConfigError([`line ${documents[1]!.line}: a second YAML document; Envoy reads only the first (one bootstrap per file)`], source);
  }
  return documents[0]?.value ?? null;
}
