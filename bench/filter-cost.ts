// Filter cost per connection in V8, next to a baseline module making the same host calls, and the
// filter's linear memory over many connections. Runs in-process through the harness.
import { readFileSync } from "node:fs";
import { FilterHarness } from "../src/host/harness.js";
import { buildThirdPartyModule } from "../test/fixtures/third-party-module.js";
import { connectMany, sourceAddresses } from "./connections.js";

export interface CostResult {
  name: string;
  nsPerConnection: number;
}

const FILTER = "dist/wasmerang.wasm";

async function measure(name: string, module: Uint8Array | string, configuration: string, connections: number): Promise<CostResult> {
  const harness = await FilterHarness.load({ module, configuration, logLevel: "warn" });
  const addresses = sourceAddresses(4096);
  const run = (count: number) => connectMany(harness, addresses, count, name);
  run(20_000);
  const started = process.hrtime.bigint();
  run(connections);
  const elapsed = Number(process.hrtime.bigint() - started);
  harness.close();
  return { name, nsPerConnection: elapsed / connections };
}

function cidrPolicy(rules: number): string {
  return JSON.stringify({
    log_level: "warn",
    rules: Array.from({ length: rules }, (_, i) => ({ match: { source_cidrs: [`172.${16 + (i >> 8)}.${i & 255}.0/24`] }, action: { cluster: `c${i}` } })),
    default: { cluster: "egress-router1" },
  });
}

/** The modules and policies compared; the first is the do-nothing baseline. */
export interface Variant {
  name: string;
  module: Uint8Array | string;
  configuration: string;
}

export async function variants(): Promise<Variant[]> {
  return [
    { name: "baseline (same host calls, no policy)", module: await buildThirdPartyModule("baseline"), configuration: "" },
    { name: "reference (standalone)", module: FILTER, configuration: "{\"log_level\":\"warn\"}" },
    { name: "1,000-rule CIDR policy", module: FILTER, configuration: cidrPolicy(1000) },
    { name: "hash over 3 clusters", module: FILTER, configuration: JSON.stringify({ log_level: "warn", default: { hash: ["a", "b", { cluster: "c", weight: 2 }] } }) },
  ];
}

export async function filterCosts(connections: number): Promise<CostResult[]> {
  const compared = await variants();
  const results: CostResult[] = [];
  // Alternate runs so that machine noise hits every variant alike; keep each one's best.
  for (let round = 0; round < 3; round++) {
    for (const variant of compared) {
      const run = await measure(variant.name, variant.module, variant.configuration, connections);
      const best = results.find((r) => r.name === run.name);
      if (best === undefined) results.push(run);
      else best.nsPerConnection = Math.min(best.nsPerConnection, run.nsPerConnection);
    }
  }
  return results;
}

export interface MemoryResult {
  moduleBytes: number;
  memoryAfter: Record<string, number>;
}

/** Linear memory after 10^4, 10^5 and 10^6 connections: it must stop growing after warm-up. */
export async function filterMemory(): Promise<MemoryResult> {
  const harness = await FilterHarness.load({ module: FILTER, configuration: "{\"log_level\":\"warn\"}", logLevel: "warn" });
  const addresses = sourceAddresses(65536);
  const memoryAfter: Record<string, number> = {};
  let done = 0;
  for (const target of [10_000, 100_000, 1_000_000]) {
    connectMany(harness, addresses, target - done, "memory");
    done = target;
    memoryAfter[String(target)] = harness.memoryBytes;
  }
  harness.close();
  return { moduleBytes: readFileSync(FILTER).length, memoryAfter };
}
