// IP addresses as Envoy's properties spell them: `a.b.c.d`, `a.b.c.d:port`, `[v6]:port`, bare v6.
// Every address is held as 128 bits; IPv4 lives in the IPv4-mapped range ::ffff:0:0/96, so an
// IPv4 CIDR also matches `[::ffff:a.b.c.d]` (what a dual-stack listener reports). Parsing reads
// bytes into a reused Address: nothing is allocated per connection.
import { formatNumber } from "../sdk/format";
import { indexOfByte, parseNumber } from "./text";

const V4_MAPPED_PREFIX: u64 = 0xffff;
const COLON: u8 = 58;
const DOT: u8 = 46;

/** An address and port, filled in place by parseSocketAddress. */
export class Address {
  hi: u64 = 0;
  lo: u64 = 0;
  /** -1 when the text had none. */
  port: i32 = -1;
  /** False when the host had no value or it was malformed. */
  valid: bool = false;

  get isV4(): bool {
    return this.hi == 0 && (this.lo >>> 32) == V4_MAPPED_PREFIX;
  }

  /** Last byte of the address: the IPv4 last octet for IPv4 and IPv4-mapped addresses. */
  get lastByte(): u32 {
    return <u32>(this.lo & 0xff);
  }

  setV4(value: u32): void {
    this.hi = 0;
    this.lo = (V4_MAPPED_PREFIX << 32) | <u64>value;
  }

  copyFrom(other: Address): void {
    this.hi = other.hi;
    this.lo = other.lo;
    this.port = other.port;
    this.valid = other.valid;
  }
}

/** Where the last scanV4 stopped. */
let scanEnd = 0;

/**
 * A dotted-quad IPv4 address at bytes[start, end) in one pass, stopping at `end` or at a ':'
 * (where a port follows); the address as a u32, or -1. Leading zeros are refused (ambiguous
 * octal). Sets scanEnd.
 */
function scanV4(bytes: StaticArray<u8>, start: i32, end: i32): i64 {
  let value: u32 = 0;
  let octet: u32 = 0;
  let digits = 0;
  let dots = 0;
  let i = start;
  for (; i < end; i++) {
    const c = unchecked(bytes[i]);
    if (c == DOT) {
      if (digits == 0 || dots == 3) return -1;
      value = (value << 8) | octet;
      octet = 0;
      digits = 0;
      dots++;
      continue;
    }
    if (c == COLON) break;
    const digit = <u32>c - 48;
    if (digit > 9 || (digits > 0 && octet == 0)) return -1;
    octet = octet * 10 + digit;
    if (octet > 255) return -1;
    digits++;
  }
  scanEnd = i;
  if (dots != 3 || digits == 0) return -1;
  return (value << 8) | octet;
}

/** Dotted-quad IPv4 spanning bytes[start, end) exactly, or -1. */
function parseV4(bytes: StaticArray<u8>, start: i32, end: i32): i64 {
  const value = scanV4(bytes, start, end);
  return scanEnd == end ? value : -1;
}

/** The groups of the IPv6 address being parsed (module-level: parsing allocates nothing). */
const words = new StaticArray<u32>(8);

function parseV6(bytes: StaticArray<u8>, start: i32, end: i32, out: Address): bool {
  let count = 0;
  let gapAt = -1;
  let i = start;
  if (end - start >= 2 && unchecked(bytes[i]) == COLON && unchecked(bytes[i + 1]) == COLON) {
    gapAt = 0;
    i += 2;
  } else if (i < end && unchecked(bytes[i]) == COLON) {
    return false;
  }
  while (i < end) {
    let groupEnd = indexOfByte(bytes, COLON, i, end);
    if (groupEnd < 0) groupEnd = end;
    const dot = indexOfByte(bytes, DOT, i, groupEnd);
    if (dot >= 0 && groupEnd == end) {
      if (count > 6) return false;
      const v4 = parseV4(bytes, i, end);
      if (v4 < 0) return false;
      unchecked(words[count++] = <u32>(v4 >>> 16));
      unchecked(words[count++] = <u32>(v4 & 0xffff));
      break;
    }
    if (count == 8) return false;
    const word = parseNumber(bytes, i, groupEnd, 16, 4);
    if (word < 0) return false;
    unchecked(words[count++] = <u32>word);
    i = groupEnd;
    if (i == end) break;
    i++;
    if (i < end && unchecked(bytes[i]) == COLON) {
      if (gapAt >= 0) return false;
      gapAt = count;
      i++;
    } else if (i == end) {
      return false;
    }
  }
  if (gapAt < 0 ? count != 8 : count > 7) return false;
  const tail = gapAt < 0 ? 0 : count - gapAt;
  let hi: u64 = 0;
  let lo: u64 = 0;
  for (let k = 0; k < 8; k++) {
    // Group k of the full address: before the gap, the k-th parsed; in the gap, 0; after, the tail.
    let word: u64 = 0;
    if (gapAt < 0 || k < gapAt) word = unchecked(words[k]);
    else if (k >= 8 - tail) word = unchecked(words[gapAt + k - (8 - tail)]);
    if (k < 4) hi = (hi << 16) | word;
    else lo = (lo << 16) | word;
  }
  out.hi = hi;
  out.lo = lo;
  return true;
}

