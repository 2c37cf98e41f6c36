// The SDK example: a filter of a user's own, built with the same toolchain, routes as written.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { it } from "node:test";
import { FilterHarness } from "../src/host/harness.js";
import { CUSTOM_FILTER_WASM } from "./helpers.js";

it("examples/custom-filter routes port 443 to tls-egress and everything else to plain-egress", async () => {
  const filter = await FilterHarness.load({ module: CUSTOM_FILTER_WASM });
  const route = (destination: string) => {
    const connection = filter.connect({ source: "10.0.0.1:5000", destination });
    const cluster = connection.cluster;
    connection.close();
    return cluster;
  };
  assert.equal(route("93.184.216.34:443"), "tls-egress");
  assert.equal(route("93.184.216.34:80"), "plain-egress");
  assert.equal(route("[2001:db8::1]:443"), "tls-egress");
  const imports = WebAssembly.Module.imports(new WebAssembly.Module(readFileSync(CUSTOM_FILTER_WASM))).map((i) => i.module);
  assert.deepEqual([...new Set(imports)], ["env"]);
});
