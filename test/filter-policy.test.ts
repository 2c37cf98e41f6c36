// The JSON policy: each matcher and action, first match wins, and every bad configuration named.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { promisify } from "node:util";
import { loadFilter, REPO, routeOnce } from "./helpers.js";

const rule = (match: object, action: object, name?: string) => ({ ...(name ? { name } : {}), match, action });

describe("policy matchers", () => {
  it("source CIDRs, IPv4 and IPv6, with IPv4-mapped sources matching IPv4 CIDRs", async () => {
    const filter = await loadFilter({
      rules: [
        rule({ source_cidrs: ["10.1.0.0/16", "192.168.7.7"] }, { cluster: "v4" }),
        rule({ source_cidrs: ["2001:db8:1::/48"] }, { cluster: "v6" }),
      ],
      default: { cluster: "other" },
    });
    assert.equal(routeOnce(filter, "10.1.200.3:1"), "v4");
    assert.equal(routeOnce(filter, "[::ffff:10.1.0.9]:1"), "v4");
    assert.equal(routeOnce(filter, "192.168.7.7:1"), "v4");
    assert.equal(routeOnce(filter, "192.168.7.8:1"), "other");
    assert.equal(routeOnce(filter, "10.2.0.1:1"), "other");
    assert.equal(routeOnce(filter, "[2001:db8:1:ffff::1]:1"), "v6");
    assert.equal(routeOnce(filter, "[2001:db8:2::1]:1"), "other");
  });

  it("source parity", async () => {
    const filter = await loadFilter({ rules: [rule({ source_parity: "odd" }, { cluster: "odd" })], default: { cluster: "even" } });
    assert.equal(routeOnce(filter, "10.0.0.1:1"), "odd");
    assert.equal(routeOnce(filter, "10.0.0.2:1"), "even");
  });

  it("destination CIDRs and ports, single and ranges", async () => {
    const filter = await loadFilter({
      rules: [
        rule({ destination_cidrs: ["203.0.113.0/24"], destination_ports: [443] }, { cluster: "tls-net" }),
        rule({ destination_ports: ["8000-8100", 22] }, { cluster: "ranged" }),
      ],
      default: { passthrough: true },
    });
    assert.equal(routeOnce(filter, "10.0.0.1:1", "203.0.113.9:443"), "tls-net");
    assert.equal(routeOnce(filter, "10.0.0.1:1", "203.0.114.9:443"), undefined);
    assert.equal(routeOnce(filter, "10.0.0.1:1", "1.1.1.1:8000"), "ranged");
    assert.equal(routeOnce(filter, "10.0.0.1:1", "1.1.1.1:8100"), "ranged");
    assert.equal(routeOnce(filter, "10.0.0.1:1", "1.1.1.1:8101"), undefined);
    assert.equal(routeOnce(filter, "10.0.0.1:1", "[2001:db8::1]:22"), "ranged");
  });

  it("SNI exact and *.suffix, case-insensitive; no SNI never matches", async () => {
    const filter = await loadFilter({
      rules: [rule({ server_names: ["api.example.com", "*.example.org"] }, { cluster: "named" })],
      default: { cluster: "plain" },
    });
    assert.equal(routeOnce(filter, "10.0.0.1:1", undefined, "api.example.com"), "named");
    assert.equal(routeOnce(filter, "10.0.0.1:1", undefined, "API.Example.COM"), "named");
    assert.equal(routeOnce(filter, "10.0.0.1:1", undefined, "www.example.org"), "named");
    assert.equal(routeOnce(filter, "10.0.0.1:1", undefined, "a.b.example.org"), "named");
    assert.equal(routeOnce(filter, "10.0.0.1:1", undefined, "example.org"), "plain");
    assert.equal(routeOnce(filter, "10.0.0.1:1", undefined, "www.example.com"), "plain");
    assert.equal(routeOnce(filter, "10.0.0.1:1"), "plain");
  });

  it("combines matchers in one rule (all must hold) and the first matching rule wins", async () => {
    const filter = await loadFilter({
      rules: [
        rule({ source_cidrs: ["10.0.0.0/8"], destination_ports: [443], server_names: ["*.corp"] }, { cluster: "first" }, "corp-tls"),
        rule({ source_cidrs: ["10.0.0.0/8"] }, { cluster: "second" }, "ten"),
        rule({ source_cidrs: ["10.0.0.0/8"] }, { cluster: "never" }),
      ],
    }, { logLevel: "debug" });
    assert.equal(routeOnce(filter, "10.0.0.8:1", "1.2.3.4:443", "git.corp"), "first");
    assert.equal(routeOnce(filter, "10.0.0.8:1", "1.2.3.4:80", "git.corp"), "second");
    assert.equal(routeOnce(filter, "10.0.0.8:1", "1.2.3.4:443", "git.example"), "second");
    // No rule matches: the default is the reference routing.
    assert.equal(routeOnce(filter, "11.0.0.8:1"), "egress-router1");
    assert.equal(filter.metric("wasmerang.rule.corp-tls.matched"), 1);
    assert.equal(filter.metric("wasmerang.rule.ten.matched"), 2);
    assert.equal(filter.metric("wasmerang.unmatched"), 1);
    assert.ok(filter.logs.some((r) => r.message.includes("rule=corp-tls cluster=first")));
  });
});

