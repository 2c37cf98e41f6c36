// The runner's read buffer holds exactly the bytes appended, in order, whatever the chunking.
import assert from "node:assert/strict";
import { it } from "node:test";
import fc from "fast-check";
import { ReadBuffer } from "../src/runner/read-buffer.js";

it("appends, edits and hand-overs keep exactly the bytes given, and a taken buffer is never written again", () => {
  const step = fc.oneof(
    fc.uint8Array({ maxLength: 300 }).map((bytes) => ({ kind: "append" as const, bytes: Buffer.from(bytes) })),
    fc.uint8Array({ maxLength: 50 }).map((bytes) => ({ kind: "set" as const, bytes: Buffer.from(bytes) })),
    fc.constant({ kind: "take" as const, bytes: Buffer.alloc(0) }),
  );
  fc.assert(fc.property(fc.array(step, { maxLength: 60 }), (steps) => {
    const buffer = new ReadBuffer();
    let expected = Buffer.alloc(0);
    const taken: [Buffer, Buffer][] = [];
    for (const { kind, bytes } of steps) {
      if (kind === "append") {
        buffer.append(bytes);
        expected = Buffer.concat([expected, bytes]);
      } else if (kind === "set") {
        buffer.set(bytes);
        expected = Buffer.from(bytes);
      } else {
        taken.push([buffer.take(), expected]);
        expected = Buffer.alloc(0);
      }
      assert.deepEqual(buffer.bytes, expected);
      assert.equal(buffer.length, expected.length);
    }
    for (const [view, copy] of taken) assert.deepEqual(view, copy);
  }), { numRuns: 2000 });
});
