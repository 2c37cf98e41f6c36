// The filter's reference behaviour, which must match the project it grew from exactly.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { FILTER_WASM, loadFilter, routeOnce } from "./helpers.js";

describe("built module", () => {
  const module = new WebAssembly.Module(readFileSync(FILTER_WASM));

  it("imports only proxy-wasm ABI functions from env", () => {
    const imports = WebAssembly.Module.imports(module).map((i) => `${i.module}.${i.name}`).sort();
    assert.deepEqual(imports, [
      "env.proxy_call_foreign_function",
      "env.proxy_close_stream",
      "env.proxy_define_metric",
      "env.proxy_get_buffer_bytes",
      "env.proxy_get_header_map_value",
      "env.proxy_get_log_level",
      "env.proxy_get_property",
      "env.proxy_increment_metric",
      "env.proxy_log",
      "env.proxy_remove_header_map_value",
      "env.proxy_replace_header_map_value",
      "env.proxy_send_local_response",
      "env.proxy_set_buffer_bytes",
      "env.proxy_set_property",
    ]);
  });

  it("exports the ABI marker, allocator, initializer, memory and the callbacks it handles", () => {
    const exports = WebAssembly.Module.exports(module).map((e) => e.name).sort();
    for (const name of ["proxy_abi_version_0_2_1", "proxy_on_memory_allocate", "_initialize", "memory",
      "proxy_on_context_create", "proxy_on_vm_start", "proxy_on_configure", "proxy_on_new_connection",
      "proxy_on_downstream_data", "proxy_on_request_headers", "proxy_on_done", "proxy_on_delete"]) {
      assert.ok(exports.includes(name), `missing export ${name}`);
    }
    assert.deepEqual(exports.filter((name) => !name.startsWith("proxy_") && name !== "_initialize" && name !== "memory"), []);
  });
});

describe("reference routing, standalone names", () => {
  for (const configuration of ["", "standalone", "  standalone\n"]) {
    it(`configuration ${JSON.stringify(configuration)}: even last octet → egress-router1, odd → egress-router2`, async () => {
      const filter = await loadFilter(configuration);
      assert.equal(routeOnce(filter, "10.0.0.2:40000"), "egress-router1");
      assert.equal(routeOnce(filter, "10.0.0.3:40000"), "egress-router2");
      assert.equal(routeOnce(filter, "192.168.1.254:1"), "egress-router1");
      assert.equal(routeOnce(filter, "172.16.0.255:65535"), "egress-router2");
    });
  }

  it("reads a.b.c.d, a.b.c.d:port and [::ffff:a.b.c.d]:port", async () => {
    const filter = await loadFilter("");
    for (const [source, cluster] of [["10.1.1.4", "egress-router1"], ["10.1.1.5:80", "egress-router2"],
      ["[::ffff:10.1.1.6]:443", "egress-router1"], ["[::ffff:10.1.1.7]:443", "egress-router2"]] as const) {
      const connection = filter.connect({ source: "127.0.0.1:1", properties: { "source.address": source } });
      assert.equal(connection.cluster, cluster, source);
      assert.equal(connection.status, "continue");
      connection.close();
    }
  });

  it("sends set_envoy_filter_state with the exact protobuf bytes Envoy expects", async () => {
    const filter = await loadFilter("");
    const calls: [string, string][] = [];
    filter.connect({ source: "10.0.0.2:1", onForeignCall: (name, args) => {
      calls.push([name, args.toString("hex")]);
      return undefined;
    } }).close();
    const expected = Buffer.concat([Buffer.from([0x0a, 0x17]), Buffer.from("envoy.tcp_proxy.cluster"),
      Buffer.from([0x12, 0x0e]), Buffer.from("egress-router1")]).toString("hex");
    assert.deepEqual(calls, [["set_envoy_filter_state", expected]]);
  });

  it("sets nothing for an unparsable source and lets the connection continue", async () => {
    const filter = await loadFilter("");
    for (const source of ["garbage", "", "10.0.0", "10.0.0.256:1", "1.2.3.4:99999", "/var/run/socket"]) {
      const connection = filter.connect({ source: "127.0.0.1:1", properties: { "source.address": source } });
      assert.equal(connection.cluster, undefined, source);
      assert.equal(connection.status, "continue");
      assert.equal(connection.closedReason, undefined);
      connection.close();
    }
    const missing = filter.connect({ source: "127.0.0.1:1", properties: { "source.address": null } });
    assert.equal(missing.cluster, undefined);
    missing.close();
    assert.equal(filter.metric("wasmerang.error.bad_address"), 7);
    assert.ok(filter.logs.some((r) => r.level === "warn" && r.message.includes("bad_address")));
  });
});

