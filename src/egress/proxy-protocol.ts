// The PROXY protocol, versions 1 (text) and 2 (binary), per haproxy's proxy-protocol.txt.
// Hand-written: the npm packages for it are unmaintained or only decode one version, and strict
// decoding with byte-exact errors is the security boundary of the egress router.
import { isIPv4, isIPv6 } from "node:net";
import type { Endpoint } from "../host/properties.js";

export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Buffer.from("PROXY ");
/** The longest v1 header the specification allows, CRLF included. */
export const V1_MAX_LENGTH = 107;
/** Headers larger than this are refused before they are buffered further. */
export const V2_MAX_LENGTH = 16 + 4096;

/** TLV types (proxy-protocol.txt §2.2); 0xE0-0xEF are for applications. */
export const TLV = {
  ALPN: 0x01,
  AUTHORITY: 0x02,
  /** Wasmerang's own: the name of the policy rule that routed the connection. */
  WASMERANG_RULE: 0xe0,
} as const;

export interface Tlv {
  type: number;
  value: Buffer;
}

export interface ProxyHeader {
  version: 1 | 2;
  /** LOCAL (v2) or UNKNOWN (v1): the connection carries no addresses (health checks). */
  local: boolean;
  source?: Endpoint;
  destination?: Endpoint;
  tlvs: Tlv[];
}

export type DecodeResult =
  | { kind: "incomplete" }
  | { kind: "error"; reason: string }
  | { kind: "header"; header: ProxyHeader; length: number };

export class ProxyProtocolError extends Error {}

function incompletePrefix(data: Buffer, prefix: Buffer): boolean {
  return data.length < prefix.length && prefix.subarray(0, data.length).equals(data);
}

/** Whether `data` begins like a v1 or v2 header (as far as it goes). */
export function startsLikeProxyHeader(data: Buffer): boolean {
  const starts = (prefix: Buffer) => prefix.subarray(0, Math.min(prefix.length, data.length)).equals(data.subarray(0, prefix.length));
  return data.length > 0 && (starts(V2_SIGNATURE) || starts(V1_PREFIX));
}

/**
 * Decodes a header at the start of `data`; "incomplete" means more bytes are needed. Never throws:
 * whatever a peer sends ends as a result, so that one connection's bytes cannot end the process.
 */
export function decodeProxyHeader(data: Buffer): DecodeResult {
  try {
    return decode(data);
  } catch (error) {
    return { kind: "error", reason: `byte 0: header could not be decoded (${(error as Error).message})` };
  }
}

function decode(data: Buffer): DecodeResult {
  if (data.length === 0 || incompletePrefix(data, V2_SIGNATURE) || incompletePrefix(data, V1_PREFIX)) return { kind: "incomplete" };
  if (!startsLikeProxyHeader(data)) return { kind: "error", reason: `byte 0: not a PROXY protocol header (starts 0x${data.subarray(0, 8).toString("hex")})` };
  if (data.subarray(0, V2_SIGNATURE.length).equals(V2_SIGNATURE)) return decodeV2(data);
  return decodeV1(data);
}

const PORT = /^(0|[1-9]\d{0,4})$/;

