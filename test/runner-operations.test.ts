// Runner operations: SNI from tls_inspector, reload (good and bad), graceful drain, and the
// command line's SIGHUP and SIGTERM.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, writeFileSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { describe, it } from "node:test";
import { stringify } from "yaml";
import { toRunnerConfig } from "../src/envoy/load.js";
import { FILTER_WASM, REPO } from "./helpers.js";
import { adminGet, bootstrap, exchange, startRunner, staticCluster, tagServers, tcpProxy, wasmFilter } from "./net-helpers.js";

const servers = tagServers("a", "b");
const serverPort = (index: number) => servers[index]!.port;

const policy = (cluster: string) => JSON.stringify({ log_level: "warn", default: { cluster } });

describe("tls_inspector", () => {
  it("the filter routes by the SNI of a real TLS ClientHello", async () => {
    const config = bootstrap(
      [wasmFilter(FILTER_WASM, JSON.stringify({ rules: [{ match: { server_names: ["*.b.example"] }, action: { cluster: "b" } }], default: { cluster: "a" } })), tcpProxy("a")],
      [staticCluster("a", serverPort(0)), staticCluster("b", serverPort(1))],
      { listener_filters: [{ name: "envoy.filters.listener.tls_inspector", typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector" } }] },
    );
    const runner = await startRunner(config);
    try {
      const before = servers[1]!.accepted;
      // The tag server is not TLS, so the handshake fails; what counts is where the bytes went.
      const socket = tlsConnect({ port: runner.listenerPort("main"), host: "127.0.0.1", servername: "api.b.example", rejectUnauthorized: false });
      socket.on("error", () => undefined);
      for (let i = 0; i < 100 && servers[1]!.accepted === before; i++) await new Promise((resolve) => setTimeout(resolve, 20));
      socket.destroy();
      assert.equal(servers[1]!.accepted, before + 1);
      // Plain TCP (no ClientHello) goes on with no SNI.
      assert.equal((await exchange(runner.listenerPort("main"), "plain")).reply, "a:plain");
    } finally {
      await runner.close();
    }
  });
});

describe("reload and drain", () => {
  it("a valid new configuration takes new connections while an open one finishes on the old", async () => {
    const runner = await startRunner(bootstrap([wasmFilter(FILTER_WASM, policy("a")), tcpProxy("a")], [staticCluster("a", serverPort(0)), staticCluster("b", serverPort(1))]));
    try {
      const port = runner.listenerPort("main");
      const open = netConnect({ port, host: "127.0.0.1", allowHalfOpen: true });
      const chunks: Buffer[] = [];
      open.on("data", (chunk: Buffer) => chunks.push(chunk));
      await once(open, "connect");
      open.write("old ");
      const reloaded = bootstrap([wasmFilter(FILTER_WASM, policy("b")), tcpProxy("a")], [staticCluster("a", serverPort(0)), staticCluster("b", serverPort(1))]) as
        { static_resources: { listeners: { address: { socket_address: { port_value: number } } }[] } };
      reloaded.static_resources.listeners[0]!.address.socket_address.port_value = port;
      await runner.reload(toRunnerConfig(reloaded, "reloaded.yaml"));
      assert.equal(runner.retiredGenerations, 1, "the old configuration stays while its connection is open");
      assert.equal((await exchange(port, "new")).reply, "b:new");
      open.end("connection");
      await once(open, "close");
      assert.equal(Buffer.concat(chunks).toString(), "a:old connection");
      for (let i = 0; i < 50 && runner.retiredGenerations > 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.equal(runner.retiredGenerations, 0, "and is released when that connection ends");
    } finally {
      await runner.close();
    }
  });

  it("an invalid new configuration is refused and the old one keeps serving", async () => {
    const runner = await startRunner(bootstrap([wasmFilter(FILTER_WASM, policy("a")), tcpProxy("a")], [staticCluster("a", serverPort(0))]));
    try {
      const port = runner.listenerPort("main");
      const broken = bootstrap([wasmFilter(FILTER_WASM, "{\"rules\": [1]}"), tcpProxy("a")], [staticCluster("a", serverPort(0))]);
      await assert.rejects(runner.reload(toRunnerConfig(broken, "broken.yaml")), /rules\[0\]: must be an object/);
      assert.equal((await exchange(port, "still")).reply, "a:still");
    } finally {
      await runner.close();
    }
  });

  it("drain stops accepting, lets an open connection finish, then closes what is left at the deadline", async () => {
    const runner = await startRunner(bootstrap([tcpProxy("a")], [staticCluster("a", serverPort(0))]));
    const port = runner.listenerPort("main");
    const open = netConnect({ port, host: "127.0.0.1", allowHalfOpen: true });
    open.on("error", () => undefined);
    const chunks: Buffer[] = [];
    open.on("data", (chunk: Buffer) => chunks.push(chunk));
    await once(open, "connect");
    const draining = runner.drain(2000);
    assert.equal((await adminGet(runner, "/ready")).status, 503);
    await assert.rejects(exchange(port, "late"), /ECONNREFUSED/);
    open.end("finishing");
    await draining;
    assert.equal(Buffer.concat(chunks).toString(), "a:finishing");

    const second = await startRunner(bootstrap([tcpProxy("a")], [staticCluster("a", serverPort(0))]));
    const stuck = netConnect({ port: second.listenerPort("main"), host: "127.0.0.1" });
    stuck.on("error", () => undefined);
    await once(stuck, "connect");
    const started = Date.now();
    await second.drain(300);
    await once(stuck, "close");
    assert.ok(Date.now() - started >= 250, "the deadline is honoured");
  });
});

describe("command line", () => {
  it("wasmerang run --watch reloads when the file changes", async () => {
    const dir = mkdtempSync(join(tmpdir(), "wasmerang-watch-"));
    const file = join(dir, "envoy.yaml");
    writeFileSync(file, stringify(bootstrap([wasmFilter(FILTER_WASM, policy("a")), tcpProxy("a")], [staticCluster("a", serverPort(0)), staticCluster("b", serverPort(1))])));
    const child = spawn(process.execPath, [join(REPO, "build/src/cli.js"), "run", "-c", file, "--watch", "--log-format", "json", "--wasm-log-level", "warn"]);
    let output = "";
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    try {
      for (let i = 0; i < 200 && !/listener 'main' on/.test(output); i++) await new Promise((resolve) => setTimeout(resolve, 25));
      const port = Number(/listener 'main' on 127\.0\.0\.1:(\d+)/.exec(output)![1]);
      writeFileSync(file, stringify(bootstrap([wasmFilter(FILTER_WASM, policy("b")), tcpProxy("a")],
        [staticCluster("a", serverPort(0)), staticCluster("b", serverPort(1))], { address: { socket_address: { address: "127.0.0.1", port_value: port } } })));
      for (let i = 0; i < 200 && !/configuration reloaded/.test(output); i++) await new Promise((resolve) => setTimeout(resolve, 25));
      assert.match(output, /configuration reloaded/);
      assert.equal((await exchange(port, "w")).reply, "b:w");
    } finally {
      child.kill("SIGKILL");
    }
  });

  it("wasmerang run reloads on SIGHUP (refusing a broken file) and drains on SIGTERM", async () => {
    const dir = mkdtempSync(join(tmpdir(), "wasmerang-cli-"));
    const file = join(dir, "envoy.yaml");
    writeFileSync(file, stringify(bootstrap([wasmFilter(FILTER_WASM, policy("a")), tcpProxy("a")], [staticCluster("a", serverPort(0)), staticCluster("b", serverPort(1))])));
    const child = spawn(process.execPath, [join(REPO, "build/src/cli.js"), "run", "-c", file, "--log-format", "json", "--wasm-log-level", "warn"]);
    let output = "";
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const waitFor = async (pattern: RegExp) => {
      for (let i = 0; i < 200 && !pattern.test(output); i++) await new Promise((resolve) => setTimeout(resolve, 25));
      assert.match(output, pattern);
    };
    try {
      await waitFor(/listener 'main' on 127\.0\.0\.1:(\d+)/);
      const port = Number(/listener 'main' on 127\.0\.0\.1:(\d+)/.exec(output)![1]);
      assert.equal((await exchange(port, "1")).reply, "a:1");
      writeFileSync(file, "static_resources: {listeners: [{name: main, colour: blue}]}\n");
      child.kill("SIGHUP");
      await waitFor(/reload refused, the running configuration keeps serving: .*static_resources\.listeners\[0\]\.colour: unknown field/);
      assert.equal((await exchange(port, "2")).reply, "a:2");
      // Same port as before, so that the listener is kept.
      writeFileSync(file, stringify(bootstrap([wasmFilter(FILTER_WASM, policy("b")), tcpProxy("a")],
        [staticCluster("a", serverPort(0)), staticCluster("b", serverPort(1))], { address: { socket_address: { address: "127.0.0.1", port_value: port } } })));
      child.kill("SIGHUP");
      await waitFor(/configuration reloaded/);
      assert.equal((await exchange(port, "3")).reply, "b:3");
      child.kill("SIGTERM");
      const [code] = await once(child, "exit");
      assert.equal(code, 0);
      assert.match(output, /SIGTERM: draining/);
    } finally {
      child.kill("SIGKILL");
    }
  });
});