describe("metadata and filter state matchers", () => {
  const PROXY_PROTOCOL = "envoy.filters.listener.proxy_protocol";

  it("dynamic metadata (as proxy_protocol TLV rules write it): exact, prefix and a set of values; absent matches nothing", async () => {
    const filter = await loadFilter({
      rules: [
        rule({ metadata: [{ namespace: PROXY_PROTOCOL, key: "vpce_id", values: ["\u0001vpce-0aaa", "\u0001vpce-0bbb"] }] }, { cluster: "partners" }),
        rule({ metadata: [{ namespace: PROXY_PROTOCOL, key: "vpce_id", prefix: "\u0001vpce-9" }] }, { cluster: "labs" }),
        rule({ metadata: [{ namespace: "corp.tenant", key: "tier", exact: "gold" }] }, { cluster: "gold" }),
      ],
      default: { reject: true },
    });
    const route = (metadata: Record<string, Record<string, string>>) => filter.connect({ source: "10.0.0.1:1", metadata }).cluster;
    assert.equal(route({ [PROXY_PROTOCOL]: { vpce_id: "\u0001vpce-0bbb" } }), "partners");
    assert.equal(route({ [PROXY_PROTOCOL]: { vpce_id: "\u0001vpce-9zz" } }), "labs");
    assert.equal(route({ [PROXY_PROTOCOL]: { vpce_id: "\u0001vpce-0ccc" } }), undefined);
    assert.equal(route({ "corp.tenant": { tier: "gold" } }), "gold");
    assert.equal(route({ "corp.tenant": { tier: "golden" } }), undefined);
    assert.equal(route({}), undefined);
  });

  it("filter state an earlier filter set, combined with a CIDR matcher", async () => {
    const filter = await loadFilter({
      rules: [rule({ source_cidrs: ["10.0.0.0/8"], filter_state: [{ key: "wasm.team", exact: "payments" }] }, { cluster: "pci" })],
      default: { cluster: "general" },
    });
    assert.equal(filter.connect({ source: "10.0.0.1:1", filterState: { "wasm.team": "payments" } }).cluster, "pci");
    assert.equal(filter.connect({ source: "192.0.2.1:1", filterState: { "wasm.team": "payments" } }).cluster, "general");
    assert.equal(filter.connect({ source: "10.0.0.1:1", filterState: { "wasm.team": "web" } }).cluster, "general");
  });
});

