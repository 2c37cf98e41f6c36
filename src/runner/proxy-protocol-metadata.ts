// The proxy_protocol listener filter's `rules`: each TLV of a listed type becomes a string in the
// connection's dynamic metadata, under `on_tlv_present.metadata_namespace` (default the filter's
// own, envoy.filters.listener.proxy_protocol) and `key`, as Envoy's
// source/extensions/filters/listener/proxy_protocol/proxy_protocol.cc parseTlvs writes it: the
// value's bytes with every byte that is not part of valid UTF-8 replaced by '!'
// (MessageUtil::sanitizeUtf8String), since a protobuf string must be UTF-8.
import type { Tlv } from "../egress/proxy-protocol.js";
import type { ProxyProtocolRule } from "../envoy/model.js";
import type { DynamicMetadata } from "../host/properties.js";

export const PROXY_PROTOCOL_NAMESPACE = "envoy.filters.listener.proxy_protocol";

/** The length of the valid UTF-8 sequence starting at `at`, or 0 (RFC 3629: no overlongs, surrogates or code points past U+10FFFF). */
function sequenceLength(bytes: Buffer, at: number): number {
  const first = bytes[at]!;
  if (first < 0x80) return 1;
  const [length, low, high] = first >= 0xc2 && first <= 0xdf ? [2, 0x80, 0xbf]
    : first === 0xe0 ? [3, 0xa0, 0xbf] : first === 0xed ? [3, 0x80, 0x9f] : first >= 0xe1 && first <= 0xef ? [3, 0x80, 0xbf]
    : first === 0xf0 ? [4, 0x90, 0xbf] : first === 0xf4 ? [4, 0x80, 0x8f] : first >= 0xf1 && first <= 0xf3 ? [4, 0x80, 0xbf] : [0, 0, 0];
  if (length === 0 || at + length > bytes.length) return 0;
  if (bytes[at + 1]! < low || bytes[at + 1]! > high) return 0;
  for (let i = 2; i < length; i++) if (bytes[at + i]! < 0x80 || bytes[at + i]! > 0xbf) return 0;
  return length;
}

/** Envoy's sanitizeUtf8String: valid sequences kept, each other byte '!'. */
export function sanitizeUtf8(bytes: Buffer): string {
  const out: Buffer[] = [];
  let at = 0;
  while (at < bytes.length) {
    const length = sequenceLength(bytes, at);
    out.push(length === 0 ? Buffer.from("!") : bytes.subarray(at, at + length));
    at += length === 0 ? 1 : length;
  }
  return Buffer.concat(out).toString("utf8");
}

/** Writes the TLVs the rules name into `metadata` (namespace → key → value). */
export function applyTlvRules(rules: readonly ProxyProtocolRule[], tlvs: readonly Tlv[], metadata: DynamicMetadata): void {
  for (const tlv of tlvs) {
    const rule = rules.find((candidate) => candidate.tlvType === tlv.type);
    if (rule === undefined) continue;
    const namespace = rule.namespace === "" ? PROXY_PROTOCOL_NAMESPACE : rule.namespace;
    let fields = metadata.get(namespace);
    if (fields === undefined) metadata.set(namespace, (fields = new Map()));
    fields.set(rule.key, sanitizeUtf8(tlv.value));
  }
}
