// The local runner end to end, with real sockets on loopback.
import assert from "node:assert/strict";
import { once } from "node:events";
import { readFileSync, mkdtempSync } from "node:fs";
import { connect, createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { toRunnerConfig, ConfigError } from "../src/envoy/load.js";
import { FILTER_WASM } from "./helpers.js";
import {
  adminGet, bootstrap, exchange, startRunner, staticCluster, tagServers, tcpProxy, wasmFilter,
} from "./net-helpers.js";

describe("runner routes with the project's filter", () => {
  const routers = tagServers("r1", "r2");

  it("clients with even and odd source addresses reach different egress clusters; admin shows the counts", async () => {
    const runner = await startRunner(bootstrap(
      [wasmFilter(FILTER_WASM, "standalone"), tcpProxy("egress-router1")],
      [staticCluster("egress-router1", routers[0]!.port), staticCluster("egress-router2", routers[1]!.port)],
    ));
    try {
      const port = runner.listenerPort("main");
      for (const [source, expected] of [["127.0.0.10", "r1"], ["127.0.0.11", "r2"], ["127.0.0.12", "r1"], ["127.0.0.13", "r2"]] as const) {
        const { reply } = await exchange(port, `hello from ${source}`, source);
        assert.equal(reply, `${expected}:hello from ${source}`);
      }
      const stats = (await adminGet(runner, "/stats")).body;
      assert.match(stats, /^wasmcustom\.wasmerang\.routed: 4$/m);
      assert.match(stats, /^wasmcustom\.wasmerang\.cluster\.egress-router2\.routed: 2$/m);
      assert.match(stats, /^cluster\.egress-router1\.upstream_cx_total: 2$/m);
      assert.match(stats, /^listener\.127\.0\.0\.1_0\.downstream_cx_total: 4$/m);
      assert.match(stats, /^tcp\.ingress\.downstream_cx_rx_bytes_total: \d+$/m);
      const prometheus = (await adminGet(runner, "/stats/prometheus")).body;
      assert.match(prometheus, /^envoy_cluster_upstream_cx_total\{envoy_cluster_name="egress-router2"\} 2$/m);
      assert.match(prometheus, /^wasmerang_routed 4$/m);
      assert.match((await adminGet(runner, "/clusters")).body, new RegExp(`^egress-router1::127\\.0\\.0\\.1:${routers[0]!.port}::health_flags::healthy$`, "m"));
      assert.deepEqual(await adminGet(runner, "/ready"), { status: 200, body: "LIVE\n" });
    } finally {
      await runner.close();
    }
  });

  it("weighted_clusters override the filter's choice (Envoy's rule)", async () => {
    const runner = await startRunner(bootstrap(
      [wasmFilter(FILTER_WASM, "standalone"), {
        name: "envoy.filters.network.tcp_proxy",
        typed_config: {
          "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
          stat_prefix: "w",
          weighted_clusters: { clusters: [{ name: "egress-router2", weight: 1 }] },
        },
      }],
      [staticCluster("egress-router1", routers[0]!.port), staticCluster("egress-router2", routers[1]!.port)],
    ));
    try {
      assert.equal((await exchange(runner.listenerPort("main"), "x", "127.0.0.10")).reply, "r2:x");
    } finally {
      await runner.close();
    }
  });

  it("an unknown cluster closes the downstream, counts no_route and logs NC", async () => {
    const dir = mkdtempSync(join(tmpdir(), "wasmerang-"));
    const logPath = join(dir, "access.log");
    const runner = await startRunner(bootstrap(
      [wasmFilter(FILTER_WASM, JSON.stringify({ default: { cluster: "nowhere" } })), tcpProxy("egress-router1", {
        access_log: [{ name: "file", typed_config: { "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog", path: logPath,
          log_format: { text_format_source: { inline_string: "%DOWNSTREAM_REMOTE_ADDRESS% %UPSTREAM_CLUSTER% %RESPONSE_FLAGS% %BYTES_RECEIVED%\n" } } } }],
      })],
      [staticCluster("egress-router1", routers[0]!.port)],
    ));
    try {
      const { closedEmpty } = await exchange(runner.listenerPort("main"), "x", "127.0.0.20");
      assert.ok(closedEmpty);
      assert.match((await adminGet(runner, "/stats")).body, /^tcp\.ingress\.downstream_cx_no_route: 1$/m);
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.match(readFileSync(logPath, "utf8"), /^127\.0\.0\.20:\d+ - NC \d+$/m);
    } finally {
      await runner.close();
    }
  });

  it("a refused upstream closes the downstream with UF and counts connect_fail", async () => {
    const unused = createServer().listen(0, "127.0.0.1");
    await once(unused, "listening");
    const deadPort = (unused.address() as AddressInfo).port;
    unused.close();
    const runner = await startRunner(bootstrap([tcpProxy("dead", { max_connect_attempts: 2 })], [staticCluster("dead", deadPort)]));
    try {
      assert.ok((await exchange(runner.listenerPort("main"), "x")).closedEmpty);
      assert.match((await adminGet(runner, "/stats")).body, /^cluster\.dead\.upstream_cx_connect_fail: 2$/m);
    } finally {
      await runner.close();
    }
  });

  it("half-close is propagated both ways", async () => {
    const runner = await startRunner(bootstrap([tcpProxy("egress-router1")], [staticCluster("egress-router1", routers[0]!.port)]));
    try {
      // The tag server answers only after it sees the client's FIN through the proxy.
      assert.equal((await exchange(runner.listenerPort("main"), "half")).reply, "r1:half");
    } finally {
      await runner.close();
    }
  });

  it("idle_timeout closes a silent connection and counts it", async () => {
    const runner = await startRunner(bootstrap([tcpProxy("egress-router1", { idle_timeout: "0.2s" })], [staticCluster("egress-router1", routers[0]!.port)]));
    try {
      const socket = connect({ port: runner.listenerPort("main"), host: "127.0.0.1" });
      socket.on("error", () => undefined);
      const started = Date.now();
      await once(socket, "close");
      assert.ok(Date.now() - started >= 150);
      assert.match((await adminGet(runner, "/stats")).body, /^tcp\.ingress\.idle_timeout: 1$/m);
    } finally {
      await runner.close();
    }
  });
});

describe("backpressure", () => {
  it("a client that never reads stops the upstream from being read: memory stays bounded", async () => {
    let written = 0;
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const firehose = createServer((socket) => {
      const pump = () => {
        while (written < 512 * 1024 * 1024) {
          written += chunk.length;
          if (!socket.write(chunk)) return void socket.once("drain", pump);
        }
      };
      socket.on("error", () => undefined);
      pump();
    }).listen(0, "127.0.0.1");
    await once(firehose, "listening");
    const runner = await startRunner(bootstrap([tcpProxy("firehose")], [staticCluster("firehose", (firehose.address() as AddressInfo).port)]));
    try {
      const client = connect({ port: runner.listenerPort("main"), host: "127.0.0.1" });
      client.on("error", () => undefined);
      client.pause();
      await once(client, "connect");
      await new Promise((resolve) => setTimeout(resolve, 800));
      const plateau = written;
      await new Promise((resolve) => setTimeout(resolve, 400));
      assert.ok(written < 64 * 1024 * 1024, `upstream wrote ${written} bytes into a proxy whose client never reads`);
      assert.equal(written, plateau, "the upstream kept writing: nothing is pushing back");
      client.destroy();
    } finally {
      await runner.close();
      firehose.close();
    }
  });
});

describe("configuration errors name the field", () => {
  const base = () => bootstrap([tcpProxy("a")], [staticCluster("a", 1)]) as { static_resources: { listeners: Record<string, unknown>[] } };
  const cases: [string, (c: ReturnType<typeof base>) => void, RegExp][] = [
    ["an unknown field", (c) => { c.static_resources.listeners[0]!.colour = "blue"; }, /static_resources\.listeners\[0\]\.colour: unknown field/],
    ["a wrong type", (c) => { (c.static_resources.listeners[0]!.address as { socket_address: { port_value: unknown } }).socket_address.port_value = "eighty"; },
      /static_resources\.listeners\[0\]\.address\.socket_address\.port_value: expected an integer/],
    ["an unknown @type", (c) => {
      ((c.static_resources.listeners[0]!.filter_chains as { filters: { typed_config: Record<string, string> }[] }[])[0]!.filters[0]!.typed_config)["@type"] = "type.googleapis.com/envoy.nope.v3.Nope";
    }, /filter_chains\[0\]\.filters\[0\]\.typed_config\.@type: type\.googleapis\.com\/envoy\.nope\.v3\.Nope here is not supported by the local runner/],
    ["a valid field the runner does not implement", (c) => { c.static_resources.listeners[0]!.tcp_fast_open_queue_length = 10; },
      /static_resources\.listeners\[0\]\.tcp_fast_open_queue_length: not supported by the local runner/],
    ["a bad enum", (c) => { (c as unknown as { static_resources: { clusters: Record<string, unknown>[] } }).static_resources.clusters[0]!.type = "MAGIC"; },
      /static_resources\.clusters\[0\]\.type: expected one of STATIC/],
  ];
  for (const [what, mutate, message] of cases) {
    it(what, () => {
      const config = base();
      mutate(config);
      assert.throws(() => toRunnerConfig(config, "bad.yaml"), (error: Error) => {
        assert.ok(error instanceof ConfigError);
        assert.match(error.message, /^bad\.yaml: /);
        assert.match(error.message, message);
        return true;
      });
    });
  }

  it("a filter whose configure fails refuses the listener with the filter's log", async () => {
    await assert.rejects(startRunner(bootstrap([wasmFilter(FILTER_WASM, "{\"rules\": 3}"), tcpProxy("a")], [staticCluster("a", 1)])),
      /filters\[0\]\.typed_config: plugin 'wasmerang' .*proxy_on_configure rejected the configuration: wasmerang: invalid plugin configuration: rules: must be a list/);
  });

  it("a missing module file names the field", async () => {
    await assert.rejects(startRunner(bootstrap([wasmFilter("/nonexistent.wasm", ""), tcpProxy("a")], [staticCluster("a", 1)])),
      /vm_config\.code\.local\.filename: cannot read '\/nonexistent\.wasm': ENOENT/);
  });
});
