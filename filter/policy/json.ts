// A pull reader for the plugin configuration's JSON. The policy reader (config.ts) walks the
// document with it and fills the compiled policy as it goes: no tree of the document is built,
// and a VM keeps the memory its configure peak needed (a tree of a 100,000-CIDR list and its
// strings were most of it). Written by hand because the AssemblyScript JSON libraries need
// compiler transforms or do not build with 0.28, and all of them build a tree.
//
// check() goes over the whole text first, so a syntax error is reported (with its byte offset)
// before anything the policy says is wrong; after it, the reading methods take the syntax as valid.
import { msg } from "../messages";
import { formatNumber } from "../sdk/format";
import { digitValue } from "./text";

export const enum JsonKind {
  Null,
  Bool,
  Number,
  String,
  Array,
  Object,
}

const MAX_DEPTH = 32;

export class JsonCursor {
  private at: i32 = 0;
  private error: string = "";
  /** The member name read last: its index in `names`, or -1 for a name not there. */
  field: i32 = -1;
  /** Where the member name read last starts (its opening quote). */
  private nameAt: i32 = 0;

  /** @param names the member names `field` tells apart. */
  constructor(private readonly text: string, private readonly names: string[]) {}

  /** "" when the whole text is one JSON value, else the first syntax error and its offset. */
  check(): string {
    if (this.skipValue(0)) {
      this.skipSpace();
      if (this.at < this.text.length) this.fail(msg("unexpected trailing characters"));
    }
    this.rewind();
    return this.error;
  }

  /** Back to the start of the text. */
  rewind(): void {
    this.at = 0;
  }

  /** Reads nothing more: every container then ends, and values read as null. */
  stop(): void {
    this.at = this.text.length;
  }

  /** The kind of the value at the cursor. */
  kind(): JsonKind {
    this.skipSpace();
    if (this.at >= this.text.length) return JsonKind.Null;
    const c = this.text.charCodeAt(this.at);
    if (c == 123) return JsonKind.Object;
    if (c == 91) return JsonKind.Array;
    if (c == 34) return JsonKind.String;
    if (c == 116 || c == 102) return JsonKind.Bool;
    if (c == 110) return JsonKind.Null;
    return JsonKind.Number;
  }

  /** Steps into the object or array at the cursor; nextMember or nextItem then walk it. */
  enter(): void {
    this.skipSpace();
    this.at++;
  }

  /** Steps to the next item of the array being read: false (and out of the array) after the last. */
  nextItem(): bool {
    this.skipSpace();
    if (this.at >= this.text.length) return false;
    let c = this.text.charCodeAt(this.at);
    if (c == 44) {
      this.at++;
      this.skipSpace();
      c = this.text.charCodeAt(this.at);
    }
    if (c != 93 && c != 125) return true;
    this.at++;
    return false;
  }

  /** Reads the next member's name (`field`, memberName()) up to its value; false (and out of the object) after the last. */
  nextMember(): bool {
    if (!this.nextItem()) return false;
    this.nameAt = this.at;
    this.field = -1;
    const start = this.at + 1;
    this.skipString();
    const end = this.at - 1;
    for (let k = 0; k < this.names.length && this.field < 0; k++) {
      if (this.spells(unchecked(this.names[k]), start, end)) this.field = k;
    }
    // A name written with escapes is compared once they are undone.
    if (this.field < 0 && this.text.substring(start, end).includes("\\")) this.field = this.names.indexOf(this.memberName());
    this.skipSpace();
    this.at++;
    return true;
  }

  /** The member name read last, as written (escapes undone). */
  memberName(): string {
    const resume = this.at;
    this.at = this.nameAt;
    const name = this.string();
    this.at = resume;
    return name;
  }

  string(): string {
    this.skipSpace();
    return this.readString(true);
  }

  /** Only whole numbers are read (every number in the policy is a port, a status or a weight). */
  number(): f64 {
    this.skipSpace();
    return this.readNumber();
  }

  bool(): bool {
    this.skipSpace();
    const value = this.text.charCodeAt(this.at) == 116;
    this.at += value ? 4 : 5;
    return value;
  }

  /** Steps over the value at the cursor. */
  skip(): void {
    this.skipValue(0);
  }

  /**
   * The string at the cursor copied into `into` when it is not empty, ASCII without escapes, and
   * fits: its length, and the cursor moves past it. Else -1 and the cursor stays. Lets addresses
   * be read without making a string of each.
   */
  asciiInto(into: StaticArray<u8>): i32 {
    if (this.kind() != JsonKind.String) return -1;
    const start = this.at + 1;
    let end = start;
    while (end - start <= into.length) {
      const c = this.text.charCodeAt(end);
      if (c == 34) {
        if (end == start) return -1;
        this.at = end + 1;
        return end - start;
      }
      if (c == 92 || c > 127 || end - start == into.length) return -1;
      unchecked(into[end - start] = <u8>c);
      end++;
    }
    return -1;
  }

