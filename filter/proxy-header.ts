// The PROXY protocol header the filter itself can put in front of the first upstream bytes
// (haproxy's proxy-protocol.txt), for upstreams whose Envoy cluster cannot be given the upstream
// proxy_protocol transport socket.
import { Address, formatIp } from "./policy/ip";
import { formatNumber } from "./sdk";

const SIGNATURE: u8[] = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];
const TLV_AUTHORITY: u8 = 0x02;
/** Wasmerang's own TLV type (application range 0xE0-0xEF): the matching rule's name. */
const TLV_RULE: u8 = 0xe0;

function v6Text(address: Address): string {
  return address.isV4 ? "::ffff:" + formatIp(address) : formatIp(address);
}

function v1(source: Address, destination: Address): ArrayBuffer {
  const v4 = source.isV4 && destination.isV4;
  const line = "PROXY " + (v4 ? "TCP4 " + formatIp(source) + " " + formatIp(destination)
    : "TCP6 " + v6Text(source) + " " + v6Text(destination))
    + " " + formatNumber(source.port) + " " + formatNumber(destination.port) + "\r\n";
  return String.UTF8.encode(line);
}

function storeU16(at: usize, value: u32): void {
  store<u8>(at, <u8>(value >> 8));
  store<u8>(at + 1, <u8>value);
}

function storeIp(at: usize, ip: Address, v4: bool): usize {
  if (v4) {
    store<u32>(at, bswap<u32>(<u32>ip.lo));
    return at + 4;
  }
  store<u64>(at, bswap<u64>(ip.hi));
  store<u64>(at + 8, bswap<u64>(ip.lo));
  return at + 16;
}

function storeTlv(at: usize, type: u8, value: ArrayBuffer): usize {
  store<u8>(at, type);
  storeU16(at + 1, value.byteLength);
  memory.copy(at + 3, changetype<usize>(value), value.byteLength);
  return at + 3 + value.byteLength;
}

function v2(source: Address, destination: Address, serverName: string, rule: string): ArrayBuffer {
  const v4 = source.isV4 && destination.isV4;
  const authority = String.UTF8.encode(serverName);
  const ruleName = String.UTF8.encode(rule);
  let length = v4 ? 12 : 36;
  if (authority.byteLength > 0) length += 3 + authority.byteLength;
  if (ruleName.byteLength > 0) length += 3 + ruleName.byteLength;
  const out = new ArrayBuffer(16 + length);
  let at = changetype<usize>(out);
  for (let i = 0; i < SIGNATURE.length; i++) store<u8>(at + i, SIGNATURE[i]);
  store<u8>(at + 12, 0x21);
  store<u8>(at + 13, v4 ? 0x11 : 0x21);
  storeU16(at + 14, length);
  at = storeIp(at + 16, source, v4);
  at = storeIp(at, destination, v4);
  storeU16(at, source.port);
  storeU16(at + 2, destination.port);
  at += 4;
  if (authority.byteLength > 0) at = storeTlv(at, TLV_AUTHORITY, authority);
  if (ruleName.byteLength > 0) storeTlv(at, TLV_RULE, ruleName);
  return out;
}

/** The header; `serverName` and `rule` become v2 TLVs when non-empty. */
export function proxyHeader(version: i32, source: Address, destination: Address, serverName: string, rule: string): ArrayBuffer {
  return version == 1 ? v1(source, destination) : v2(source, destination, serverName, rule);
}
