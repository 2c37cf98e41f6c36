// Reliability of what operators and outages touch: reloads that are all-or-nothing, VMs that grow
// without bound, HTTP timeouts as Envoy defines them, the egress router's idle timeout, admin cost
// with many clusters, and configuration or modules that are not what they claim.
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer as createHttpServer } from "node:http";
import { mkdtempSync, writeFileSync } from "node:fs";
import { connect, createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { stringify } from "yaml";
import { loadRunnerConfig } from "../src/envoy/load.js";
import { ConfigError } from "../src/envoy/errors.js";
import { Allowlist } from "../src/egress/allowlist.js";
import { encodeProxyHeader } from "../src/egress/proxy-protocol.js";
import { EgressRouter } from "../src/egress/router.js";
import { silentLogger } from "../src/logging.js";
import { renderPrometheus, type StatSample } from "../src/server/admin-render.js";
import { spawnRunner } from "./cli-process.js";
import { buildThirdPartyModule } from "./fixtures/third-party-module.js";
import { FILTER_WASM, REPO } from "./helpers.js";
import {
  adminGet, bootstrap, captureLogger, exchange, fileAccessLog, httpConnectionManager, readExactly, startEchoServer, startRunner, startTagServer, staticCluster,
  stopServer, tcpProxy, wasmFilter,
} from "./net-helpers.js";

const LISTENING = /listener 'main' on 127\.0\.0\.1:(\d+)/;

function tempFile(name: string, content: string | Uint8Array): string {
  const file = join(mkdtempSync(join(tmpdir(), "wasmerang-ops-")), name);
  writeFileSync(file, content);
  return file;
}

describe("reloads are all or nothing", { timeout: 30_000 }, () => {
  it("an access-log path that cannot be opened refuses the reload; the process and its connections go on", async () => {
    const backend = await startTagServer("a");
    const file = tempFile("envoy.yaml", stringify(bootstrap([tcpProxy("a")], [staticCluster("a", backend.port)])));
    const cli = spawnRunner(file);
    try {
      const port = Number((await cli.waitFor(LISTENING))[1]);
      const open = connect({ port, host: "127.0.0.1", allowHalfOpen: true });
      const reply = readExactly(open, "a:kept".length);
      await once(open, "connect");
      writeFileSync(file, stringify(bootstrap([tcpProxy("a", { access_log: [fileAccessLog("/nonexistent-dir/access.log", "%BYTES_SENT%\n")] })],
        [staticCluster("a", backend.port)], { address: { socket_address: { address: "127.0.0.1", port_value: port } } })));
      cli.child.kill("SIGHUP");
      await cli.waitFor(/reload refused, the running configuration keeps serving: .*access_log: cannot open '\/nonexistent-dir\/access\.log': ENOENT/);
      open.end("kept");
      assert.equal((await reply).toString(), "a:kept");
      assert.equal((await exchange(port, "new")).reply, "a:new");
      assert.equal(cli.child.exitCode, null);
      assert.doesNotMatch(cli.output(), /configuration reloaded/);
    } finally {
      cli.child.kill("SIGKILL");
      await backend.close();
    }
  });

  it("a listener that cannot bind refuses the reload and leaves the old listener accepting", async () => {
    const backend = await startTagServer("a");
    const taken = createServer().listen(0, "127.0.0.1");
    await once(taken, "listening");
    const runner = await startRunner(bootstrap([tcpProxy("a")], [staticCluster("a", backend.port)]));
    try {
      const port = runner.listenerPort("main");
      const moved = await loadConfig(bootstrap([tcpProxy("a")], [staticCluster("a", backend.port)],
        { address: { socket_address: { address: "127.0.0.1", port_value: (taken.address() as AddressInfo).port } } }));
      await assert.rejects(runner.reload(moved), /cannot bind .*EADDRINUSE/);
      assert.equal(runner.listenerPort("main"), port);
      assert.equal((await exchange(port, "still")).reply, "a:still");
    } finally {
      await runner.close();
      taken.close();
      await backend.close();
    }
  });
});

describe("a reload's parsing and validation run off the serving thread", { timeout: 30_000 }, () => {
  it("loads in a worker what loadRunnerConfig loads here, Buffers included, and reports configuration errors alike", async () => {
    // The compiled build, as the command runs it: the worker is the compiled load-worker.js.
    const built = (path: string): Promise<unknown> => import(join(REPO, "build/src", path));
    const { loadRunnerConfigOffThread } = await built("envoy/load-off-thread.js") as typeof import("../src/envoy/load-off-thread.js");
    const { ConfigError: BuiltConfigError } = await built("envoy/errors.js") as typeof import("../src/envoy/errors.js");
    const file = tempFile("envoy.yaml", stringify(bootstrap([wasmFilter(FILTER_WASM, '{"default":{"cluster":"a"}}'), tcpProxy("a")], [staticCluster("a", 1)])));
    const here = await loadRunnerConfig(file);
    const there = await loadRunnerConfigOffThread(file);
    assert.deepEqual(there, here);
    assert.ok(Buffer.isBuffer(there.listeners[0]!.wasmFilters[0]!.configuration));
    const broken = tempFile("envoy.yaml", "static_resources: {listeners: [{name: main, colour: blue}]}\n");
    await assert.rejects(loadRunnerConfigOffThread(broken), (error: Error) => error instanceof BuiltConfigError && /colour: unknown field/.test(error.message));
  });
});

async function loadConfig(config: object) {
  return loadRunnerConfig(tempFile("envoy.yaml", stringify(config)));
}

describe("Wasm VMs", { timeout: 30_000 }, () => {
  it("a VM that grows past its memory limit is failed (fail closed), and stays failed", async () => {
    const module = tempFile("grow.wasm", await buildThirdPartyModule("grow"));
    const echo = await startEchoServer();
    const runner = await startRunner(bootstrap([wasmFilter(module, ""), tcpProxy("egress-router2")], [staticCluster("egress-router2", echo.port)]),
      silentLogger, { wasmMemoryLimitBytes: 6 * 2 ** 20 });
    try {
      const port = runner.listenerPort("main");
      const attempt = async () => {
        const socket = connect({ port, host: "127.0.0.1" });
        socket.on("error", () => undefined);
        await once(socket, "connect");
        socket.write("ping");
        const outcome = await Promise.race([readExactly(socket, 4, 2000).then(() => "echoed"), once(socket, "close").then(() => "closed")]);
        socket.destroy();
        return outcome;
      };
      // 64 KiB + 4 MiB fits in 6 MiB; a second 4 MiB does not.
      assert.deepEqual([await attempt(), await attempt(), await attempt()], ["echoed", "closed", "closed"]);
      const stats = (await adminGet(runner, "/stats")).body;
      assert.match(stats, /^wasm_filter\.wasmerang\.traps: 1$/m);
    } finally {
      await runner.close();
      await stopServer(echo);
    }
  });
});

describe("a filter that never returns", { timeout: 30_000 }, () => {
  it("traps at the call deadline: the connection is closed (fail closed), admin and other connections go on", async () => {
    const module = tempFile("spin.wasm", await buildThirdPartyModule("spin-on-data"));
    const echo = await startEchoServer();
    const { logger, lines } = captureLogger();
    const runner = await startRunner(bootstrap([wasmFilter(module, ""), tcpProxy("egress-router2")], [staticCluster("egress-router2", echo.port)]),
      logger, { wasmCallDeadlineMs: 200, wasmLogLevel: "critical" });
    try {
      const socket = connect({ port: runner.listenerPort("main"), host: "127.0.0.1" });
      socket.on("error", () => undefined);
      await once(socket, "connect");
      const started = Date.now();
      socket.write("spin");
      await once(socket, "close");
      assert.ok(Date.now() - started >= 150, "closed at the deadline");
      assert.equal((await adminGet(runner, "/ready")).status, 200);
      assert.match((await adminGet(runner, "/stats")).body, /^wasm_filter\.wasmerang\.traps: 1$/m);
      assert.ok(lines().some((l) => /wasm trap in proxy_on_downstream_data: .*past its deadline of 200 ms/.test(l.msg)), JSON.stringify(lines()));
    } finally {
      await runner.close();
      await stopServer(echo);
    }
  });
});

describe("HTTP timeouts as Envoy defines them", { timeout: 30_000 }, () => {
  async function slowUpstream(headersAfterMs: number, bodyPauseMs: number) {
    const server = createHttpServer((request, response) => {
      request.resume();
      setTimeout(() => {
        response.writeHead(200, { "content-type": "text/plain" });
        response.write("first ");
        setTimeout(() => response.end("second"), bodyPauseMs);
      }, headersAfterMs);
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    return server;
  }

  it("connect_timeout bounds the connect only: a slow answer and a pausing body get through", async () => {
    const upstream = await slowUpstream(600, 600);
    const runner = await startRunner(bootstrap([httpConnectionManager({ cluster: "slow" })],
      [{ ...staticCluster("slow", (upstream.address() as AddressInfo).port), connect_timeout: "0.25s" }]));
    try {
      const response = await fetch(`http://127.0.0.1:${runner.listenerPort("main")}/`);
      assert.equal(response.status, 200);
      assert.equal(await response.text(), "first second");
    } finally {
      await runner.close();
      upstream.close();
    }
  });

  it("route.timeout ends a request whose response does not complete in time with 504 (UT)", async () => {
    const upstream = await slowUpstream(1500, 0);
    const runner = await startRunner(bootstrap([httpConnectionManager({ cluster: "slow", timeout: "0.3s" })],
      [staticCluster("slow", (upstream.address() as AddressInfo).port)]));
    try {
      const response = await fetch(`http://127.0.0.1:${runner.listenerPort("main")}/`);
      assert.equal(response.status, 504);
      assert.equal(await response.text(), "upstream request timeout");
      assert.match((await adminGet(runner, "/stats")).body, /^cluster\.slow\.upstream_rq_timeout: 1$/m);
    } finally {
      await runner.close();
      upstream.close();
    }
  });

  it("stream_idle_timeout ends a request on which nothing moves with 408", async () => {
    const upstream = await slowUpstream(1500, 0);
    const runner = await startRunner(bootstrap([httpConnectionManager({ cluster: "slow", timeout: "0s" }, [], { stream_idle_timeout: "0.3s" })],
      [staticCluster("slow", (upstream.address() as AddressInfo).port)]));
    try {
      const response = await fetch(`http://127.0.0.1:${runner.listenerPort("main")}/`);
      assert.equal(response.status, 408);
    } finally {
      await runner.close();
      upstream.close();
    }
  });

  it("an absolute-form request target is routed by its path, with its host as the authority", async () => {
    const upstream = createHttpServer((request, response) => response.end(`${request.headers.host} ${request.url}`));
    upstream.listen(0, "127.0.0.1");
    await once(upstream, "listening");
    const runner = await startRunner(bootstrap([httpConnectionManager({ cluster: "web" })], [staticCluster("web", (upstream.address() as AddressInfo).port)]));
    try {
      const socket = connect({ port: runner.listenerPort("main"), host: "127.0.0.1" });
      await once(socket, "connect");
      socket.write("GET http://api.example/v1/items?x=1 HTTP/1.1\r\nhost: ignored.example\r\n\r\n");
      const reply = await new Promise<string>((resolve) => socket.once("data", (chunk: Buffer) => resolve(chunk.toString())));
      assert.match(reply, /^HTTP\/1\.1 200[^]*api\.example \/v1\/items\?x=1$/);
      socket.destroy();
    } finally {
      await runner.close();
      upstream.close();
    }
  });
});

describe("the egress router's idle timeout", { timeout: 30_000 }, () => {
  it("closes a forwarded connection on which nothing moves, counts it, and spares one that is busy", async () => {
    const echo = await startEchoServer();
    const router = await EgressRouter.start({
      listen: { address: "127.0.0.1", port: 0 }, allowlist: Allowlist.parse([`127.0.0.1/32:${echo.port}`]),
      headerTimeoutMs: 1000, connectTimeoutMs: 1000, idleTimeoutMs: 300, maxConnections: 10, logger: silentLogger,
    });
    try {
      const header = encodeProxyHeader(2, { address: "10.0.0.1", port: 1 }, { address: "127.0.0.1", port: echo.port });
      const open = async () => {
        const socket = connect({ port: router.port, host: "127.0.0.1" });
        socket.on("error", () => undefined);
        await once(socket, "connect");
        socket.write(Buffer.concat([header, Buffer.from("hi")]));
        await readExactly(socket, 2);
        return socket;
      };
      const silent = await open();
      const busy = await open();
      const started = Date.now();
      const silentClosed = once(silent, "close");
      for (let i = 0; i < 8; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        busy.write("x");
      }
      await silentClosed;
      assert.ok(Date.now() - started >= 250);
      assert.equal(busy.destroyed, false, "a connection moving bytes stays");
      assert.equal(router.counter("idleTimeout"), 1);
      busy.destroy();
    } finally {
      await router.close();
      await stopServer(echo);
    }
  });
});

describe("admin with many clusters", { timeout: 30_000 }, () => {
  it("Prometheus tag extraction takes the longest known name, and scales with the stats, not stats times names", async () => {
    const clusters = Array.from({ length: 10_000 }, (_, i) => `outbound|${8000 + (i % 100)}||svc-${i}.ns.svc.cluster.local`);
    clusters.push("a", "a.b");
    const samples: StatSample[] = clusters.flatMap((name) => ["upstream_cx_total", "upstream_cx_active", "upstream_cx_connect_fail"]
      .map((stat) => ({ name: `cluster.${name}.${stat}`, value: 1, kind: "counter" as const })));
    const text = await renderPrometheus(samples, { clusters, listeners: [], tcpPrefixes: [] });
    assert.match(text, /^envoy_cluster_upstream_cx_total\{envoy_cluster_name="a\.b"\} 1$/m);
    assert.match(text, /^envoy_cluster_upstream_cx_total\{envoy_cluster_name="outbound\|8042\|\|svc-9942\.ns\.svc\.cluster\.local"\} 1$/m);
    assert.equal(text.split("\n").filter((line) => line.startsWith("envoy_cluster_")).length, samples.length);
  });
});

describe("inputs that are not what they claim", () => {
  it("a YAML file with bytes that are not UTF-8 is refused, naming the line", async () => {
    const file = tempFile("envoy.yaml", Buffer.concat([Buffer.from("static_resources:\n  clusters:\n  - name: caf"), Buffer.from([0xe9]), Buffer.from("\n")]));
    await assert.rejects(loadRunnerConfig(file), (error: Error) => error instanceof ConfigError && /line 3: not UTF-8/.test(error.message));
  });

  it("a module file that is not Wasm is refused without quoting its bytes", async () => {
    const file = tempFile("secret.wasm", "SECRET-TOKEN=abcdef\n");
    await assert.rejects(startRunner(bootstrap([wasmFilter(file, ""), tcpProxy("a")], [staticCluster("a", 1)])), (error: Error) => {
      assert.match(error.message, /not a WebAssembly module \(it does not start with the \\0asm magic\)/);
      assert.doesNotMatch(error.message, /SECRET|53 45 43/);
      return true;
    });
  });
});

describe("allowlists: metadata services and IPv6 forms of IPv4 need explicit rules", () => {
  const everything = Allowlist.parse(["0.0.0.0/0:*", "[::/0]:*"]);
  for (const address of ["100.100.100.200", "100.64.0.1", "fd00:ec2::254", "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "::7f00:1", "2002:7f00:1::1", "2001:0:4136:e378::1"]) {
    it(`${address} is denied by 0.0.0.0/0 and ::/0`, () => assert.equal(everything.check(address, 80).allowed, false));
  }
  it("an explicit rule inside the range allows it", () => {
    assert.equal(Allowlist.parse(["[64:ff9b::/96]:443"]).check("64:ff9b::a00:1", 443).allowed, true);
    assert.equal(everything.check("8.8.8.8", 53).allowed, true);
  });
});
