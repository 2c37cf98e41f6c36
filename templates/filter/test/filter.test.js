// The filter in the in-process harness: no Envoy, no sockets.
import assert from "node:assert/strict";
import { test } from "node:test";
import { FilterHarness } from "wasmerang/harness";

test("an SNI under .internal goes to cluster internal, anything else to external, each counted", async () => {
  const filter = await FilterHarness.load({ module: "build/filter.wasm" });
  const connect = (serverName) => filter.connect({ source: "10.0.0.7:40000", destination: "10.0.0.2:443", serverName }).cluster;
  assert.equal(connect("db.internal"), "internal");
  assert.equal(connect("example.com"), "external");
  assert.equal(connect(undefined), "external");
  assert.equal(filter.metric("routes.internal"), 1);
  assert.equal(filter.metric("routes.external"), 2);
});
