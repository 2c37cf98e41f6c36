// The filter compiles its policy into address indexes and checks only candidate rules. These
// properties hold it to the plain meaning of a policy: the first rule, in order, whose matchers
// all hold wins. The reference here scans rule by rule with independent address arithmetic
// (ipaddr.js), on random policies built from a small address space so that CIDRs nest, overlap
// and repeat, and rules compete.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import ipaddr from "ipaddr.js";
import { loadFilter } from "./helpers.js";

interface Match {
  source_cidrs?: string[];
  source_parity?: "even" | "odd";
  destination_cidrs?: string[];
  destination_ports?: (number | string)[];
  server_names?: string[];
}

interface Facts {
  source: string;
  destination: string;
  destinationPort: number;
  serverName: string;
}

const v4Address = fc.tuple(fc.constantFrom(10, 172), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 7 }))
  .map((octets) => octets.join("."));
const v6Address = fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 7 }))
  .map(([a, b, c]) => `2001:db8:${a}::${b}:${c}`);
const v4Cidr = fc.tuple(v4Address, fc.integer({ min: 0, max: 32 })).map(([ip, bits]) => `${ip}/${bits}`);
const v6Cidr = fc.tuple(v6Address, fc.integer({ min: 0, max: 128 })).map(([ip, bits]) => `${ip}/${bits}`);
const cidrs = fc.array(fc.oneof({ weight: 3, arbitrary: v4Cidr }, { weight: 1, arbitrary: v6Cidr }), { minLength: 1, maxLength: 4 });
const port = fc.integer({ min: 1, max: 12 });
const portRange = fc.tuple(port, port).map(([a, b]) => `${Math.min(a, b)}-${Math.max(a, b)}`);
const name = fc.constantFrom("a.example", "b.example", "x.a.example", "example");
const pattern = fc.constantFrom("a.example", "B.example", "*.example", "*.a.example", "example");

const match: fc.Arbitrary<Match> = fc.record({
  source_cidrs: cidrs,
  source_parity: fc.constantFrom("even", "odd"),
  destination_cidrs: cidrs,
  destination_ports: fc.array(fc.oneof(port, portRange), { minLength: 1, maxLength: 3 }),
  server_names: fc.array(pattern, { minLength: 1, maxLength: 2 }),
}, { requiredKeys: [] }) as fc.Arbitrary<Match>;

const address = fc.oneof({ weight: 3, arbitrary: v4Address }, { weight: 1, arbitrary: v6Address });
const facts: fc.Arbitrary<Facts> = fc.record({
  source: address,
  destination: address,
  destinationPort: port,
  serverName: fc.oneof(name, fc.constant("")),
});

/** Independent membership: IPv4 CIDRs see IPv4 addresses; IPv6 CIDRs see IPv6 ones and the IPv4-mapped form. */
function inCidr(cidr: string, ip: string): boolean {
  const [network, bits] = ipaddr.parseCIDR(cidr);
  const parsed = ipaddr.parse(ip);
  if (network.kind() === "ipv4") return parsed.kind() === "ipv4" && parsed.match(network, bits);
  const asV6 = parsed.kind() === "ipv4" ? (parsed as ipaddr.IPv4).toIPv4MappedAddress() : parsed;
  return asV6.match(network, bits);
}

function lastByte(ip: string): number {
  const bytes = ipaddr.parse(ip).toByteArray();
  return bytes[bytes.length - 1]!;
}

function nameMatches(patterns: string[], serverName: string): boolean {
  if (serverName === "") return false;
  return patterns.some((raw) => {
    const pattern = raw.toLowerCase();
    return pattern.startsWith("*.") ? serverName.endsWith(pattern.slice(1)) && serverName.length > pattern.length - 1 : serverName === pattern;
  });
}

function portMatches(ports: (number | string)[], value: number): boolean {
  return ports.some((p) => {
    const [low, high] = typeof p === "number" ? [p, p] : p.split("-").map(Number);
    return value >= low! && value <= high!;
  });
}

/** The meaning of a policy, rule by rule. */
function expectedRule(rules: Match[], f: Facts): number {
  return rules.findIndex((m) =>
    (m.source_cidrs === undefined || m.source_cidrs.some((c) => inCidr(c, f.source)))
    && (m.source_parity === undefined || (lastByte(f.source) % 2 === 1) === (m.source_parity === "odd"))
    && (m.destination_cidrs === undefined || m.destination_cidrs.some((c) => inCidr(c, f.destination)))
    && (m.destination_ports === undefined || portMatches(m.destination_ports, f.destinationPort))
    && (m.server_names === undefined || nameMatches(m.server_names, f.serverName)));
}

function endpoint(ip: string, portNumber: number): string {
  return ip.includes(":") ? `[${ip}]:${portNumber}` : `${ip}:${portNumber}`;
}

describe("the compiled policy decides as a rule-by-rule scan", () => {
  it("random policies over every L4 matcher, random connections", async () => {
    await fc.assert(fc.asyncProperty(
      fc.array(match, { minLength: 1, maxLength: 30 }),
      fc.array(facts, { minLength: 1, maxLength: 40 }),
      async (rules, connections) => {
        const filter = await loadFilter({
          rules: rules.map((m, i) => ({ match: m, action: { cluster: `rule-${i}` } })),
          default: { cluster: "none" },
        });
        for (const f of connections) {
          const expected = expectedRule(rules, f);
          const connection = filter.connect({
            source: endpoint(f.source, 5555),
            destination: endpoint(f.destination, f.destinationPort),
            serverName: f.serverName,
          });
          assert.equal(connection.cluster, expected < 0 ? "none" : `rule-${expected}`,
            `${JSON.stringify(f)} against ${JSON.stringify(rules)}`);
          connection.close();
        }
      },
    ), { numRuns: 300 });
  });

  it("many rules sharing CIDRs: still the first match in policy order", async () => {
    await fc.assert(fc.asyncProperty(
      fc.array(fc.record({ cidr: v4Cidr, parity: fc.constantFrom<"even" | "odd" | undefined>("even", "odd", undefined) }), { minLength: 50, maxLength: 300 }),
      fc.array(v4Address, { minLength: 20, maxLength: 60 }),
      async (specs, sources) => {
        const rules: Match[] = specs.map(({ cidr, parity }) => (parity === undefined ? { source_cidrs: [cidr] } : { source_cidrs: [cidr], source_parity: parity }));
        const filter = await loadFilter({ rules: rules.map((m, i) => ({ match: m, action: { cluster: `rule-${i}` } })), default: { cluster: "none" } });
        for (const source of sources) {
          const expected = expectedRule(rules, { source, destination: "10.0.0.1", destinationPort: 1, serverName: "" });
          const connection = filter.connect({ source: `${source}:1` });
          assert.equal(connection.cluster, expected < 0 ? "none" : `rule-${expected}`, source);
          connection.close();
        }
      },
    ), { numRuns: 60 });
  });
});
