// Filter cost per connection in V8, next to a baseline module making the same host calls, and the
// filter's linear memory over many connections. Runs in-process through the harness.
import { readFileSync } from "node:fs";
import { FilterHarness } from "../src/host/harness.js";
import { buildThirdPartyModule } from "../test/fixtures/third-party-module.js";
import { connectMany, sourceAddresses } from "./connections.js";
import { reputationListPolicy, tenRulePolicy, tenThousandRulePolicy } from "./policies.js";

export interface CostResult {
  name: string;
  nsPerConnection: number;
}

const FILTER = "dist/wasmerang.wasm";

async function measure(name: string, module: Uint8Array | string, configuration: string, connections: number): Promise<CostResult> {
  const harness = await FilterHarness.load({ module, configuration, logLevel: "info" });
  const addresses = sourceAddresses(4096);
  const run = (count: number) => connectMany(harness, addresses, count, name);
  run(20_000);
  const started = process.hrtime.bigint();
  run(connections);
  const elapsed = Number(process.hrtime.bigint() - started);
  harness.close();
  return { name, nsPerConnection: elapsed / connections };
}

/** The modules and policies compared; the first is the do-nothing baseline. */
export interface Variant {
  name: string;
  module: Uint8Array | string;
  configuration: string;
}

/** The host's log level is info, Envoy's default, so each policy's default configuration is measured. */
export async function variants(): Promise<Variant[]> {
  return [
    { name: "baseline (same host calls, no policy)", module: await buildThirdPartyModule("baseline"), configuration: "" },
    { name: "reference (standalone)", module: FILTER, configuration: "" },
    { name: "10-rule policy", module: FILTER, configuration: JSON.stringify(tenRulePolicy()) },
    { name: "10-rule policy, record_decision", module: FILTER, configuration: JSON.stringify({ ...tenRulePolicy(), record_decision: true }) },
    { name: "hash over 3 clusters", module: FILTER, configuration: JSON.stringify({ default: { hash: ["a", "b", { cluster: "c", weight: 2 }] } }) },
    { name: "10,000-rule policy", module: FILTER, configuration: JSON.stringify(tenThousandRulePolicy()) },
    { name: "100,000-CIDR reputation list", module: FILTER, configuration: JSON.stringify(reputationListPolicy()) },
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
  /** Per large policy: the best of 3 configure times, and linear memory once configured. */
  configure: { name: string; milliseconds: number; memoryBytes: number }[];
}

async function configureCost(name: string, configuration: string): Promise<MemoryResult["configure"][number]> {
  let milliseconds = Infinity;
  let memoryBytes = 0;
  for (let round = 0; round < 3; round++) {
    const started = performance.now();
    const harness = await FilterHarness.load({ module: FILTER, configuration, logLevel: "info" });
    milliseconds = Math.min(milliseconds, performance.now() - started);
    memoryBytes = harness.memoryBytes;
    harness.close();
  }
  return { name, milliseconds, memoryBytes };
}

/** Linear memory after 10^4, 10^5 and 10^6 connections: it must stop growing after warm-up. */
export async function filterMemory(): Promise<MemoryResult> {
  const harness = await FilterHarness.load({ module: FILTER, configuration: "", logLevel: "info" });
  const addresses = sourceAddresses(65536);
  const memoryAfter: Record<string, number> = {};
  let done = 0;
  for (const target of [10_000, 100_000, 1_000_000]) {
    connectMany(harness, addresses, target - done, "memory");
    done = target;
    memoryAfter[String(target)] = harness.memoryBytes;
  }
  harness.close();
  const configure = [];
  for (const variant of (await variants()).slice(2)) {
    if (variant.name !== "hash over 3 clusters") configure.push(await configureCost(variant.name, variant.configuration));
  }
  return { moduleBytes: readFileSync(FILTER).length, memoryAfter, configure };
}
