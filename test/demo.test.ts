// `npm start` runs this demo; it must show every connection going where the policy says.
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { it } from "node:test";
import { runDemo } from "../src/demo.js";

it("the demo routes even sources via egress-router1, odd via egress-router2, rejects the blocked client", async () => {
  let output = "";
  const out = new Writable({ write(chunk: Buffer, _encoding, done) { output += chunk.toString(); done(); } }) as unknown as NodeJS.WriteStream;
  assert.equal(await runDemo({ keepRunning: false, out }), true, output);
  assert.match(output, /^127\.0\.0\.10 +even-sources +egress-router1 +egress-router1 +127\.0\.0\.100:10080 +yes +ok/m);
  assert.match(output, /^127\.0\.0\.11 +odd-sources +egress-router2 +egress-router2 +127\.0\.0\.100:10080 +yes +ok/m);
  assert.match(output, /^127\.0\.0\.66 +blocked-client +\(reject\) +- +- +- +ok/m);
  assert.match(output, /^127\.0\.0\.14 +partner-endpoint +egress-router2 +egress-router2 +127\.0\.0\.100:10080 +yes +ok/m);
  assert.match(output, /^127\.0\.0\.10 +GET \/hello +- +web-egress1 +ok/m);
  assert.match(output, /^127\.0\.0\.12 +GET \/hello +web-egress2 +web-egress1 +ok/m);
  assert.match(output, /^127\.0\.0\.13 +GET \/admin +- +403 +ok/m);
  assert.match(output, /wasmcustom\.wasmerang\.cluster\.egress-router1\.routed: 2/);
  assert.doesNotMatch(output, /\x1b\[/, "no colours when not on a terminal");
});
