import { parseNumber } from "./text";

// IP addresses as Envoy's properties spell them: `a.b.c.d`, `a.b.c.d:port`, `[v6]:port`, bare v6.
// Every address is held as 128 bits; IPv4 lives in the IPv4-mapped range ::ffff:0:0/96, so an
// IPv4 CIDR also matches `[::ffff:a.b.c.d]` (what a dual-stack listener reports).

const V4_MAPPED_PREFIX: u64 = 0xffff;

export class Ip {
  constructor(public readonly hi: u64, public readonly lo: u64) {}

  get isV4(): bool {
    return this.hi == 0 && (this.lo >>> 32) == V4_MAPPED_PREFIX;
  }

  /** Last byte of the address: the IPv4 last octet for IPv4 and IPv4-mapped addresses. */
  get lastByte(): u32 {
    return <u32>(this.lo & 0xff);
  }

  toString(): string {
    if (this.isV4) {
      const v = <u32>this.lo;
      return (v >>> 24).toString() + "." + ((v >>> 16) & 0xff).toString() + "." + ((v >>> 8) & 0xff).toString() + "." + (v & 0xff).toString();
    }
    const groups = new Array<string>(8);
    for (let i = 0; i < 8; i++) {
      const word = i < 4 ? this.hi : this.lo;
      groups[i] = (<u32>((word >>> (<u64>(48 - (i & 3) * 16))) & 0xffff)).toString(16);
    }
    return groups.join(":");
  }
}

export class SocketAddress {
  /** port is -1 when the text had none. */
  constructor(public readonly ip: Ip, public readonly port: i32) {}
}

/** Dotted-quad IPv4 in text[start, end) as a u32, or -1. Leading zeros are refused (ambiguous octal). */
function parseV4(text: string, start: i32, end: i32): i64 {
  let value: i64 = 0;
  let partStart = start;
  for (let part = 0; part < 4; part++) {
    let partEnd = part == 3 ? end : text.indexOf(".", partStart);
    if (partEnd < 0 || partEnd > end) return -1;
    if (partEnd - partStart > 1 && text.charCodeAt(partStart) == 48) return -1;
    const octet = parseNumber(text, partStart, partEnd, 10, 3);
    if (octet < 0 || octet > 255) return -1;
    value = (value << 8) | octet;
    partStart = partEnd + 1;
  }
  return value;
}

function parseV6(text: string, start: i32, end: i32): Ip | null {
  const words = new StaticArray<u32>(8);
  let count = 0;
  let gapAt = -1;
  let i = start;
  if (end - start >= 2 && text.charCodeAt(i) == 58 && text.charCodeAt(i + 1) == 58) {
    gapAt = 0;
    i += 2;
  } else if (i < end && text.charCodeAt(i) == 58) {
    return null;
  }
  while (i < end) {
    let groupEnd = text.indexOf(":", i);
    if (groupEnd < 0 || groupEnd > end) groupEnd = end;
    const dot = text.indexOf(".", i);
    if (dot >= 0 && dot < groupEnd && groupEnd == end) {
      if (count > 6) return null;
      const v4 = parseV4(text, i, end);
      if (v4 < 0) return null;
      words[count++] = <u32>(v4 >>> 16);
      words[count++] = <u32>(v4 & 0xffff);
      i = end;
      break;
    }
    if (count == 8) return null;
    const word = parseNumber(text, i, groupEnd, 16, 4);
    if (word < 0) return null;
    words[count++] = <u32>word;
    i = groupEnd;
    if (i == end) break;
    i++;
    if (i < end && text.charCodeAt(i) == 58) {
      if (gapAt >= 0) return null;
      gapAt = count;
      i++;
    } else if (i == end) {
      return null;
    }
  }
  if (gapAt < 0 && count != 8) return null;
  if (gapAt >= 0 && count > 7) return null;
  const full = new StaticArray<u32>(8);
  const tail = gapAt < 0 ? 0 : count - gapAt;
  for (let k = 0; k < count; k++) {
    const at = gapAt >= 0 && k >= gapAt ? 8 - tail + (k - gapAt) : k;
    full[at] = words[k];
  }
  let hi: u64 = 0;
  let lo: u64 = 0;
  for (let k = 0; k < 4; k++) hi = (hi << 16) | full[k];
  for (let k = 4; k < 8; k++) lo = (lo << 16) | full[k];
  return new Ip(hi, lo);
}