describe("policy actions", () => {
  it("cluster names with {dst_port}", async () => {
    const filter = await loadFilter({ default: { cluster: "outbound|{dst_port}||egress.svc" } });
    assert.equal(routeOnce(filter, "10.0.0.1:1", "1.2.3.4:8443"), "outbound|8443||egress.svc");
  });

  it("more distinct cluster names than the 512 counters: all are routed, the first 512 counted by name", async () => {
    const filter = await loadFilter({ log_level: "warn", default: { cluster: "svc-{dst_port}" } });
    for (let port = 1000; port < 1600; port++) assert.equal(routeOnce(filter, "10.0.0.1:1", `1.2.3.4:${port}`), `svc-${port}`);
    assert.equal(routeOnce(filter, "10.0.0.1:1", "1.2.3.4:1000"), "svc-1000");
    assert.equal(filter.metric("wasmerang.routed"), 601);
    assert.equal(filter.metric("wasmerang.cluster.svc-1000.routed"), 2);
    assert.equal(filter.metric("wasmerang.cluster.svc-1511.routed"), 1);
    assert.equal(filter.metric("wasmerang.cluster.svc-1512.routed"), undefined);
  });

  it("hash: same source, same cluster; spread follows the weights", async () => {
    const filter = await loadFilter({ default: { hash: ["a", { cluster: "b", weight: 3 }] } });
    const counts: Record<string, number> = { a: 0, b: 0 };
    for (let i = 0; i < 2000; i++) {
      const source = `10.${(i >> 8) & 255}.${i & 255}.${(i * 7) & 255}:1`;
      const cluster = routeOnce(filter, source)!;
      assert.equal(routeOnce(filter, source.replace(":1", ":2")), cluster, "port must not change the choice");
      counts[cluster]!++;
    }
    assert.ok(counts.a! > 380 && counts.a! < 620, `a got ${counts.a} of 2000, expected about 500`);
    assert.ok(counts.b! > 1380 && counts.b! < 1620, `b got ${counts.b} of 2000, expected about 1500`);
  });

  it("reject closes the connection, stops the chain and counts", async () => {
    const filter = await loadFilter({ rules: [rule({ destination_ports: [25] }, { reject: true }, "no-smtp")] }, { logLevel: "debug" });
    const connection = filter.connect({ source: "10.0.0.1:1", destination: "1.2.3.4:25" });
    assert.equal(connection.status, "pause");
    assert.match(connection.closedReason ?? "", /closed by the wasm filter/);
    assert.equal(connection.cluster, undefined);
    assert.equal(filter.metric("wasmerang.rejected"), 1);
    assert.ok(filter.logs.some((r) => r.message.includes("rule=no-smtp action=reject")));
  });

  it("passthrough leaves tcp_proxy's cluster", async () => {
    const filter = await loadFilter({ default: { passthrough: true } });
    const connection = filter.connect({ source: "10.0.0.1:1" });
    assert.equal(connection.cluster, undefined);
    assert.equal(connection.status, "continue");
    assert.equal(filter.metric("wasmerang.passthrough"), 1);
  });

  it("record_decision: the rule (name, rules[i] or default), outcome and cluster as filter state wasm.wasmerang.*; nothing without it", async () => {
    const policy = {
      record_decision: true,
      rules: [rule({ destination_ports: [25] }, { reject: true }, "no-smtp"), rule({ destination_ports: [22] }, { passthrough: true }),
        rule({ destination_ports: [8080] }, { cluster: "svc-{dst_port}" })],
      default: { cluster: "egress-router1" },
    };
    const filter = await loadFilter(policy);
    const state = (destination: string) => Object.fromEntries([...filter.connect({ source: "10.0.0.1:1", destination }).filterState]
      .filter(([key]) => key.startsWith("wasm.")));
    assert.deepEqual(state("1.2.3.4:25"), { "wasm.wasmerang.rule": "no-smtp", "wasm.wasmerang.outcome": "reject" });
    assert.deepEqual(state("1.2.3.4:22"), { "wasm.wasmerang.rule": "rules[1]", "wasm.wasmerang.outcome": "passthrough" });
    assert.deepEqual(state("1.2.3.4:8080"), { "wasm.wasmerang.rule": "rules[2]", "wasm.wasmerang.outcome": "route", "wasm.wasmerang.cluster": "svc-8080" });
    assert.deepEqual(state("1.2.3.4:443"), { "wasm.wasmerang.rule": "default", "wasm.wasmerang.outcome": "route", "wasm.wasmerang.cluster": "egress-router1" });
    assert.deepEqual(state("1.2.3.4:443"), { "wasm.wasmerang.rule": "default", "wasm.wasmerang.outcome": "route", "wasm.wasmerang.cluster": "egress-router1" });
    const quiet = await loadFilter({ ...policy, record_decision: false });
    assert.deepEqual([...quiet.connect({ source: "10.0.0.1:1" }).filterState.keys()], ["envoy.tcp_proxy.cluster"]);
  });

  it("record_decision: a cluster Envoy refuses is recorded as outcome error, without a cluster", async () => {
    const filter = await loadFilter({ record_decision: true, default: { cluster: "a" } });
    const connection = filter.connect({ source: "10.0.0.1:1", onForeignCall: () => ({ status: 2 }) });
    assert.deepEqual(Object.fromEntries(connection.filterState), { "wasm.wasmerang.rule": "default", "wasm.wasmerang.outcome": "error" });
  });

  it("original_dst: the destination's address and the ORIGINAL_DST cluster, only for destinations the rule allows", async () => {
    const filter = await loadFilter({
      rules: [rule({ destination_cidrs: ["10.20.0.0/16", "fd00::/8"] }, { original_dst: "direct" }, "internal")],
      default: { cluster: "egress-router1" },
    });
    const state = (destination: string) => Object.fromEntries(filter.connect({ source: "10.0.0.1:1", destination }).filterState);
    assert.deepEqual(state("10.20.3.4:5432"), { "envoy.network.transport_socket.original_dst_address": "10.20.3.4:5432", "envoy.tcp_proxy.cluster": "direct" });
    assert.deepEqual(state("[fd00::7]:443"), { "envoy.network.transport_socket.original_dst_address": "[fd00::7]:443", "envoy.tcp_proxy.cluster": "direct" });
    assert.deepEqual(state("203.0.113.9:443"), { "envoy.tcp_proxy.cluster": "egress-router1" });
  });

  it("log_level silences decision lines the host would show", async () => {
    const filter = await loadFilter({ log_level: "warn" }, { logLevel: "debug" });
    routeOnce(filter, "10.0.0.1:1");
    assert.deepEqual(filter.logs.filter((r) => r.message.includes("source=")), []);
  });
});

