// Runner operations: SNI from tls_inspector, reload (good and bad), graceful drain, and the
// command line's SIGHUP, SIGTERM and heap policy.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { once } from "node:events";
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, symlinkSync, truncateSync, writeFileSync } from "node:fs";
import { connect as netConnect, createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { describe, it } from "node:test";
import { stringify } from "yaml";
import { toRunnerConfig } from "../src/envoy/load.js";
import { FILTER_WASM, REPO } from "./helpers.js";
import { spawnRunner } from "./cli-process.js";
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
    const clientClosed = new Promise((resolve) => open.once("close", resolve));
    await once(open, "connect");
    const draining = runner.drain(2000);
    assert.equal((await adminGet(runner, "/ready")).status, 503);
    await assert.rejects(exchange(port, "late"), /ECONNREFUSED/);
    open.end("finishing");
    await draining;
    // The drain ends as the runner's side closes; the client reads what was sent before that.
    await clientClosed;
    assert.equal(Buffer.concat(chunks).toString(), "a:finishing");

    const second = await startRunner(bootstrap([tcpProxy("a")], [staticCluster("a", serverPort(0))]));
    const stuck = netConnect({ port: second.listenerPort("main"), host: "127.0.0.1" });
    let reset = false;
    stuck.on("error", (error: NodeJS.ErrnoException) => (reset = error.code === "ECONNRESET"));
    const closed = new Promise((resolve) => stuck.once("close", resolve));
    await once(stuck, "connect");
    const started = Date.now();
    await second.drain(300);
    await closed;
    assert.ok(Date.now() - started >= 250, "the deadline is honoured");
    assert.ok(reset, "what is cut at the deadline is reset, so that it cannot look complete");
  });
});

const LISTENING = /listener 'main' on 127\.0\.0\.1:(\d+)/;

/** Minor page faults of a process so far (Linux /proc/PID/stat, field 10). */
function minorFaults(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[7]);
}