  private fail(message: string): bool {
    if (this.error.length == 0) this.error = msg("invalid JSON at offset ") + formatNumber(this.at) + ": " + message;
    return false;
  }

  private skipSpace(): void {
    while (this.at < this.text.length) {
      const c = this.text.charCodeAt(this.at);
      if (c != 32 && c != 9 && c != 10 && c != 13) break;
      this.at++;
    }
  }

  /** Whether text[start, end) is `word`. */
  private spells(word: string, start: i32, end: i32): bool {
    if (word.length != end - start) return false;
    for (let i = 0; i < word.length; i++) if (word.charCodeAt(i) != this.text.charCodeAt(start + i)) return false;
    return true;
  }

  private skipValue(depth: i32): bool {
    if (depth > MAX_DEPTH) return this.fail(msg("nesting deeper than 32"));
    this.skipSpace();
    if (this.at >= this.text.length) return this.fail(msg("unexpected end"));
    const c = this.text.charCodeAt(this.at);
    if (c == 123 || c == 91) return this.skipContainer(depth, c == 123);
    if (c == 34) return this.skipString();
    if (c == 45 || (c >= 48 && c <= 57)) {
      this.readNumber();
      return this.error.length == 0;
    }
    if (this.literal("true") || this.literal("false") || this.literal("null")) return true;
    return this.fail(msg("unexpected character"));
  }

  private literal(word: string): bool {
    if (this.text.substr(this.at, word.length) != word) return false;
    this.at += word.length;
    return true;
  }

  private readNumber(): f64 {
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
    if (this.at == start || this.at - start > 15) this.fail(msg("expected a whole number"));
    return negative ? -value : value;
  }

  private skipString(): bool {
    this.readString(false);
    return this.error.length == 0;
  }

  /** The string at the cursor; with `keep` false it is only stepped over (and checked). */
  private readString(keep: bool): string {
    this.at++;
    let out = "";
    let runStart = this.at;
    while (this.at < this.text.length) {
      const c = this.text.charCodeAt(this.at);
      if (c == 34) {
        const run = keep ? this.text.substring(runStart, this.at) : "";
        this.at++;
        return out.length == 0 ? run : out + run;
      }
      if (c < 32) {
        this.fail(msg("control character in string"));
        return "";
      }
      if (c == 92) {
        if (keep) out += this.text.substring(runStart, this.at);
        const escaped = this.escape();
        if (escaped < 0) return "";
        if (keep) out += String.fromCharCode(escaped);
        runStart = this.at;
      } else {
        this.at++;
      }
    }
    this.fail(msg("unterminated string"));
    return "";
  }

  /** The code unit an escape stands for, or -1. */
  private escape(): i32 {
    this.at++;
    if (this.at >= this.text.length) {
      this.fail(msg("unterminated escape"));
      return -1;
    }
    const c = this.text.charCodeAt(this.at++);
    if (c == 110) return 10;
    if (c == 116) return 9;
    if (c == 114) return 13;
    if (c == 98) return 8;
    if (c == 102) return 12;
    if (c == 34 || c == 92 || c == 47) return c;
    if (c == 117 && this.at + 4 <= this.text.length) {
      let code = 0;
      for (let i = 0; i < 4; i++) {
        const digit = digitValue(this.text.charCodeAt(this.at + i), 16);
        if (digit < 0) break;
        code = code * 16 + digit;
        if (i == 3) {
          this.at += 4;
          return code;
        }
      }
    }
    this.fail(msg("bad escape"));
    return -1;
  }

  private skipContainer(depth: i32, isObject: bool): bool {
    this.at++;
    this.skipSpace();
    const closer = isObject ? 125 : 93;
    if (this.at < this.text.length && this.text.charCodeAt(this.at) == closer) {
      this.at++;
      return true;
    }
    while (true) {
      if (isObject) {
        this.skipSpace();
        if (this.at >= this.text.length || this.text.charCodeAt(this.at) != 34) return this.fail(msg("expected a member name"));
        if (!this.skipString()) return false;
        this.skipSpace();
        if (this.at >= this.text.length || this.text.charCodeAt(this.at) != 58) return this.fail(msg("expected ':'"));
        this.at++;
      }
      if (!this.skipValue(depth + 1)) return false;
      this.skipSpace();
      if (this.at >= this.text.length) return this.fail(isObject ? msg("unterminated object") : msg("unterminated array"));
      const c = this.text.charCodeAt(this.at++);
      if (c == closer) return true;
      if (c != 44) return this.fail(isObject ? msg("expected ',' or '}'") : msg("expected ',' or ']'"));
    }
  }
}