function fromV4(v4: i64): Ip {
  return new Ip(0, (V4_MAPPED_PREFIX << 32) | <u64>v4);
}

/** An IPv4 or IPv6 address in text[start, end), or null. */
export function parseIpRange(text: string, start: i32, end: i32): Ip | null {
  if (text.indexOf(":", start) >= 0 && text.indexOf(":", start) < end) return parseV6(text, start, end);
  const v4 = parseV4(text, start, end);
  return v4 < 0 ? null : fromV4(v4);
}

export function parseIp(text: string): Ip | null {
  return parseIpRange(text, 0, text.length);
}

/** `a.b.c.d`, `a.b.c.d:port`, `[v6]:port`, `[v6]` or a bare IPv6 address; null when malformed. */
export function parseSocketAddress(text: string): SocketAddress | null {
  const length = text.length;
  if (length == 0) return null;
  if (text.charCodeAt(0) == 91) {
    const close = text.indexOf("]");
    if (close < 0) return null;
    const ip = parseIpRange(text, 1, close);
    if (ip == null) return null;
    if (close == length - 1) return new SocketAddress(ip, -1);
    if (text.charCodeAt(close + 1) != 58) return null;
    const port = parseNumber(text, close + 2, length, 10, 5);
    return port < 0 || port > 65535 ? null : new SocketAddress(ip, <i32>port);
  }
  const firstColon = text.indexOf(":");
  if (firstColon < 0) {
    const ip = parseIpRange(text, 0, length);
    return ip == null ? null : new SocketAddress(ip, -1);
  }
  if (text.indexOf(":", firstColon + 1) >= 0) {
    const ip = parseV6(text, 0, length);
    return ip == null ? null : new SocketAddress(ip, -1);
  }
  const v4 = parseV4(text, 0, firstColon);
  const port = parseNumber(text, firstColon + 1, length, 10, 5);
  if (v4 < 0 || port < 0 || port > 65535) return null;
  return new SocketAddress(fromV4(v4), <i32>port);
}

/** A network: address and prefix length counted in the 128-bit space. */
export class Cidr {
  constructor(public readonly ip: Ip, public readonly prefix: i32) {}

  contains(ip: Ip): bool {
    return maskedEqual(this.ip.hi, ip.hi, this.prefix) && maskedEqual(this.ip.lo, ip.lo, this.prefix - 64);
  }
}

function maskedEqual(a: u64, b: u64, bits: i32): bool {
  if (bits <= 0) return true;
  if (bits >= 64) return a == b;
  const shift = <u64>(64 - bits);
  return (a >>> shift) == (b >>> shift);
}

/** `10.0.0.0/8`, `2001:db8::/32`, or a single address (full-length prefix); null when malformed. */
export function parseCidr(text: string): Cidr | null {
  const slash = text.indexOf("/");
  const end = slash < 0 ? text.length : slash;
  const ip = parseIpRange(text, 0, end);
  if (ip == null) return null;
  const isV4Text = text.indexOf(":") < 0;
  const maxPrefix = isV4Text ? 32 : 128;
  let prefix: i64 = maxPrefix;
  if (slash >= 0) {
    prefix = parseNumber(text, slash + 1, text.length, 10, 3);
    if (prefix < 0 || prefix > maxPrefix) return null;
  }
  return new Cidr(ip, <i32>prefix + (isV4Text ? 96 : 0));
}