function decodeV1(data: Buffer): DecodeResult {
  const end = data.indexOf("\r\n");
  if (end < 0) {
    if (data.length >= V1_MAX_LENGTH) return { kind: "error", reason: `byte ${V1_MAX_LENGTH}: v1 header longer than ${V1_MAX_LENGTH} bytes without CRLF` };
    const bad = data.subarray(0, data.length).findIndex((b) => b < 0x20 && b !== 0x0d);
    if (bad >= 0) return { kind: "error", reason: `byte ${bad}: control character 0x${data[bad]!.toString(16)} in v1 header` };
    return { kind: "incomplete" };
  }
  if (end + 2 > V1_MAX_LENGTH) return { kind: "error", reason: `byte ${V1_MAX_LENGTH}: v1 header longer than ${V1_MAX_LENGTH} bytes` };
  const line = data.toString("latin1", 0, end);
  const parts = line.split(" ");
  if (parts[1] === "UNKNOWN") return { kind: "header", header: { version: 1, local: true, tlvs: [] }, length: end + 2 };
  if (parts.length !== 6) return { kind: "error", reason: `byte ${V1_PREFIX.length}: v1 header needs 6 fields, got ${parts.length}: '${line}'` };
  const [, family, sourceIp, destinationIp, sourcePort, destinationPort] = parts as [string, string, string, string, string, string];
  const isFamily = family === "TCP4" ? isIPv4 : family === "TCP6" ? isIPv6 : undefined;
  const at = (index: number) => parts.slice(0, index).join(" ").length + 1;
  if (isFamily === undefined) return { kind: "error", reason: `byte ${at(1)}: unknown v1 family '${family}'` };
  for (const [index, role, address] of [[2, "source", sourceIp], [3, "destination", destinationIp]] as const) {
    // Node's isIPv6 accepts a zone id (`fe80::1%lo`); the protocol carries 16 bytes and no zone, and
    // HAProxy's inet_pton refuses one.
    const zone = address.indexOf("%");
    if (zone >= 0) return { kind: "error", reason: `byte ${at(index) + zone}: zone id in ${family} ${role} address '${address}'` };
    if (!isFamily(address)) return { kind: "error", reason: `byte ${at(index)}: bad ${family} ${role} address '${address}'` };
  }
  for (const [index, port] of [[4, sourcePort], [5, destinationPort]] as const) {
    if (!PORT.test(port) || Number(port) > 65535) return { kind: "error", reason: `byte ${at(index)}: bad port '${port}'` };
  }
  const canonical = (address: string) => (family === "TCP6" ? ipv6Text(ipv6Bytes(address)) : address);
  return {
    kind: "header",
    header: {
      version: 1,
      local: false,
      source: { address: canonical(sourceIp), port: Number(sourcePort) },
      destination: { address: canonical(destinationIp), port: Number(destinationPort) },
      tlvs: [],
    },
    length: end + 2,
  };
}

// IPv6 text and bytes go through WHATWG URL parsing, not ipaddr.js: ipaddr.js 2.x reads
// `::0.0.0.0` (an embedded IPv4 form) as `::ffff:0:0`, which fast-check found in the round trip.
function ipv6Text(bytes: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  // Canonical form (compressed), so that allowlists and logs compare equal to Node's own.
  return new URL(`http://[${groups.join(":")}]`).hostname.slice(1, -1);
}

function decodeV2(data: Buffer): DecodeResult {
  if (data.length < 16) return { kind: "incomplete" };
  const versionCommand = data[12]!;
  if (versionCommand >> 4 !== 2) return { kind: "error", reason: `byte 12: version ${versionCommand >> 4}, expected 2` };
  const command = versionCommand & 0x0f;
  if (command > 1) return { kind: "error", reason: `byte 12: unknown command ${command} (0 LOCAL, 1 PROXY)` };
  const familyProtocol = data[13]!;
  const length = data.readUInt16BE(14);
  if (16 + length > V2_MAX_LENGTH) return { kind: "error", reason: `byte 14: header length ${length} exceeds the ${V2_MAX_LENGTH - 16} allowed` };
  if (data.length < 16 + length) return { kind: "incomplete" };
  const body = data.subarray(16, 16 + length);
  if (command === 0) return { kind: "header", header: { version: 2, local: true, tlvs: [] }, length: 16 + length };
  let addressLength: number;
  let source: Endpoint;
  let destination: Endpoint;
  if (familyProtocol === 0x11) {
    addressLength = 12;
    if (length < addressLength) return { kind: "error", reason: `byte 14: length ${length} too short for TCP over IPv4 (12)` };
    source = { address: [...body.subarray(0, 4)].join("."), port: body.readUInt16BE(8) };
    destination = { address: [...body.subarray(4, 8)].join("."), port: body.readUInt16BE(10) };
  } else if (familyProtocol === 0x21) {
    addressLength = 36;
    if (length < addressLength) return { kind: "error", reason: `byte 14: length ${length} too short for TCP over IPv6 (36)` };
    source = { address: ipv6Text(body.subarray(0, 16)), port: body.readUInt16BE(32) };
    destination = { address: ipv6Text(body.subarray(16, 32)), port: body.readUInt16BE(34) };
  } else {
    return { kind: "error", reason: `byte 13: unsupported family/protocol 0x${familyProtocol.toString(16).padStart(2, "0")} (TCP4 0x11 and TCP6 0x21 only)` };
  }
  const tlvs: Tlv[] = [];
  let at = addressLength;
  while (at < body.length) {
    if (at + 3 > body.length) return { kind: "error", reason: `byte ${16 + at}: truncated TLV header` };
    const type = body[at]!;
    const size = body.readUInt16BE(at + 1);
    if (at + 3 + size > body.length) return { kind: "error", reason: `byte ${16 + at + 1}: TLV 0x${type.toString(16)} of ${size} bytes overruns the header` };
    tlvs.push({ type, value: Buffer.from(body.subarray(at + 3, at + 3 + size)) });
    at += 3 + size;
  }
  return { kind: "header", header: { version: 2, local: false, source, destination, tlvs }, length: 16 + length };
}