/** Sends `bytes` through `port` to a sink and waits for the sink to have them all. */
async function relay(port: number, sink: { received: number }, bytes: number): Promise<void> {
  const target = sink.received + bytes;
  const client = netConnect({ port, host: "127.0.0.1" });
  await once(client, "connect");
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  for (let sent = 0; sent < bytes; sent += chunk.length) {
    if (!client.write(chunk)) await once(client, "drain");
  }
  for (let i = 0; i < 1000 && sink.received < target; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  client.destroy();
  assert.equal(sink.received, target);
}

describe("command line", () => {
  it("wasmerang run keeps freed read buffers mapped: relaying does not fault a page per 4 KiB", async (t) => {
    if (process.platform !== "linux") return t.skip("reads /proc");
    const sink = { received: 0 };
    const server = createServer((socket) => socket.on("data", (data: Buffer) => (sink.received += data.length)));
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const file = join(mkdtempSync(join(tmpdir(), "wasmerang-heap-")), "envoy.yaml");
    writeFileSync(file, stringify(bootstrap([tcpProxy("sink")], [staticCluster("sink", (server.address() as AddressInfo).port)])));
    const { child, waitFor } = spawnRunner(file);
    try {
      const port = Number((await waitFor(LISTENING))[1]);
      await relay(port, sink, 128 * 2 ** 20);
      const before = minorFaults(child.pid!);
      await relay(port, sink, 256 * 2 ** 20);
      const faults = minorFaults(child.pid!) - before;
      // Without the heap policy this is about one fault per 4 KiB relayed (65,536 here); with it,
      // what remains are V8's own heap pages (measured: under 8,000).
      assert.ok(faults < 16_384, `${faults} page faults while relaying 256 MiB`);
    } finally {
      child.kill("SIGKILL");
      server.close();
    }
  });

  /** A bootstrap whose filter routes everything to `cluster`, on `port` once the first run chose it. */
  const routingTo = (cluster: string, port = 0) => stringify(bootstrap([wasmFilter(FILTER_WASM, policy(cluster)), tcpProxy("a")],
    [staticCluster("a", serverPort(0)), staticCluster("b", serverPort(1))], { address: { socket_address: { address: "127.0.0.1", port_value: port } } }));

  /** Runs `change`, then waits for the n-th reload and checks where connections go. */
  async function changeAndCheck(cli: ReturnType<typeof spawnRunner>, port: number, reloads: number, change: () => void, expected: string): Promise<void> {
    change();
    const count = () => (cli.output().match(/configuration reloaded/g) ?? []).length;
    for (let i = 0; i < 600 && count() < reloads; i++) await new Promise((resolve) => setTimeout(resolve, 25));
    assert.equal(count(), reloads, cli.output());
    assert.equal((await exchange(port, "w")).reply, `${expected}:w`);
  }

  it("wasmerang run --watch follows every change: written in place, truncated and rewritten, replaced by rename (twice)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "wasmerang-watch-"));
    const file = join(dir, "envoy.yaml");
    writeFileSync(file, routingTo("a"));
    const cli = spawnRunner(file, "--watch");
    try {
      const port = Number((await cli.waitFor(LISTENING))[1]);
      const renameOver = (text: string) => () => {
        writeFileSync(join(dir, ".envoy.yaml.swp"), text);
        renameSync(join(dir, ".envoy.yaml.swp"), file);
      };
      await changeAndCheck(cli, port, 1, () => writeFileSync(file, routingTo("b", port)), "b");
      await changeAndCheck(cli, port, 2, renameOver(routingTo("a", port)), "a");
      await changeAndCheck(cli, port, 3, renameOver(routingTo("b", port)), "b");
      await changeAndCheck(cli, port, 4, () => {
        truncateSync(file, 0);
        appendFileSync(file, routingTo("a", port));
      }, "a");
    } finally {
      cli.child.kill("SIGKILL");
    }
  });

  it("wasmerang run --watch follows a Kubernetes ConfigMap's ..data symlink swaps (twice)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "wasmerang-configmap-"));
    // The layout the kubelet writes: envoy.yaml -> ..data/envoy.yaml, ..data -> ..<timestamp>.
    const publish = (version: string, text: string) => {
      mkdirSync(join(dir, `..${version}`));
      writeFileSync(join(dir, `..${version}`, "envoy.yaml"), text);
      symlinkSync(`..${version}`, join(dir, "..data_tmp"));
      renameSync(join(dir, "..data_tmp"), join(dir, "..data"));
    };
    publish("v1", routingTo("a"));
    symlinkSync(join("..data", "envoy.yaml"), join(dir, "envoy.yaml"));
    const cli = spawnRunner(join(dir, "envoy.yaml"), "--watch");
    try {
      const port = Number((await cli.waitFor(LISTENING))[1]);
      await changeAndCheck(cli, port, 1, () => publish("v2", routingTo("b", port)), "b");
      await changeAndCheck(cli, port, 2, () => publish("v3", routingTo("a", port)), "a");
    } finally {
      cli.child.kill("SIGKILL");
    }
  });

  it("wasmerang --version, durations as help shows them, and bad numbers refused", () => {
    const cli = (...args: string[]) => spawnSync(process.execPath, [join(REPO, "build/src/cli.js"), ...args], { encoding: "utf8" });
    const version = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { version: string };
    assert.equal(cli("--version").stdout.trim(), version.version);
    assert.match(cli("run", "--help").stdout, /--drain-time <duration>[^]*\(default: 10s\)/);
    const bad = cli("egress", "--max-connections", "abc");
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /'abc' is not a whole number of 1 or more/);
    assert.match(cli("egress", "--max-connections", "0").stderr, /'0' is not a whole number/);
    assert.match(cli("run", "-c", "missing.yaml", "--drain-time", "10000").stderr, /'10000' is not a duration such as 5s, 500ms/);
  });

  it("wasmerang run reloads on SIGHUP (refusing a broken file) and drains on SIGTERM", async () => {
    const dir = mkdtempSync(join(tmpdir(), "wasmerang-cli-"));
    const file = join(dir, "envoy.yaml");
    writeFileSync(file, stringify(bootstrap([wasmFilter(FILTER_WASM, policy("a")), tcpProxy("a")], [staticCluster("a", serverPort(0)), staticCluster("b", serverPort(1))])));
    const { child, output, waitFor } = spawnRunner(file);
    try {
      const port = Number((await waitFor(LISTENING))[1]);
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
      assert.match(output(), /SIGTERM: draining/);
    } finally {
      child.kill("SIGKILL");
    }
  });
});
