// Modules other than the project's own: a hand-written third-party-style module, trap handling
// per failure policy, and Envoy's pause/continue semantics.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { FilterHarness } from "../src/host/harness.js";
import { buildThirdPartyModule, thirdPartyModuleFile } from "./fixtures/third-party-module.js";
import { FILTER_WASM } from "./helpers.js";
import { adminGet, bootstrap, exchange, fileAccessLog, httpConnectionManager, startRunner, staticCluster, tagServers, tcpProxy, wasmFilter } from "./net-helpers.js";

const dir = mkdtempSync(join(tmpdir(), "wasmerang-modules-"));


describe("other modules in the runner", () => {
  const routers = tagServers("r1", "r2");
  const clusters = () => [staticCluster("egress-router1", routers[0]!.port), staticCluster("egress-router2", routers[1]!.port)];

  it("a third-party-style module (malloc, _start, ABI 0.2.1, every import) loads and routes", async () => {
    const runner = await startRunner(bootstrap([wasmFilter(await thirdPartyModuleFile("route"), ""), tcpProxy("egress-router1")], clusters()));
    try {
      assert.equal((await exchange(runner.listenerPort("main"), "hi")).reply, "r2:hi");
    } finally {
      await runner.close();
    }
  });

  it("a paused filter holds back tcp_proxy until it continues; the cluster it sets then applies", async () => {
    const runner = await startRunner(bootstrap([wasmFilter(await thirdPartyModuleFile("pause-then-route"), ""), tcpProxy("egress-router1")], clusters()));
    try {
      const before = routers[1]!.accepted;
      assert.equal((await exchange(runner.listenerPort("main"), "late")).reply, "r2:late");
      assert.equal(routers[1]!.accepted, before + 1);
    } finally {
      await runner.close();
    }
  });

  it("a trap fails closed by default: connection closed, trap counted; the failed VM stays failed, so the next one is closed too", async () => {
    const runner = await startRunner(bootstrap([wasmFilter(await thirdPartyModuleFile("trap"), ""), tcpProxy("egress-router1")], clusters()));
    try {
      const accepted = routers[0]!.accepted + routers[1]!.accepted;
      assert.ok((await exchange(runner.listenerPort("main"), "a")).closedEmpty);
      assert.ok((await exchange(runner.listenerPort("main"), "b")).closedEmpty);
      assert.equal(routers[0]!.accepted + routers[1]!.accepted, accepted, "no upstream connection may be made");
      const stats = (await adminGet(runner, "/stats")).body;
      assert.match(stats, /^wasm_filter\.wasmerang\.traps: 1$/m);
      assert.match(stats, /^listener\.127\.0\.0\.1_0\.downstream_cx_filter_closed: 2$/m);
    } finally {
      await runner.close();
    }
  });

  it("with fail_open a trap lets the connection through to tcp_proxy's own cluster, and later ones bypass the failed VM", async () => {
    const runner = await startRunner(bootstrap([wasmFilter(await thirdPartyModuleFile("trap"), "", { fail_open: true }), tcpProxy("egress-router1")], clusters()));
    try {
      assert.equal((await exchange(runner.listenerPort("main"), "open")).reply, "r1:open");
      assert.equal((await exchange(runner.listenerPort("main"), "again")).reply, "r1:again");
      assert.match((await adminGet(runner, "/stats")).body, /^wasm_filter\.wasmerang\.traps: 1$/m);
    } finally {
      await runner.close();
    }
  });
});

describe("filter state in access logs", () => {
  const routers = tagServers("r1", "r2");

  it("%FILTER_STATE% prints a module's property (wasm.<path>) and tcp_proxy's cluster, PLAIN or TYPED, '-' when absent", async () => {
    const log = join(dir, "filter-state.log");
    const format = "%FILTER_STATE(wasm.wasmerang.rule:PLAIN)% %FILTER_STATE(envoy.tcp_proxy.cluster:PLAIN)% %FILTER_STATE(wasm.wasmerang.rule)% %FILTER_STATE(absent)%\n";
    const runner = await startRunner(bootstrap([wasmFilter(await thirdPartyModuleFile("record-rule"), ""),
      tcpProxy("egress-router1", { access_log: [fileAccessLog(log, format)] })],
    [staticCluster("egress-router1", routers[0]!.port), staticCluster("egress-router2", routers[1]!.port)]));
    try {
      assert.equal((await exchange(runner.listenerPort("main"), "x")).reply, "r2:x");
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(readFileSync(log, "utf8"), "ten egress-router2 \"ten\" -\n");
    } finally {
      await runner.close();
    }
  });
});