describe("bad configuration is refused at configure time, naming the field", () => {
  const cases: [string, string | object, RegExp][] = [
    ["invalid JSON", "{\"rules\": [", /invalid JSON at offset \d+/],
    ["a bad CIDR", { rules: [rule({ source_cidrs: ["10.0.0.0/33"] }, { cluster: "x" })] }, /rules\[0\]\.match\.source_cidrs\[0\]: invalid CIDR '10\.0\.0\.0\/33'/],
    ["an IPv6 CIDR too long", { rules: [rule({ destination_cidrs: ["2001:db8::/129"] }, { cluster: "x" })] }, /rules\[0\]\.match\.destination_cidrs\[0\]/],
    ["an unknown matcher", { rules: [rule({ source_ip: "1.2.3.4" }, { cluster: "x" })] }, /rules\[0\]\.match\.source_ip: unknown field/],
    ["an unknown top-level field", { rulez: [] }, /configuration\.rulez: unknown field/],
    ["an empty hash list", { rules: [rule({}, { hash: [] })] }, /rules\[0\]\.action\.hash: needs at least one cluster/],
    ["a zero weight", { default: { hash: [{ cluster: "a", weight: 0 }] } }, /default\.hash\[0\]\.weight: must be a whole number from 1 to 10000/],
    ["a negative weight", { default: { hash: [{ cluster: "a", weight: -2 }] } }, /default\.hash\[0\]\.weight/],
    ["two actions", { default: { cluster: "a", reject: true } }, /default: must have exactly one of/],
    ["a missing action", { rules: [{ match: {} }] }, /rules\[0\]\.action: is required/],
    ["an empty cluster name", { default: { cluster: "" } }, /default\.cluster: must be a non-empty string/],
    ["an unknown placeholder", { default: { cluster: "x-{src_ip}" } }, /default\.cluster: unknown placeholder '\{src_ip\}'/],
    ["a bad parity", { rules: [rule({ source_parity: "3" }, { cluster: "x" })] }, /rules\[0\]\.match\.source_parity: must be 'even' or 'odd'/],
    ["original_dst without destination_cidrs", { rules: [rule({ destination_ports: [443] }, { original_dst: "direct" })] },
      /rules\[0\]\.action\.original_dst: needs the rule to match destination_cidrs/],
    ["original_dst as the default", { default: { original_dst: "direct" } }, /default\.original_dst: is for rules only/],
    ["a metadata matcher without its namespace", { rules: [rule({ metadata: [{ key: "k", exact: "v" }] }, { cluster: "x" })] },
      /rules\[0\]\.match\.metadata\[0\]: needs namespace and key/],
    ["a value matcher with two ways to match", { rules: [rule({ filter_state: [{ key: "k", exact: "v", prefix: "p" }] }, { cluster: "x" })] },
      /rules\[0\]\.match\.filter_state\[0\]: needs exactly one of exact, prefix, values/],
    ["an empty set of values", { rules: [rule({ filter_state: [{ key: "k", values: [] }] }, { cluster: "x" })] },
      /rules\[0\]\.match\.filter_state\[0\]\.values: needs at least one value/],
    ["a port out of range", { rules: [rule({ destination_ports: [70000] }, { cluster: "x" })] }, /rules\[0\]\.match\.destination_ports\[0\]: port must be/],
    ["an inverted range", { rules: [rule({ destination_ports: ["90-80"] }, { cluster: "x" })] }, /low end above its high end/],
    ["a bad log level", { log_level: "loud" }, /log_level: must be one of/],
    ["a bad mode", { mode: "envoy" }, /mode: must be 'standalone' or 'istio'/],
    ["an empty rule name", { rules: [{ name: "", action: { cluster: "x" } }] }, /rules\[0\]\.name: must be a non-empty string/],
    ["CIDRs not in a list", { rules: [rule({ source_cidrs: "10.0.0.0/8" }, { cluster: "x" })] }, /rules\[0\]\.match\.source_cidrs: must be a list/],
    ["a port range that is not text", { rules: [rule({ destination_ports: [true] }, { cluster: "x" })] },
      /rules\[0\]\.match\.destination_ports\[0\]: must be a non-empty string/],
    ["an empty server name", { rules: [rule({ server_names: ["a.example", ""] }, { cluster: "x" })] },
      /rules\[0\]\.match\.server_names\[1\]: must be a non-empty string/],
    ["a header value that is not text", { rules: [rule({ headers: [{ name: "x-a", value: 1 }] }, { cluster: "x" })] },
      /rules\[0\]\.match\.headers\[0\]\.value: must be a string/],
    ["a metadata value that is not text", { rules: [rule({ metadata: [{ namespace: "n", key: "k", values: ["a", 2] }] }, { cluster: "x" })] },
      /rules\[0\]\.match\.metadata\[0\]\.values\[1\]: must be a string/],
    ["an empty hash target", { default: { hash: ["a", ""] } }, /default\.hash\[1\]: must be a non-empty string/],
    ["a hash target without its cluster", { default: { hash: [{ weight: 2 }] } }, /default\.hash\[0\]\.cluster: is required/],
    ["an unclosed placeholder", { rules: [rule({}, { hash: [{ cluster: "x-{dst_port" }] })] },
      /rules\[0\]\.action\.hash\[0\]\.cluster: unclosed '\{'/],
    ["reject set to false", { rules: [rule({}, { reject: false })] }, /rules\[0\]\.action\.reject: must be true/],
    ["a bad reference mode", { default: { reference: "envoy" } }, /default\.reference: must be 'standalone' or 'istio'/],
    ["a PROXY header to a port where the server speaks first", { proxy_protocol: { version: 2, destination_ports: [443, "20-30"] } },
      /proxy_protocol\.destination_ports\[1\]: includes port 21, where the server speaks first/],
    ["an unknown TLV", { proxy_protocol: { version: 2, destination_ports: [443], tlvs: ["rule", "sni"] } },
      /proxy_protocol\.tlvs\[1\]: must be 'authority' \(the SNI\) or 'rule'/],
    ["a reject status out of range", { http: { reject_status: 99 } }, /http\.reject_status: must be an HTTP status from 200 to 599/],
    ["an empty cluster header", { http: { cluster_header: "" } }, /http\.cluster_header: must be a non-empty string/],
    // Reading stops at the first fault: a message made for each of them ran the VM out of memory.
    ["200,000 unknown fields: the first is named", `{${Array.from({ length: 200_000 }, (_, i) => `"a${i}":1`).join(",")}}`,
      /configuration\.a0: unknown field/],
    ["a field written twice", '{"rules":[{"action":{"reject":true},"action":{"passthrough":true}}]}', /rules\[0\]\.action: appears twice/],
    ["a fault in a later rule, with a hash target's weight", { rules: [rule({}, { cluster: "a" }), rule({}, { cluster: "b" }),
      rule({ source_parity: "even" }, { hash: ["c", { cluster: "d", weight: 0 }] })] }, /rules\[2\]\.action\.hash\[1\]\.weight: must be a whole number/],
  ];
  // The same sources built by plain asc, where each msg("…") is its literal rather than an entry
  // of the build's message table (scripts/build-filter.mjs): both must refuse in the same words.
  let plainModule = "";
  before(async () => {
    plainModule = join(mkdtempSync(join(tmpdir(), "wasmerang-plain-")), "filter.wasm");
    await promisify(execFile)(process.execPath, [join(REPO, "node_modules/assemblyscript/bin/asc.js"), "filter/wasmerang.ts",
      "--target", "release", "-o", plainModule], { cwd: REPO });
  });

  const refusal = async (configuration: string | object, module?: string): Promise<string> => {
    try {
      await loadFilter(configuration, module === undefined ? {} : { module });
    } catch (error) {
      return (error as Error).message.replace(/\(.*?\.wasm\)/, "");
    }
    assert.fail("the configuration was accepted");
  };

  for (const [what, configuration, message] of cases) {
    it(what, async () => {
      const refused = await refusal(configuration);
      assert.match(refused, /proxy_on_configure rejected the configuration/);
      assert.match(refused, message);
      assert.equal(refused, await refusal(configuration, plainModule), "the message table changed the words");
    });
  }
});
