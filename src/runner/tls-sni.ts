// What Envoy's tls_inspector listener filter reads: the SNI in a TLS ClientHello, without
// consuming the bytes (they still go upstream untouched). Hand-written because no maintained
// package peeks at a ClientHello from a raw buffer; it reads only the first TLS record.

export type ClientHelloPeek = { kind: "incomplete" } | { kind: "not-tls" } | { kind: "tls"; serverName: string };

/** The longest first record we wait for before deciding (a TLS record is at most 16 KiB + 256). */
export const MAX_CLIENT_HELLO_BYTES = 16_640;

export function peekServerName(data: Buffer): ClientHelloPeek {
  if (data.length === 0) return { kind: "incomplete" };
  if (data[0] !== 0x16) return { kind: "not-tls" };
  if (data.length < 5) return { kind: "incomplete" };
  if (data[1] !== 0x03) return { kind: "not-tls" };
  const recordLength = data.readUInt16BE(3);
  if (data.length < 5 + recordLength) return data.length >= MAX_CLIENT_HELLO_BYTES ? { kind: "not-tls" } : { kind: "incomplete" };
  const hello = data.subarray(5, 5 + recordLength);
  if (hello[0] !== 0x01 || hello.length < 4) return { kind: "not-tls" };
  let at = 4 + 2 + 32;
  const skip = (lengthBytes: 1 | 2): boolean => {
    if (at + lengthBytes > hello.length) return false;
    at += lengthBytes + (lengthBytes === 1 ? hello[at]! : hello.readUInt16BE(at));
    return at <= hello.length;
  };
  if (!skip(1) || !skip(2) || !skip(1)) return { kind: "tls", serverName: "" };
  if (at + 2 > hello.length) return { kind: "tls", serverName: "" };
  const extensionsEnd = Math.min(hello.length, at + 2 + hello.readUInt16BE(at));
  at += 2;
  while (at + 4 <= extensionsEnd) {
    const type = hello.readUInt16BE(at);
    const length = hello.readUInt16BE(at + 2);
    const body = hello.subarray(at + 4, at + 4 + length);
    at += 4 + length;
    if (type !== 0 || body.length < 5) continue;
    const nameType = body[2];
    const nameLength = body.readUInt16BE(3);
    if (nameType === 0 && 5 + nameLength <= body.length) return { kind: "tls", serverName: body.toString("latin1", 5, 5 + nameLength).toLowerCase() };
  }
  return { kind: "tls", serverName: "" };
}