describe("reference routing, Istio names", () => {
  const cases = [
    ["10.0.0.2:1", "1.2.3.4:443", "outbound|8080||egress-router1.default.svc.cluster.local"],
    ["10.0.0.3:1", "1.2.3.4:443", "outbound|8080||egress-router2.default.svc.cluster.local"],
    ["10.0.0.2:1", "1.2.3.4:80", "outbound|8081||egress-router1.default.svc.cluster.local"],
    ["10.0.0.3:1", "[2001:db8::1]:80", "outbound|8081||egress-router2.default.svc.cluster.local"],
    ["10.0.0.3:1", "1.2.3.4:22", "outbound|8080||egress-router2.default.svc.cluster.local"],
  ] as const;
  for (const configuration of ["istio", "mode=istio", '{"mode": "istio"}']) {
    it(`configuration ${JSON.stringify(configuration)} picks the router port from the destination port`, async () => {
      const filter = await loadFilter(configuration);
      for (const [source, destination, cluster] of cases) assert.equal(routeOnce(filter, source, destination), cluster);
    });
  }

  it("assumes port 443 when the destination address is missing", async () => {
    const filter = await loadFilter("istio");
    const connection = filter.connect({ source: "10.0.0.4:1", properties: { "destination.address": null } });
    assert.equal(connection.cluster, "outbound|8080||egress-router1.default.svc.cluster.local");
  });
});

describe("observability", () => {
  it("counts routed connections per cluster and logs one debug line per decision", async () => {
    const filter = await loadFilter("", { logLevel: "debug" });
    for (const source of ["10.0.0.2:1", "10.0.0.4:1", "10.0.0.5:1"]) routeOnce(filter, source, "93.184.216.34:443", "example.com");
    assert.equal(filter.metric("wasmerang.routed"), 3);
    assert.equal(filter.metric("wasmerang.cluster.egress-router1.routed"), 2);
    assert.equal(filter.metric("wasmerang.cluster.egress-router2.routed"), 1);
    assert.equal(filter.metric("wasmerang.unmatched"), 3);
    const decision = filter.logs.find((r) => r.message.includes("source=10.0.0.5:1"));
    assert.equal(decision?.level, "debug");
    assert.match(decision!.message, /destination=93\.184\.216\.34:443 sni=example\.com rule=default cluster=egress-router2/);
  });

  it("counts a failed foreign call, logs the status, and leaves the connection open", async () => {
    const filter = await loadFilter("");
    const connection = filter.connect({ source: "10.0.0.2:1", onForeignCall: () => ({ status: 1 }) });
    assert.equal(connection.status, "continue");
    assert.equal(connection.closedReason, undefined);
    assert.equal(filter.metric("wasmerang.error.filter_state"), 1);
    assert.ok(filter.logs.some((r) => r.level === "error" && r.message.includes("failed with status 1")));
  });

  it("refuses unknown configuration strings with a critical log", async () => {
    await assert.rejects(loadFilter("standalon"), /expected 'standalone', 'istio' or a JSON policy object, got 'standalon'/);
  });
});
