// The ABI's serialized header map: u32 count, then a (u32 name size, u32 value size) per pair,
// then each name and value followed by a NUL byte. All integers little-endian.
import type { HeaderPairs } from "./context.js";

export function encodeHeaderPairs(pairs: HeaderPairs): Buffer {
  const encoded = pairs.map(([name, value]) => [Buffer.from(name), Buffer.from(value)] as const);
  let size = 4 + encoded.length * 8;
  for (const [name, value] of encoded) size += name.length + value.length + 2;
  const out = Buffer.alloc(size);
  out.writeUInt32LE(encoded.length, 0);
  let at = 4 + encoded.length * 8;
  encoded.forEach(([name, value], i) => {
    out.writeUInt32LE(name.length, 4 + i * 8);
    out.writeUInt32LE(value.length, 8 + i * 8);
    at += name.copy(out, at) + 1;
    at += value.copy(out, at) + 1;
  });
  return out;
}

/** Decodes a serialized header map; throws with the offset at fault when it is malformed. */
export function decodeHeaderPairs(data: Buffer): HeaderPairs {
  if (data.length < 4) throw new RangeError(`header map: ${data.length} bytes, need at least 4 for the count`);
  const count = data.readUInt32LE(0);
  let at = 4 + count * 8;
  if (at > data.length) throw new RangeError(`header map: ${count} pairs announced, sizes table overruns ${data.length} bytes`);
  const pairs: HeaderPairs = [];
  for (let i = 0; i < count; i++) {
    const nameSize = data.readUInt32LE(4 + i * 8);
    const valueSize = data.readUInt32LE(8 + i * 8);
    if (at + nameSize + valueSize + 2 > data.length) throw new RangeError(`header map: pair ${i} overruns the data at offset ${at}`);
    const name = data.toString("utf8", at, at + nameSize);
    at += nameSize + 1;
    const value = data.toString("utf8", at, at + valueSize);
    at += valueSize + 1;
    pairs.push([name, value]);
  }
  return pairs;
}
