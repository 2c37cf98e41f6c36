// Property-based tests: the filter's decisions agree with independent checks (ipaddr.js for CIDR
// membership), hashing is stable, and nothing a host or a configuration can hand the filter traps it.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import ipaddr from "ipaddr.js";
import { loadFilter, routeOnce } from "./helpers.js";

const ipv4 = fc.ipV4();
const ipv6 = fc.ipV6().filter((text) => !ipaddr.IPv6.parse(text).isIPv4MappedAddress());
const v4Cidr = fc.tuple(ipv4, fc.integer({ min: 0, max: 32 })).map(([ip, bits]) => `${ip}/${bits}`);
const v6Cidr = fc.tuple(ipv6, fc.integer({ min: 0, max: 128 })).map(([ip, bits]) => `${ip}/${bits}`);
const source = fc.oneof(
  ipv4.map((ip) => ({ ip, text: `${ip}:1000` })),
  ipv4.map((ip) => ({ ip, text: `[::ffff:${ip}]:1000` })),
  ipv6.map((ip) => ({ ip, text: `[${ip}]:1000` })),
);

/** Independent membership: IPv4 CIDRs see IPv4 and IPv4-mapped sources; IPv6 CIDRs see the IPv6 form. */
function contains(cidr: string, ip: string): boolean {
  const [network, bits] = ipaddr.parseCIDR(cidr);
  const address = ipaddr.parse(ip);
  if (network.kind() === "ipv4") return address.kind() === "ipv4" && address.match(network, bits);
  const asV6 = address.kind() === "ipv4" ? (address as ipaddr.IPv4).toIPv4MappedAddress() : address;
  return asV6.match(network, bits);
}

describe("decisions agree with independent checks", () => {
  it("first rule whose source CIDR contains the source wins", async () => {
    await fc.assert(fc.asyncProperty(
      fc.array(fc.oneof(v4Cidr, v6Cidr), { minLength: 1, maxLength: 12 }),
      fc.array(source, { minLength: 1, maxLength: 40 }),
      async (cidrs, sources) => {
        const filter = await loadFilter({
          rules: cidrs.map((cidr, i) => ({ match: { source_cidrs: [cidr] }, action: { cluster: `rule-${i}` } })),
          default: { cluster: "none" },
          log_level: "error",
        });
        for (const { ip, text } of sources) {
          const expected = cidrs.findIndex((cidr) => contains(cidr, ip));
          assert.equal(routeOnce(filter, text), expected < 0 ? "none" : `rule-${expected}`, `${text} against ${cidrs.join(", ")}`);
        }
      },
    ), { numRuns: 150 });
  });

  it("the same source always hashes to the same cluster, in a fresh VM too", async () => {
    const configuration = { default: { hash: ["a", "b", { cluster: "c", weight: 2 }] }, log_level: "error" };
    const first = await loadFilter(configuration);
    const second = await loadFilter(configuration);
    fc.assert(fc.property(source, fc.integer({ min: 1, max: 65535 }), ({ text }, port) => {
      const cluster = routeOnce(first, text);
      assert.ok(cluster === "a" || cluster === "b" || cluster === "c");
      assert.equal(routeOnce(second, text.replace(/:1000$/, `:${port}`)), cluster);
    }), { numRuns: 3000 });
  });

  it("reference parity follows the last octet for every IPv4 source", async () => {
    const filter = await loadFilter({ log_level: "error" });
    fc.assert(fc.property(ipv4, (ip) => {
      const last = Number(ip.split(".")[3]);
      assert.equal(routeOnce(filter, `${ip}:5`), last % 2 === 0 ? "egress-router1" : "egress-router2");
    }), { numRuns: 3000 });
  });
});

describe("nothing traps the filter", () => {
  const bytes = fc.oneof(
    fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
    fc.string({ unit: "binary", maxLength: 80 }).map((s) => Buffer.from(s)),
    fc.constantFrom("", "[", "[]:1", "[::1", "1.2.3.4:", ":80", "unix:/tmp/sock", "::ffff:1.2.3.4", "[fe80::1%eth0]:1")
      .map((s) => Buffer.from(s)),
    fc.integer({ min: 1, max: 100_000 }).map((n) => Buffer.alloc(n, 0x31)),
  );

  it("random property values: no trap, the connection goes on", async () => {
    const filter = await loadFilter({
      mode: "istio",
      rules: [{ match: { server_names: ["*.x"], destination_ports: ["1-100"] }, action: { cluster: "p{dst_port}" } }],
      log_level: "error",
    });
    fc.assert(fc.property(bytes, bytes, bytes, (sourceValue, destinationValue, sni) => {
      const connection = filter.connect({
        source: "127.0.0.1:1",
        properties: { "source.address": sourceValue, "destination.address": destinationValue, "connection.requested_server_name": sni },
      });
      assert.equal(connection.status, "continue");
      assert.equal(connection.closedReason, undefined);
      assert.deepEqual(connection.downstream(sourceValue).data, sourceValue);
      connection.close();
    }), { numRuns: 3000 });
    assert.equal(filter.failures.traps, 0);
  });

  it("random configurations either configure or fail with a named reason, never a trap", async () => {
    await fc.assert(fc.asyncProperty(
      fc.oneof(fc.json({ maxDepth: 4 }), fc.string({ maxLength: 60 }), fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify({ rules: [v] }))),
      async (configuration) => {
        try {
          await loadFilter(configuration, { logLevel: "critical" });
        } catch (error) {
          const message = (error as Error).message;
          assert.doesNotMatch(message, /trapped|abort/, message);
          assert.match(message, /invalid plugin configuration: \S+/);
        }
      },
    ), { numRuns: 400 });
  });
});
