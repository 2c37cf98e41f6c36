// A small JSON reader for the plugin configuration. Written by hand because the AssemblyScript
// JSON libraries need compiler transforms or do not build with 0.28, and this one adds ~3 KB.
// Errors carry the byte offset so a configure failure can point at the fault.
import { msg } from "../messages";
import { digitValue } from "./text";

export enum JsonKind {
  Null,
  Bool,
  Number,
  String,
  Array,
  Object,
}

// The items of every array and the members of every object being read, nested: each container
// takes them when it closes.
const openItems: JsonValue[] = new Array<JsonValue>();
const openKeys: string[] = new Array<string>();

// Every array's items and object's members, a range each: a list per array and two per object
// would be about half of what a 10,000-rule policy allocates while it is read. An array's items
// have empty names, so that both lists stay aligned.
let allNames: string[] = new Array<string>();
let allValues: JsonValue[] = new Array<JsonValue>();

/** Member names seen so far: a policy repeats a few names in every rule, each is made once. */
const knownNames: string[] = new Array<string>();
const MAX_KNOWN_NAMES = 64;

export class JsonValue {
  kind: JsonKind = JsonKind.Null;
  bool: bool = false;
  number: f64 = 0;
  text: string = "";
  /** An array's items or an object's members (0 for anything else): allNames and allValues [first, first + count). */
  first: i32 = 0;
  count: i32 = 0;

  /** The name of an object's member `index`. */
  name(index: i32): string {
    return unchecked(allNames[this.first + index]);
  }

  /** An array's item `index`, or the value of an object's member `index`. */
  item(index: i32): JsonValue {
    return unchecked(allValues[this.first + index]);
  }

  /** The member named `key` of an object, or null. */
  get(key: string): JsonValue | null {
    for (let i = 0; i < this.count; i++) if (this.name(i) == key) return this.item(i);
    return null;
  }
}

export class JsonParser {
  private at: i32 = 0;
  error: string = "";

  constructor(private readonly text: string) {}

  /** The whole document, or null with `error` set. */
  parse(): JsonValue | null {
    openItems.length = 0;
    openKeys.length = 0;
    allNames = new Array<string>();
    allValues = new Array<JsonValue>();
    const value = this.value(0);
    if (value == null) return null;
    this.skipSpace();
    if (this.at < this.text.length) return this.fail(msg("unexpected trailing characters"));
    return value;
  }

  /** The document is no longer read: all of it may go at the next collection (a failed parse leaves items open). */
  release(): void {
    openItems.length = 0;
    openKeys.length = 0;
    allNames = new Array<string>();
    allValues = new Array<JsonValue>();
  }

  private fail(message: string): JsonValue | null {
    if (this.error.length == 0) this.error = msg("invalid JSON at offset ") + this.at.toString() + ": " + message;
    return null;
  }

  private skipSpace(): void {
    while (this.at < this.text.length) {
      const c = this.text.charCodeAt(this.at);
      if (c != 32 && c != 9 && c != 10 && c != 13) break;
      this.at++;
    }
  }

  private value(depth: i32): JsonValue | null {
    if (depth > 32) return this.fail(msg("nesting deeper than 32"));
    this.skipSpace();
    if (this.at >= this.text.length) return this.fail(msg("unexpected end"));
    const c = this.text.charCodeAt(this.at);
    if (c == 123) return this.object(depth);
    if (c == 91) return this.array(depth);
    if (c == 34) {
      const text = this.string();
      if (text == null) return null;
      const out = new JsonValue();
      out.kind = JsonKind.String;
      out.text = text;
      return out;
    }
    if (c == 45 || (c >= 48 && c <= 57)) return this.number();
    const out = new JsonValue();
    if (this.literal("true")) {
      out.kind = JsonKind.Bool;
      out.bool = true;
    } else if (this.literal("false")) {
      out.kind = JsonKind.Bool;
    } else if (!this.literal("null")) {
      return this.fail(msg("unexpected character"));
    }
    return out;
  }

  private literal(word: string): bool {
    if (this.text.substr(this.at, word.length) != word) return false;
    this.at += word.length;
    return true;
  }

  /** Only whole numbers (of at most 15 digits) are read: every number in the policy is a port or a weight. */
  private number(): JsonValue | null {
    const negative = this.text.charCodeAt(this.at) == 45;
    if (negative) this.at++;
    const start = this.at;
    let value: f64 = 0;
    while (this.at < this.text.length) {
      const digit = digitValue(this.text.charCodeAt(this.at), 10);
      if (digit < 0) break;
      value = value * 10 + digit;
      this.at++;
    }
    if (this.at == start || this.at - start > 15) return this.fail(msg("expected a whole number"));
    const out = new JsonValue();
    out.kind = JsonKind.Number;
    out.number = negative ? -value : value;
    return out;
  }

