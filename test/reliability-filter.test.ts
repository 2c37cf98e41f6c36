// The filter under fuzzing and a long run: at least 100,000 generated cases, no trap, bounded
// memory, every configure failure named; a million connections with flat memory and exact counters.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { PluginConfigError } from "../src/host/plugin.js";
import { loadFilter } from "./helpers.js";

const MIB = 1024 * 1024;

describe("fuzzing (100,000+ cases)", () => {
  it("70,000 random property values and data chunks: no trap, nothing closed, memory bounded", async () => {
    const filter = await loadFilter({
      mode: "istio", log_level: "error",
      rules: [{ name: "r", match: { server_names: ["*.x"], destination_ports: ["1-100"], source_cidrs: ["10.0.0.0/8", "::/0"] }, action: { hash: ["a{dst_port}", "b"] } }],
    });
    const value = fc.oneof(
      fc.uint8Array({ maxLength: 48 }).map((a) => Buffer.from(a)),
      fc.string({ unit: "binary", maxLength: 64 }).map((s) => Buffer.from(s)),
      fc.oneof(fc.ipV4(), fc.ipV6(), fc.ipV4Extended()).map((ip) => Buffer.from(ip.includes(":") ? `[${ip}]:80` : `${ip}:80`)),
      fc.constantFrom("", "[", "[]:1", "[::1", "1.2.3.4:", ":80", "unix:/tmp/socket", "[fe80::1%eth0]:1", "1.2.3.4:65536", "\u00ff\u00fe").map((s) => Buffer.from(s, "latin1")),
      fc.integer({ min: 1, max: 20_000 }).map((n) => Buffer.alloc(n, 0x39)),
      fc.constant(null),
    );
    fc.assert(fc.property(value, value, value, fc.uint8Array({ maxLength: 256 }), (source, destination, sni, chunk) => {
      const connection = filter.connect({ source: "127.0.0.1:1", properties: {
        "source.address": source, "destination.address": destination, "connection.requested_server_name": sni,
      } });
      assert.equal(connection.closedReason, undefined);
      assert.deepEqual(connection.downstream(Buffer.from(chunk)).data, Buffer.from(chunk));
      connection.close();
    }), { numRuns: 70_000 });
    assert.equal(filter.failures.traps, 0);
    assert.ok(filter.memoryBytes <= 2 * MIB, `linear memory grew to ${filter.memoryBytes} bytes`);
  });

  it("30,000 random and adversarial configurations: configured or refused with a named field, never a trap", async () => {
    const filter = await loadFilter("", { logLevel: "critical" });
    const policyLike = fc.record({
      mode: fc.constantFrom("standalone", "istio", "x", 3),
      log_level: fc.constantFrom("info", "warn", "nope"),
      rules: fc.array(fc.record({
        name: fc.string({ maxLength: 8 }),
        match: fc.record({
          source_cidrs: fc.array(fc.oneof(fc.ipV4(), fc.ipV6(), fc.string({ maxLength: 20 })).map((ip) => `${ip}/${ip.length % 40}`), { maxLength: 3 }),
          source_parity: fc.constantFrom("even", "odd", "both"),
          destination_ports: fc.array(fc.oneof(fc.integer({ min: -5, max: 70_000 }), fc.string({ maxLength: 11 })), { maxLength: 3 }),
          server_names: fc.array(fc.string({ maxLength: 12 }), { maxLength: 3 }),
        }, { requiredKeys: [] }),
        action: fc.oneof(fc.record({ cluster: fc.string({ maxLength: 12 }) }), fc.record({ reject: fc.boolean() }),
          fc.record({ hash: fc.array(fc.oneof(fc.string({ maxLength: 6 }), fc.record({ cluster: fc.string({ maxLength: 6 }), weight: fc.integer({ min: -2, max: 20_000 }) })), { maxLength: 4 }) })),
      }, { requiredKeys: [] }), { maxLength: 4 }),
    }, { requiredKeys: [] });
    const configuration = fc.oneof(
      policyLike.map((p) => JSON.stringify(p)),
      fc.json({ maxDepth: 5 }),
      fc.string({ maxLength: 80 }),
      fc.string({ unit: "binary", maxLength: 80 }),
      fc.constantFrom("{", "{\"rules\":[", "{\"a\":\"\\u12\"}", "[".repeat(200), "{\"rules\": [".repeat(40)),
    );
    let accepted = 0;
    fc.assert(fc.property(configuration, (text) => {
      try {
        filter.checkConfiguration(text);
        accepted++;
      } catch (error) {
        assert.ok(error instanceof PluginConfigError, String(error));
        assert.doesNotMatch(error.message, /trapped|abort/);
        assert.match(error.message, /invalid plugin configuration: \S+/);
      }
    }), { numRuns: 30_000 });
    assert.ok(accepted > 0, "some generated configurations are valid");
    assert.equal(filter.failures.traps, 0);
    assert.ok(filter.memoryBytes <= 4 * MIB, `linear memory grew to ${filter.memoryBytes} bytes`);
  });
});

describe("long run", () => {
  it("1,000,000 connections: linear memory flat after warm-up, counters equal the connections", async () => {
    const filter = await loadFilter({ log_level: "warn" });
    const sources = Array.from({ length: 1024 }, (_, i) => `10.0.${i >> 8}.${i & 255}:1000`);
    let memoryAfterWarmUp = 0;
    for (let i = 0; i < 1_000_000; i++) {
      filter.connect({ source: sources[i & 1023]!, destination: "203.0.113.1:443" }).close();
      if (i === 20_000) memoryAfterWarmUp = filter.memoryBytes;
    }
    assert.equal(filter.memoryBytes, memoryAfterWarmUp);
    assert.equal(filter.metric("wasmerang.routed"), 1_000_000);
    assert.equal(filter.metric("wasmerang.cluster.egress-router1.routed")! + filter.metric("wasmerang.cluster.egress-router2.routed")!, 1_000_000);
  });
});