function ipv6Bytes(address: string): Buffer {
  const url = new URL(`http://[${address}]`).hostname.slice(1, -1);
  const [head = "", tail = ""] = url.split("::");
  const headGroups = head === "" ? [] : head.split(":");
  const tailGroups = url.includes("::") ? (tail === "" ? [] : tail.split(":")) : [];
  const groups = url.includes("::") ? [...headGroups, ...Array(8 - headGroups.length - tailGroups.length).fill("0"), ...tailGroups] : headGroups;
  const out = Buffer.alloc(16);
  groups.forEach((group, i) => out.writeUInt16BE(parseInt(group, 16), i * 2));
  return out;
}

/** The address as the header carries it: IPv4-mapped as IPv4, without a zone id. */
function headerAddress(address: string): string {
  const zone = address.indexOf("%");
  const bare = zone < 0 ? address : address.slice(0, zone);
  const match = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare);
  return match ? match[1]! : bare;
}

/**
 * Encodes a PROXY header for a TCP connection. IPv4-mapped IPv6 addresses are sent as IPv4; a
 * mix of IPv4 and IPv6 is sent as IPv6, as Envoy's upstream proxy protocol socket does. A zone id
 * (a link-local peer's `%eth0`) is dropped: the header has no field for it.
 */
export function encodeProxyHeader(version: 1 | 2, source: Endpoint, destination: Endpoint, tlvs: Tlv[] = []): Buffer {
  const sourceAddress = headerAddress(source.address);
  const destinationAddress = headerAddress(destination.address);
  const v4 = isIPv4(sourceAddress) && isIPv4(destinationAddress);
  if (version === 1) {
    if (tlvs.length > 0) throw new ProxyProtocolError("PROXY protocol v1 cannot carry TLVs");
    const toV6 = (a: string) => (isIPv4(a) ? `::ffff:${a}` : a);
    const [s, d] = v4 ? [sourceAddress, destinationAddress] : [toV6(sourceAddress), toV6(destinationAddress)];
    return Buffer.from(`PROXY ${v4 ? "TCP4" : "TCP6"} ${s} ${d} ${source.port} ${destination.port}\r\n`, "latin1");
  }
  const addresses = v4
    ? Buffer.concat([Buffer.from(sourceAddress.split(".").map(Number)), Buffer.from(destinationAddress.split(".").map(Number))])
    : Buffer.concat([ipv6Bytes(isIPv4(sourceAddress) ? `::ffff:${sourceAddress}` : sourceAddress),
      ipv6Bytes(isIPv4(destinationAddress) ? `::ffff:${destinationAddress}` : destinationAddress)]);
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(source.port, 0);
  ports.writeUInt16BE(destination.port, 2);
  const tlvBytes = tlvs.map(({ type, value }) => {
    if (value.length > 0xffff) throw new ProxyProtocolError(`TLV 0x${type.toString(16)} longer than 65535 bytes`);
    const header = Buffer.from([type, value.length >> 8, value.length & 0xff]);
    return Buffer.concat([header, value]);
  });
  const body = Buffer.concat([addresses, ports, ...tlvBytes]);
  if (16 + body.length > V2_MAX_LENGTH) throw new ProxyProtocolError(`PROXY v2 header of ${16 + body.length} bytes is too long`);
  const head = Buffer.alloc(16);
  V2_SIGNATURE.copy(head, 0);
  head[12] = 0x21;
  head[13] = v4 ? 0x11 : 0x21;
  head.writeUInt16BE(body.length, 14);
  return Buffer.concat([head, body]);
}
