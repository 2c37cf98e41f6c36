// A routed connection must allocate nothing in the filter, so that its collector never has work
// on the connection path. The release module cannot say when it allocates, so this test builds
// the filter's own sources unoptimized (every runtime function stays a function of its own),
// wraps the runtime's allocator (__new, __renew) and collector (__collect) so that each call
// first logs an empty line (critical for an allocation, error for a collection), and counts them.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { promisify } from "node:util";
import wabtFactory from "wabt";
import { FilterHarness } from "../src/host/harness.js";
import { REPO } from "./helpers.js";

const LOG = "$filter/sdk/imports/proxy_log";
const COUNTED: [name: string, params: string, level: number][] = [
  ["$~lib/rt/tcms/__new", "(param i32 i32) (result i32)", 5],
  ["$~lib/rt/tcms/__renew", "(param i32 i32) (result i32)", 5],
  ["$~lib/rt/tcms/__collect", "", 4],
];

/** Binaryen quotes names wabt's text reader refuses (`$"Map<String,u32>"`): make them plain identifiers. */
function plainNames(text: string): string {
  return text.replace(/\$"([^"]*)"/g, (_, name: string) => `$${name.replace(/[^\w!#$%&'*+\-./:<=>?@\\^`|~]/g, "_")}`);
}

/** Renames each counted function and puts a wrapper that logs, then calls it, in its place. */
function countRuntimeCalls(text: string): string {
  let out = plainNames(text);
  for (const [name, params, level] of COUNTED) {
    const definition = `(func ${name} `;
    assert.ok(out.includes(definition) || out.includes(`(func ${name}\n`), `${name} not found in the unoptimized build`);
    out = out.replace(new RegExp(`\\(func ${name.replace(/[$/~]/g, "\\$&")}(?=[ \\n])`), `(func ${name}/counted`);
    const forward = params === "" ? "" : "local.get 0 local.get 1";
    const wrapper = `(func ${name} ${params} i32.const ${level} i32.const 0 i32.const 0 call ${LOG} drop ${forward} call ${name}/counted)\n`;
    out = out.replace(/\n\)\s*$/, `\n${wrapper})\n`);
  }
  return out;
}

let module: Uint8Array;

async function load(configuration: object | string): Promise<FilterHarness> {
  return FilterHarness.load({ module, configuration: typeof configuration === "string" ? configuration : JSON.stringify(configuration), logLevel: "info" });
}

function counts(filter: FilterHarness): { allocations: number; collections: number } {
  const empty = filter.logs.filter((record) => record.message === "");
  return {
    allocations: empty.filter((record) => record.level === "critical").length,
    collections: empty.filter((record) => record.level === "error").length,
  };
}

/** Metadata and filter state as a PROXY v2 TLV rule and an earlier filter would leave them: a few kinds of connection. */
const TENANTS = ["blue", "green-long-tenant-name", "red"];

function connect(filter: FilterHarness, count: number, destination = "203.0.113.9:443"): void {
  for (let i = 0; i < count; i++) {
    const tenant = TENANTS[i % TENANTS.length]!;
    const connection = filter.connect({ source: `10.0.${(i >> 8) & 255}.${i & 255}:${1024 + (i & 4095)}`, destination,
      metadata: { "envoy.filters.listener.proxy_protocol": { tenant } }, filterState: { "example.zone": `zone-${i % 5}` } });
    assert.notEqual(connection.cluster, undefined);
    connection.close();
  }
}

describe("nothing is allocated per connection", () => {
  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), "wasmerang-allocation-"));
    const text = join(dir, "filter.wat");
    await promisify(execFile)(process.execPath, [join(REPO, "node_modules/assemblyscript/bin/asc.js"), "filter/wasmerang.ts",
      "--target", "release", "--optimizeLevel", "0", "--shrinkLevel", "0", "--debug", "--textFile", text], { cwd: REPO });
    const wabt = await wabtFactory();
    const parsed = wabt.parseWat("filter.wat", countRuntimeCalls(readFileSync(text, "utf8")), { bulk_memory: true, sign_extension: true, mutable_globals: true });
    try {
      module = parsed.toBinary({}).buffer;
    } finally {
      parsed.destroy();
    }
  });

  it("the counting sees allocations and collections where they happen: configuring", async () => {
    const filter = await load({ rules: [{ match: { source_cidrs: ["10.0.0.0/8"] }, action: { cluster: "a" } }] });
    const seen = counts(filter);
    assert.ok(seen.allocations > 50, `configuring a policy allocates (${seen.allocations} seen)`);
    assert.ok(seen.collections >= 1, "and collects after configuring");
  });

  const policies: [string, object | string][] = [
    ["the reference configuration", ""],
    ["Istio names", "istio"],
    ["CIDR rules, parity, ports and a hash", {
      rules: [
        { name: "office", match: { source_cidrs: ["172.16.0.0/12", "2001:db8::/32"] }, action: { cluster: "office" } },
        { name: "web", match: { destination_cidrs: ["203.0.113.0/24"], destination_ports: ["80-90", 443] }, action: { hash: ["w1", "w2", { cluster: "w3", weight: 2 }] } },
        { match: { source_parity: "odd" }, action: { cluster: "odd" } },
      ],
      default: { cluster: "egress-router1" },
    }],
    ["metadata and filter state matchers", {
      rules: [
        { match: { metadata: [{ namespace: "envoy.filters.listener.proxy_protocol", key: "tenant", values: ["blue", "red"] }] }, action: { cluster: "a" } },
        { match: { filter_state: [{ key: "example.zone", prefix: "zone-1" }] }, action: { cluster: "b" } },
        { match: { metadata: [{ namespace: "envoy.filters.listener.proxy_protocol", key: "tenant", exact: "green" }] }, action: { cluster: "c" } },
      ],
      default: { cluster: "d" },
    }],
  ];
  for (const [name, policy] of policies) {
    it(`${name}: 100,000 connections after warm-up, no allocation, no collection, memory flat`, async () => {
      const filter = await load(policy);
      connect(filter, 1_000);
      const before = counts(filter);
      const memory = filter.memoryBytes;
      connect(filter, 100_000);
      assert.deepEqual(counts(filter), before);
      assert.equal(filter.memoryBytes, memory);
    });
  }
});