/** An IPv4 or IPv6 address in bytes[start, end) into `out` (port untouched); false if malformed. */
function parseIp(bytes: StaticArray<u8>, start: i32, end: i32, out: Address): bool {
  if (indexOfByte(bytes, COLON, start, end) >= 0) return parseV6(bytes, start, end, out);
  const v4 = parseV4(bytes, start, end);
  if (v4 < 0) return false;
  out.setV4(<u32>v4);
  return true;
}

/** A decimal port spanning bytes[start, end) exactly, or -1. Its own loop: it runs on every connection. */
function parsePort(bytes: StaticArray<u8>, start: i32, end: i32): i32 {
  if (end <= start || end - start > 5) return -1;
  let port: u32 = 0;
  for (let i = start; i < end; i++) {
    const digit = <u32>unchecked(bytes[i]) - 48;
    if (digit > 9) return -1;
    port = port * 10 + digit;
  }
  return port > 65535 ? -1 : <i32>port;
}

/**
 * `a.b.c.d`, `a.b.c.d:port`, `[v6]:port`, `[v6]` or a bare IPv6 address in bytes[0, length),
 * into `out`; sets and returns `out.valid`.
 */
export function parseSocketAddress(bytes: StaticArray<u8>, length: i32, out: Address): bool {
  out.valid = false;
  out.port = -1;
  if (length <= 0 || length > bytes.length) return false;
  if (unchecked(bytes[0]) == 91) {
    const close = indexOfByte(bytes, 93, 1, length);
    if (close < 0 || !parseIp(bytes, 1, close, out)) return false;
    if (close < length - 1) {
      if (unchecked(bytes[close + 1]) != COLON) return false;
      out.port = parsePort(bytes, close + 2, length);
      if (out.port < 0) return false;
    }
  } else {
    // IPv4 with or without a port, else a bare IPv6 address.
    const v4 = scanV4(bytes, 0, length);
    if (v4 >= 0) {
      out.setV4(<u32>v4);
      if (scanEnd < length) {
        out.port = parsePort(bytes, scanEnd + 1, length);
        if (out.port < 0) return false;
      }
    } else if (!parseV6(bytes, 0, length, out)) {
      return false;
    }
  }
  out.valid = true;
  return true;
}

/** A network: address and prefix length counted in the 128-bit space. */
export class Cidr {
  hi: u64 = 0;
  lo: u64 = 0;
  prefix: i32 = 0;
}

const parsed = new Address();

/** `10.0.0.0/8`, `2001:db8::/32`, or a single address (full-length prefix) in bytes[0, length), into `out`; false when malformed. */
export function parseCidr(bytes: StaticArray<u8>, length: i32, out: Cidr): bool {
  const slash = indexOfByte(bytes, 47, 0, length);
  const end = slash < 0 ? length : slash;
  if (end == 0 || !parseIp(bytes, 0, end, parsed)) return false;
  const isV4Text = indexOfByte(bytes, COLON, 0, end) < 0;
  const maxPrefix = isV4Text ? 32 : 128;
  let prefix: i64 = maxPrefix;
  if (slash >= 0) {
    prefix = parseNumber(bytes, slash + 1, length, 10, 3);
    if (prefix < 0 || prefix > maxPrefix) return false;
  }
  out.hi = parsed.hi;
  out.lo = parsed.lo;
  out.prefix = <i32>prefix + (isV4Text ? 96 : 0);
  return true;
}

/** The address as text: dotted quad for IPv4 (and IPv4-mapped), eight hex groups otherwise. */
export function formatIp(address: Address): string {
  if (address.isV4) {
    const v = <u32>address.lo;
    return formatNumber(v >>> 24) + "." + formatNumber((v >>> 16) & 0xff) + "." + formatNumber((v >>> 8) & 0xff) + "." + formatNumber(v & 0xff);
  }
  let out = "";
  for (let i = 0; i < 8; i++) {
    const word = i < 4 ? address.hi : address.lo;
    if (i > 0) out += ":";
    out += formatNumber(<u32>((word >>> (<u64>(48 - (i & 3) * 16))) & 0xffff), 16);
  }
  return out;
}