describe("the filter's decision in access logs (record_decision)", () => {
  const routers = tagServers("r1", "r2");
  const format = "%FILTER_STATE(wasm.wasmerang.rule:PLAIN)% %FILTER_STATE(wasm.wasmerang.outcome:PLAIN)% %FILTER_STATE(wasm.wasmerang.cluster:PLAIN)%\n";
  const policy = JSON.stringify({ record_decision: true, rules: [{ name: "loopback", match: { source_cidrs: ["127.0.0.0/8"] }, action: { cluster: "egress-router2" } }] });

  it("tcp_proxy's access log prints the rule, outcome and cluster of each connection", async () => {
    const log = join(dir, "decision-tcp.log");
    const runner = await startRunner(bootstrap([wasmFilter(FILTER_WASM, policy), tcpProxy("egress-router1", { access_log: [fileAccessLog(log, format)] })],
      [staticCluster("egress-router1", routers[0]!.port), staticCluster("egress-router2", routers[1]!.port)]));
    try {
      assert.equal((await exchange(runner.listenerPort("main"), "x")).reply, "r2:x");
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(readFileSync(log, "utf8"), "loopback route egress-router2\n");
    } finally {
      await runner.close();
    }
  });

  it("the HTTP connection manager's access log prints them per request", async () => {
    const log = join(dir, "decision-http.log");
    const manager = httpConnectionManager({ cluster_header: "x-wasmerang-cluster" }, [wasmFilter(FILTER_WASM, policy, {}, "http")],
      { access_log: [fileAccessLog(log, format)] });
    const runner = await startRunner(bootstrap([manager], [staticCluster("egress-router2", routers[1]!.port)], { name: "http" }));
    try {
      await fetch(`http://127.0.0.1:${runner.listenerPort("http")}/p`).then((response) => response.text());
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(readFileSync(log, "utf8"), "loopback route egress-router2\n");
    } finally {
      await runner.close();
    }
  });
});

describe("shared data by vm_id", () => {
  const routers = tagServers("r1", "r2");

  /** Two listeners: "writer" runs the tick module (it stores k=v), "reader" routes to egress-router2 when k exists. */
  async function twoListeners(writerVm: string, readerVm: string): Promise<object> {
    const clusters = [staticCluster("egress-router1", routers[0]!.port), staticCluster("egress-router2", routers[1]!.port)];
    const writer = bootstrap([wasmFilter(await thirdPartyModuleFile("tick"), "", { vm_config: { vm_id: writerVm, runtime: "envoy.wasm.runtime.v8", code: { local: { filename: await thirdPartyModuleFile("tick") } } } }),
      tcpProxy("egress-router1")], clusters) as { static_resources: { listeners: { name: string }[] } };
    const reader = bootstrap([wasmFilter(await thirdPartyModuleFile("shared-reader"), "", { vm_config: { vm_id: readerVm, runtime: "envoy.wasm.runtime.v8", code: { local: { filename: await thirdPartyModuleFile("shared-reader") } } } }),
      tcpProxy("egress-router1")], clusters) as { static_resources: { listeners: { name: string }[] } };
    writer.static_resources.listeners[0]!.name = "writer";
    reader.static_resources.listeners[0]!.name = "reader";
    writer.static_resources.listeners.push(reader.static_resources.listeners[0]!);
    return writer;
  }

  it("a bootstrap Wasm service (envoy.bootstrap.wasm) runs its root context: what it stores, a filter with its vm_id reads", async () => {
    const config = await twoListeners("shared", "shared") as { static_resources: { listeners: object[] }; bootstrap_extensions?: object[] };
    const service = config.static_resources.listeners.shift() as { filter_chains: { filters: { typed_config: { config: object } }[] }[] };
    config.bootstrap_extensions = [{ name: "envoy.bootstrap.wasm", typed_config: {
      "@type": "type.googleapis.com/envoy.extensions.wasm.v3.WasmService", singleton: true, config: service.filter_chains[0]!.filters[0]!.typed_config.config } }];
    const runner = await startRunner(config);
    try {
      assert.equal((await exchange(runner.listenerPort("reader"), "b")).reply, "r2:b");
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.match((await adminGet(runner, "/stats")).body, /^wasmcustom\.ticks: [1-9]\d*$/m, "the service's ticks run");
    } finally {
      await runner.close();
    }
  });

  it("filters with the same vm_id share one store, as Envoy's shared data is per vm_id; other vm_ids do not see it", async () => {
    const same = await startRunner(await twoListeners("shared", "shared"));
    try {
      assert.equal((await exchange(same.listenerPort("reader"), "s")).reply, "r2:s");
    } finally {
      await same.close();
    }
    const apart = await startRunner(await twoListeners("one", "other"));
    try {
      assert.equal((await exchange(apart.listenerPort("reader"), "a")).reply, "r1:a");
    } finally {
      await apart.close();
    }
  });
});

describe("host services", () => {
  it("tick timers and shared data work for a module that asks for them", async () => {
    const filter = await FilterHarness.load({ module: await buildThirdPartyModule("tick"), configuration: "" });
    try {
      await new Promise((resolve) => setTimeout(resolve, 200));
      const ticks = filter.metric("ticks") ?? 0;
      assert.ok(ticks >= 3 && ticks <= 12, `${ticks} ticks in 200 ms at a 20 ms period`);
      assert.equal(filter.sharedData("k")?.toString(), "v");
    } finally {
      filter.close();
    }
    const after = filter.metric("ticks");
    await new Promise((resolve) => setTimeout(resolve, 60));
    assert.equal(filter.metric("ticks"), after, "closing the plugin stops the timer");
  });
});
