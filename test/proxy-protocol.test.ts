// The PROXY protocol codec: round trips, strict errors naming the byte at fault, and no input
// that makes the decoder throw.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { decodeProxyHeader, encodeProxyHeader, TLV, V2_SIGNATURE } from "../src/egress/proxy-protocol.js";

const v4 = { source: { address: "192.0.2.10", port: 40000 }, destination: { address: "198.51.100.7", port: 443 } };
const v6 = { source: { address: "2001:db8::10", port: 40000 }, destination: { address: "2001:db8:1::7", port: 80 } };

function decodeOk(data: Buffer) {
  const result = decodeProxyHeader(data);
  assert.equal(result.kind, "header", JSON.stringify(result));
  return result as Extract<typeof result, { kind: "header" }>;
}

function decodeError(data: Buffer): string {
  const result = decodeProxyHeader(data);
  assert.equal(result.kind, "error", JSON.stringify(result));
  return (result as { reason: string }).reason;
}

describe("PROXY protocol encoding", () => {
  it("v1 over IPv4 and IPv6 is the text the specification shows", () => {
    assert.equal(encodeProxyHeader(1, v4.source, v4.destination).toString(), "PROXY TCP4 192.0.2.10 198.51.100.7 40000 443\r\n");
    assert.equal(encodeProxyHeader(1, v6.source, v6.destination).toString(), "PROXY TCP6 2001:db8::10 2001:db8:1::7 40000 80\r\n");
  });

  it("IPv4-mapped addresses go out as IPv4", () => {
    assert.equal(encodeProxyHeader(1, { address: "::ffff:10.0.0.1", port: 1 }, { address: "::ffff:10.0.0.2", port: 2 }).toString(),
      "PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\n");
  });

  it("v2 round-trips addresses and TLVs", () => {
    const tlvs = [{ type: TLV.AUTHORITY, value: Buffer.from("api.example.com") }, { type: TLV.WASMERANG_RULE, value: Buffer.from("corp-tls") }];
    for (const { source, destination } of [v4, v6]) {
      const encoded = encodeProxyHeader(2, source, destination, tlvs);
      assert.deepEqual(encoded.subarray(0, 12), V2_SIGNATURE);
      const { header, length } = decodeOk(Buffer.concat([encoded, Buffer.from("payload")]));
      assert.equal(length, encoded.length);
      assert.deepEqual(header.source, source);
      assert.deepEqual(header.destination, destination);
      assert.deepEqual(header.tlvs, tlvs);
    }
  });

  it("round-trips any address pair, both versions (property)", () => {
    const endpoint = fc.record({ address: fc.oneof(fc.ipV4(), fc.ipV6()), port: fc.integer({ min: 0, max: 65535 }) });
    fc.assert(fc.property(endpoint, endpoint, fc.constantFrom<1 | 2>(1, 2), (source, destination, version) => {
      const { header } = decodeOk(encodeProxyHeader(version, source, destination));
      const canonical = (a: string) => new URL(`http://[${a.includes(":") ? a : `::ffff:${a}`}]`).hostname;
      const mixed = source.address.includes(":") !== destination.address.includes(":");
      if (!mixed) {
        assert.equal(canonical(header.source!.address), canonical(source.address));
        assert.equal(canonical(header.destination!.address), canonical(destination.address));
      }
      assert.equal(header.source!.port, source.port);
      assert.equal(header.destination!.port, destination.port);
    }), { numRuns: 2000 });
  });
});

describe("PROXY protocol decoding is strict and names the byte", () => {
  it("waits for more bytes on a partial header", () => {
    const full = encodeProxyHeader(2, v4.source, v4.destination);
    for (const length of [1, 5, 12, 15, full.length - 1]) assert.equal(decodeProxyHeader(full.subarray(0, length)).kind, "incomplete");
    assert.equal(decodeProxyHeader(Buffer.from("PROXY TCP4 1.2.3.4")).kind, "incomplete");
  });

  const v2 = (mutate: (b: Buffer) => void) => {
    const header = encodeProxyHeader(2, v4.source, v4.destination);
    mutate(header);
    return header;
  };
  const cases: [string, Buffer, RegExp][] = [
    ["a bad signature", Buffer.from("GET / HTTP/1.1\r\n"), /^byte 0: not a PROXY protocol header/],
    ["a wrong v2 version", v2((b) => { b[12] = 0x31; }), /^byte 12: version 3, expected 2/],
    ["an unknown v2 command", v2((b) => { b[12] = 0x2f; }), /^byte 12: unknown command 15/],
    ["an unknown family", v2((b) => { b[13] = 0x31; }), /^byte 13: unsupported family\/protocol 0x31/],
    ["UDP", v2((b) => { b[13] = 0x12; }), /^byte 13: unsupported family\/protocol 0x12/],
    ["a length too short for the family", v2((b) => { b.writeUInt16BE(4, 14); }), /^byte 14: length 4 too short for TCP over IPv4/],
    ["an oversized length", Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, 0x11, 0xff, 0xff])]), /^byte 14: header length 65535 exceeds/],
    ["a truncated TLV", Buffer.concat([v2((b) => { b.writeUInt16BE(14, 14); }), Buffer.from([0x01, 0x00])]), /^byte 28: truncated TLV header/],
    ["a v1 line too long", Buffer.from(`PROXY TCP4 ${"1".repeat(120)}`), /^byte 107: v1 header longer than 107 bytes/],
    ["a v1 unknown family", Buffer.from("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"), /^byte 6: unknown v1 family 'TCP5'/],
    ["a v1 bad address", Buffer.from("PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\n"), /^byte 11: bad TCP4 source address '1\.2\.3\.400'/],
    ["a v1 IPv6 in TCP4", Buffer.from("PROXY TCP4 1.2.3.4 ::1 1 2\r\n"), /^byte 19: bad TCP4 destination address '::1'/],
    ["a v1 bad port", Buffer.from("PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n"), /bad port '65536'/],
    ["a v1 port with a leading zero", Buffer.from("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n"), /bad port '01'/],
    ["v1 missing fields", Buffer.from("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"), /needs 6 fields, got 5/],
    ["a control character", Buffer.from("PROXY TCP4 1.2.3.4\x00"), /^byte 18: control character 0x0/],
  ];
  for (const [what, data, message] of cases) it(`refuses ${what}`, () => assert.match(decodeError(data), message));

  it("never throws on random bytes (property)", () => {
    fc.assert(fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }),
      fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.concat([V2_SIGNATURE, Buffer.from(a)])),
      fc.string({ maxLength: 120 }).map((s) => Buffer.from(`PROXY ${s}`))), (bytes) => {
      const result = decodeProxyHeader(Buffer.from(bytes));
      assert.ok(["incomplete", "error", "header"].includes(result.kind));
    }), { numRuns: 20000 });
  });
});