  private string(): string | null {
    this.at++;
    let out = "";
    let runStart = this.at;
    while (this.at < this.text.length) {
      const c = this.text.charCodeAt(this.at);
      if (c == 34) {
        const run = this.text.substring(runStart, this.at);
        this.at++;
        return out.length == 0 ? run : out + run;
      }
      if (c < 32) {
        this.fail(msg("control character in string"));
        return null;
      }
      if (c == 92) {
        out += this.text.substring(runStart, this.at);
        const escaped = this.escape();
        if (escaped == null) return null;
        out += escaped;
        runStart = this.at;
      } else {
        this.at++;
      }
    }
    this.fail(msg("unterminated string"));
    return null;
  }

  /** A member name, the known string when it is one (compared in place, without escapes). */
  private memberName(): string | null {
    const start = this.at + 1;
    let end = start;
    while (end < this.text.length) {
      const c = this.text.charCodeAt(end);
      if (c == 34 || c == 92 || c < 32) break;
      end++;
    }
    if (end < this.text.length && this.text.charCodeAt(end) == 34) {
      for (let k = 0; k < knownNames.length; k++) {
        if (this.spells(knownNames[k], start, end)) {
          this.at = end + 1;
          return knownNames[k];
        }
      }
    }
    const name = this.string();
    if (name != null && knownNames.length < MAX_KNOWN_NAMES) knownNames.push(name);
    return name;
  }

  /** Whether text[start, end) is `word`. */
  private spells(word: string, start: i32, end: i32): bool {
    if (word.length != end - start) return false;
    for (let i = 0; i < word.length; i++) if (word.charCodeAt(i) != this.text.charCodeAt(start + i)) return false;
    return true;
  }

  private escape(): string | null {
    this.at++;
    if (this.at >= this.text.length) {
      this.fail(msg("unterminated escape"));
      return null;
    }
    const c = this.text.charCodeAt(this.at++);
    if (c == 110) return "\n";
    if (c == 116) return "\t";
    if (c == 114) return "\r";
    if (c == 98) return "\b";
    if (c == 102) return "\f";
    if (c == 34 || c == 92 || c == 47) return String.fromCharCode(c);
    if (c == 117 && this.at + 4 <= this.text.length) {
      let code = 0;
      for (let i = 0; i < 4; i++) {
        const digit = digitValue(this.text.charCodeAt(this.at + i), 16);
        if (digit < 0) break;
        code = code * 16 + digit;
        if (i == 3) {
          this.at += 4;
          return String.fromCharCode(code);
        }
      }
    }
    this.fail(msg("bad escape"));
    return null;
  }

  private array(depth: i32): JsonValue | null {
    this.at++;
    const out = new JsonValue();
    out.kind = JsonKind.Array;
    this.skipSpace();
    if (this.at < this.text.length && this.text.charCodeAt(this.at) == 93) {
      this.at++;
      return out;
    }
    const first = openItems.length;
    while (true) {
      const item = this.value(depth + 1);
      if (item == null) return null;
      openItems.push(item);
      this.skipSpace();
      if (this.at >= this.text.length) return this.fail(msg("unterminated array"));
      const c = this.text.charCodeAt(this.at++);
      if (c == 93) return this.close(out, openKeys.length, first);
      if (c != 44) return this.fail(msg("expected ',' or ']'"));
    }
  }

  /** The container's items (and names) leave the open lists for the shared ones. */
  private close(out: JsonValue, firstKey: i32, firstItem: i32): JsonValue {
    out.first = allValues.length;
    out.count = openItems.length - firstItem;
    const isObject = out.kind == JsonKind.Object;
    for (let i = 0; i < out.count; i++) {
      allNames.push(isObject ? unchecked(openKeys[firstKey + i]) : "");
      allValues.push(unchecked(openItems[firstItem + i]));
    }
    openKeys.length = firstKey;
    openItems.length = firstItem;
    return out;
  }

  private object(depth: i32): JsonValue | null {
    this.at++;
    const out = new JsonValue();
    out.kind = JsonKind.Object;
    this.skipSpace();
    if (this.at < this.text.length && this.text.charCodeAt(this.at) == 125) {
      this.at++;
      return out;
    }
    const firstKey = openKeys.length;
    const firstItem = openItems.length;
    while (true) {
      this.skipSpace();
      if (this.at >= this.text.length || this.text.charCodeAt(this.at) != 34) return this.fail(msg("expected a member name"));
      const key = this.memberName();
      if (key == null) return null;
      this.skipSpace();
      if (this.at >= this.text.length || this.text.charCodeAt(this.at) != 58) return this.fail(msg("expected ':'"));
      this.at++;
      const item = this.value(depth + 1);
      if (item == null) return null;
      openKeys.push(key);
      openItems.push(item);
      this.skipSpace();
      if (this.at >= this.text.length) return this.fail(msg("unterminated object"));
      const c = this.text.charCodeAt(this.at++);
      if (c == 125) return this.close(out, firstKey, firstItem);
      if (c != 44) return this.fail(msg("expected ',' or '}'"));
    }
  }
}
