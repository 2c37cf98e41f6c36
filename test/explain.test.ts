// `wasmerang explain`: one connection through the real module, and what it decided.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { explain, filterFromBootstrap } from "../src/explain.js";
import { FILTER_WASM, REPO } from "./helpers.js";

const POLICY = JSON.stringify({
  proxy_protocol: { version: 1, destination_ports: [443] },
  rules: [
    { name: "blocked", match: { source_cidrs: ["192.0.2.0/24"] }, action: { reject: true } },
    { name: "corp", match: { server_names: ["*.corp"] }, action: { cluster: "corp" } },
  ],
  default: { cluster: "other" },
});

describe("wasmerang explain", () => {
  const module = readFileSync(FILTER_WASM);

  it("names the outcome, the cluster, the rule with its index, the filter state, the counters and the PROXY header", async () => {
    const explanation = await explain({ module, configuration: POLICY }, { source: "10.0.0.1:1234", destination: "10.9.9.9:443", serverName: "db.corp" });
    assert.equal(explanation.outcome, "routed");
    assert.equal(explanation.cluster, "corp");
    assert.deepEqual(explanation.rule, { name: "corp", index: 1 });
    assert.deepEqual(explanation.filterState, { "envoy.tcp_proxy.cluster": "corp" });
    assert.deepEqual(explanation.counters, { "wasmerang.routed": 1, "wasmerang.cluster.corp.routed": 1, "wasmerang.rule.corp.matched": 1 });
    assert.equal(explanation.proxyHeader, "PROXY TCP4 10.0.0.1 10.9.9.9 1234 443\r\n");
    assert.deepEqual(explanation.earlierRules, [{ index: 0, name: "blocked", failed: "source_cidrs" }]);
  });

  it("for each rule before the deciding one, the first matcher that did not hold", async () => {
    const policy = JSON.stringify({
      rules: [
        { name: "tls-only", match: { source_cidrs: ["10.0.0.0/8"], destination_ports: [443] }, action: { cluster: "a" } },
        { match: { source_parity: "odd" }, action: { cluster: "b" } },
        { name: "web", match: { path_prefixes: ["/api"] }, action: { cluster: "c" } },
      ],
      default: { cluster: "d" },
    });
    const explanation = await explain({ module, configuration: policy }, { source: "10.0.0.2:1", destination: "10.9.9.9:80" });
    assert.equal(explanation.rule, "default");
    assert.deepEqual(explanation.earlierRules, [
      { index: 0, name: "tls-only", failed: "destination_ports" },
      { index: 1, failed: "source_parity" },
      { index: 2, name: "web", failed: "HTTP matchers (authorities, path_prefixes, headers)" },
    ]);
    const unnamed = await explain({ module, configuration: policy }, { source: "10.0.0.3:1", destination: "10.9.9.9:80" });
    assert.deepEqual(unnamed.rule, { index: 1 }, "an unnamed rule is known by its index");
    assert.equal(unnamed.cluster, "b");
  });

  it("a rule named `default` is that rule, not the policy's default", async () => {
    const policy = JSON.stringify({ rules: [{ name: "default", match: { source_parity: "odd" }, action: { cluster: "odd" } }], default: { cluster: "even" } });
    const rule = await explain({ module, configuration: policy }, { source: "10.0.0.1:1", destination: "10.9.9.9:80" });
    assert.deepEqual(rule.rule, { index: 0, name: "default" });
    const fallback = await explain({ module, configuration: policy }, { source: "10.0.0.2:1", destination: "10.9.9.9:80" });
    assert.equal(fallback.rule, "default");
  });

  it("a rejected connection, and the default when no rule matches", async () => {
    const rejected = await explain({ module, configuration: POLICY }, { source: "192.0.2.7:1", destination: "10.9.9.9:80" });
    assert.equal(rejected.outcome, "rejected");
    assert.deepEqual(rejected.rule, { name: "blocked", index: 0 });
    const fallback = await explain({ module, configuration: POLICY }, { source: "10.0.0.1:1", destination: "10.9.9.9:80", serverName: "example.com" });
    assert.equal(fallback.cluster, "other");
    assert.equal(fallback.rule, "default");
    assert.equal(fallback.proxyHeader, undefined);
  });

  it("from a bootstrap: the listener's filter, and what tcp_proxy then does", async () => {
    const filter = await filterFromBootstrap(join(REPO, "examples/local/envoy.yaml"), undefined, FILTER_WASM);
    const explanation = await explain(filter, { source: "127.0.0.10:5000", destination: "203.0.113.9:443" });
    assert.equal(explanation.cluster, "egress-router1");
    assert.deepEqual(explanation.tcpProxy, { cluster: "egress-router1", defined: true, note: "connects to egress-router1 (the filter's choice)" });
    const dir = mkdtempSync(join(tmpdir(), "wasmerang-explain-"));
    const weighted = join(dir, "envoy.yaml");
    writeFileSync(weighted, readFileSync(join(REPO, "examples/local/envoy.yaml"), "utf8")
      .replace(/(stat_prefix: wasmerang\n)(\s+)cluster: [^\n]+/, "$1$2weighted_clusters: { clusters: [{ name: egress-router1, weight: 1 }] }"));
    const overridden = await explain(await filterFromBootstrap(weighted, undefined, FILTER_WASM), { source: "127.0.0.11:5000" });
    assert.match(overridden.tcpProxy!.note, /weighted_clusters: tcp_proxy picks a weighted cluster and ignores the filter's choice/);
  });

  it("metadata and filter state facts (--metadata NS:KEY=VALUE, --filter-state KEY=VALUE), and the original_dst action's filter state", () => {
    const policy = JSON.stringify({
      rules: [
        { name: "partner", match: { metadata: [{ namespace: "envoy.filters.listener.proxy_protocol", key: "vpce_id", exact: "vpce-1" }] }, action: { cluster: "partners" } },
        { name: "internal", match: { destination_cidrs: ["10.0.0.0/8"], filter_state: [{ key: "wasm.team", exact: "ops" }] }, action: { original_dst: "direct" } },
      ],
      default: { reject: true },
    });
    const run = (...args: string[]) => {
      const result = spawnSync(process.execPath, [join(REPO, "build/src/cli.js"), "explain", "--policy", "-", "--source", "192.0.2.1:1", "--output", "json", ...args],
        { encoding: "utf8", cwd: REPO, input: policy });
      assert.equal(result.status, 0, result.stderr);
      return JSON.parse(result.stdout) as { cluster?: string; rule: unknown; filterState: Record<string, string> };
    };
    assert.equal(run("--metadata", "envoy.filters.listener.proxy_protocol:vpce_id=vpce-1").cluster, "partners");
    const direct = run("--destination", "10.2.3.4:5432", "--filter-state", "wasm.team=ops");
    assert.deepEqual(direct.rule, { name: "internal", index: 1 });
    assert.equal(direct.filterState["envoy.network.transport_socket.original_dst_address"], "10.2.3.4:5432");
    assert.equal(run("--destination", "10.2.3.4:5432").cluster, undefined);
  });

  it("an HTTP request (--authority, --path, --header): the module as the listener's HTTP filter", () => {
    const run = (...args: string[]) => spawnSync(process.execPath, [join(REPO, "build/src/cli.js"), "explain", "-c", "examples/local/envoy.yaml", "--output", "json", ...args],
      { encoding: "utf8", cwd: REPO });
    const blocked = run("--source", "127.0.0.12:5000", "--path", "/admin/users", "--header", "X-Team=a");
    assert.equal(blocked.status, 0, blocked.stderr);
    assert.deepEqual((JSON.parse(blocked.stdout) as { outcome: string; rule: unknown }).rule, { name: "admin-blocked", index: 0 });
    assert.equal((JSON.parse(blocked.stdout) as { outcome: string }).outcome, "rejected");
    const routed = JSON.parse(run("--source", "127.0.0.13:5000", "--authority", "a.test", "--path", "/hello").stdout) as { cluster: string; tcpProxy?: unknown; earlierRules: unknown[] };
    assert.equal(routed.cluster, "web-egress2");
    assert.equal(routed.tcpProxy, undefined);
    assert.deepEqual(routed.earlierRules, [{ index: 0, name: "admin-blocked", failed: "HTTP matchers (authorities, path_prefixes, headers)" },
      { index: 1, name: "even-sources", failed: "source_parity" }]);
  });

  it("the command prints JSON, and asks for one source of the filter", () => {
    const cli = (...args: string[]) => spawnSync(process.execPath, [join(REPO, "build/src/cli.js"), "explain", ...args], { encoding: "utf8", cwd: REPO, input: POLICY });
    const result = cli("--policy", "-", "--source", "10.0.0.1:1", "--sni", "x.corp", "--output", "json");
    assert.equal(result.status, 0, result.stderr);
    assert.equal((JSON.parse(result.stdout) as { cluster: string }).cluster, "corp");
    assert.notEqual(cli("--source", "10.0.0.1:1").status, 0);
  });
});
