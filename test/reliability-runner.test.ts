// The runner under load and faults. Each fault ends with both sockets closed, a counter, and a
// log line with the reason.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { connect, createServer, type AddressInfo, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, it } from "node:test";
import type { Runner } from "../src/runner/runner.js";
import { parseAdminAddress } from "../src/egress/config.js";
import { buildThirdPartyModule } from "./fixtures/third-party-module.js";
import { FILTER_WASM, REPO } from "./helpers.js";
import { adminGet, bootstrap, captureLogger, startRunner, staticCluster, tcpProxy, wasmFilter } from "./net-helpers.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;
const LOAD = Number(process.env.LOAD ?? 5000);
const openFds = () => readdirSync("/proc/self/fd").length;

async function until(check: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function stat(runner: Runner, name: string): Promise<number> {
  const match = new RegExp(`^${name.replace(/[.[\]]/g, "\\$&")}: (\\d+)$`, "m").exec((await adminGet(runner, "/stats")).body);
  return match ? Number(match[1]) : NaN;
}

describe("under load", () => {
  it("5,000 concurrent connections held open and then closed: file descriptors and heap return to baseline", async () => {
    const driver = spawn(process.execPath, [join(REPO, "test/fixtures/load-driver.mjs")], { stdio: ["pipe", "pipe", "inherit"] });
    const lines = createInterface({ input: driver.stdout! });
    const next = () => new Promise<string>((resolve) => lines.once("line", resolve));
    try {
      const backendPort = Number((await next()).split(" ")[1]);
      const runner = await startRunner(bootstrap([wasmFilter(FILTER_WASM, "{\"log_level\":\"warn\",\"default\":{\"cluster\":\"backend\"}}"), tcpProxy("backend")],
        [staticCluster("backend", backendPort)]));
      try {
        gc();
        const fdsBefore = openFds();
        const heapBefore = process.memoryUsage().heapUsed;
        driver.stdin!.write(`open ${runner.listenerPort("main")} ${LOAD}\n`);
        assert.equal(await next(), `held ${LOAD}`);
        assert.equal(runner.activeConnections, LOAD);
        assert.equal(await stat(runner, "cluster.backend.upstream_cx_active"), LOAD);
        assert.ok(openFds() >= fdsBefore + 2 * LOAD, "both sides of every connection are open");
        driver.stdin!.write("close\n");
        assert.equal(await next(), "closed 0", "no upstream connection left half-open");
        await until(() => runner.activeConnections === 0, "all downstream sockets closed");
        await until(async () => (await stat(runner, "cluster.backend.upstream_cx_active")) === 0, "all upstream sockets closed");
        assert.equal(await stat(runner, "listener.127.0.0.1_0.downstream_cx_active"), 0);
        await until(() => openFds() <= fdsBefore + 2, `file descriptors back to ${fdsBefore} (now ${openFds()})`);
        gc();
        const heapGrowth = process.memoryUsage().heapUsed - heapBefore;
        assert.ok(heapGrowth < 24 * 1024 * 1024, `heap grew by ${heapGrowth} bytes`);
      } finally {
        await runner.close();
      }
    } finally {
      driver.kill();
    }
  });
});

describe("faults", () => {
  it("an upstream that resets mid-stream closes the client, with a counter and a reason", async () => {
    const backend = createServer((socket) => {
      socket.on("error", () => undefined);
      socket.once("data", () => socket.write("partial", () => socket.resetAndDestroy()));
    }).listen(0, "127.0.0.1");
    await once(backend, "listening");
    const { logger, lines } = captureLogger();
    const runner = await startRunner(bootstrap([tcpProxy("b")], [staticCluster("b", (backend.address() as AddressInfo).port)]), logger);
    try {
      const client = connect({ port: runner.listenerPort("main"), host: "127.0.0.1" });
      client.on("error", () => undefined);
      let received = "";
      client.on("data", (chunk: Buffer) => (received += chunk.toString()));
      client.write("go");
      await once(client, "close");
      assert.equal(received, "partial");
      await until(() => runner.activeConnections === 0, "closed");
      assert.equal(await stat(runner, "listener.127.0.0.1_0.downstream_cx_destroy"), 1);
      assert.ok(lines().some((l) => l.msg === "connection finished" && /upstream/.test(String(l.reason))), JSON.stringify(lines()));
    } finally {
      await runner.close();
      backend.close();
    }
  });

  it("an upstream that never answers times out the connect, with UF", async () => {
    // A listener in a stopped process: once its accept queue is full, SYNs go unanswered.
    const dir = mkdtempSync(join(tmpdir(), "wasmerang-stopped-"));
    const script = join(dir, "listen.cjs");
    writeFileSync(script, "const s=require('net').createServer().listen({port:0,host:'127.0.0.1',backlog:1},()=>{console.log(s.address().port)})");
    const stopped = spawn(process.execPath, [script], { stdio: ["ignore", "pipe", "inherit"] });
    const fillers: Socket[] = [];
    try {
      const port = Number(await new Promise<string>((resolve) => stopped.stdout!.once("data", (d: Buffer) => resolve(d.toString().trim()))));
      stopped.kill("SIGSTOP");
      for (let i = 0; i < 4; i++) {
        const socket = connect({ port, host: "127.0.0.1" });
        socket.on("error", () => undefined);
        fillers.push(socket);
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
      const { logger, lines } = captureLogger();
      const runner = await startRunner(bootstrap([tcpProxy("silent")], [{ ...staticCluster("silent", port), connect_timeout: "0.3s" }]), logger);
      try {
        const client = connect({ port: runner.listenerPort("main"), host: "127.0.0.1" });
        client.on("error", () => undefined);
        const started = Date.now();
        await once(client, "close");
        assert.ok(Date.now() - started >= 250);
        assert.equal(await stat(runner, "cluster.silent.upstream_cx_connect_timeout"), 1);
        assert.ok(lines().some((l) => /connect timeout after 300 ms/.test(String(l.reason))), JSON.stringify(lines()));
      } finally {
        await runner.close();
      }
    } finally {
      for (const socket of fillers) socket.destroy();
      stopped.kill("SIGKILL");
    }
  });

  it("an upstream that accepts but never reads stops the client from being read: memory stays bounded", async () => {
    const held: Socket[] = [];
    const backend = createServer((socket) => {
      socket.pause();
      socket.on("error", () => undefined);
      held.push(socket);
    }).listen(0, "127.0.0.1");
    await once(backend, "listening");
    const runner = await startRunner(bootstrap([tcpProxy("b")], [staticCluster("b", (backend.address() as AddressInfo).port)]));
    try {
      const client = connect({ port: runner.listenerPort("main"), host: "127.0.0.1" });
      client.on("error", () => undefined);
      await once(client, "connect");
      const chunk = Buffer.alloc(64 * 1024);
      let accepted = 0;
      const deadline = Date.now() + 1500;
      while (Date.now() < deadline && accepted < 512 * 1024 * 1024) {
        if (client.write(chunk)) accepted += chunk.length;
        else await Promise.race([once(client, "drain"), new Promise((resolve) => setTimeout(resolve, 300))]).then(() => (accepted += 0));
      }
      assert.ok(client.writableLength > 0, "the client's writes back up");
      assert.ok(accepted < 64 * 1024 * 1024, `${accepted} bytes went into a proxy whose upstream never reads`);
      client.destroy();
    } finally {
      await runner.close();
      for (const socket of held) socket.destroy();
      backend.close();
    }
  });

  it("a client that resets mid-stream closes the upstream", async () => {
    let upstreamClosed = false;
    const backend = createServer((socket) => {
      socket.resume();
      socket.on("error", () => undefined);
      socket.on("close", () => (upstreamClosed = true));
    }).listen(0, "127.0.0.1");
    await once(backend, "listening");
    const { logger, lines } = captureLogger();
    const runner = await startRunner(bootstrap([tcpProxy("b")], [staticCluster("b", (backend.address() as AddressInfo).port)]), logger);
    try {
      const client = connect({ port: runner.listenerPort("main"), host: "127.0.0.1" });
      client.on("error", () => undefined);
      await once(client, "connect");
      client.write("some bytes");
      await until(async () => (await stat(runner, "cluster.b.upstream_cx_active")) === 1, "upstream connected");
      client.resetAndDestroy();
      await until(() => upstreamClosed && runner.activeConnections === 0, "both sides closed");
      assert.equal(await stat(runner, "cluster.b.upstream_cx_active"), 0);
      assert.ok(lines().some((l) => l.msg === "connection closed" && /downstream .*ECONNRESET/.test(String(l.reason))), JSON.stringify(lines()));
    } finally {
      await runner.close();
      backend.close();
    }
  });

  it("a filter that traps mid-connection closes it (fail closed), counted and logged with the trap", async () => {
    const dir = mkdtempSync(join(tmpdir(), "wasmerang-trap-"));
    const module = join(dir, "trap-on-data.wasm");
    writeFileSync(module, await buildThirdPartyModule("trap-on-data"));
    let upstreamClosed = false;
    const backend = createServer((socket) => {
      socket.on("error", () => undefined);
      socket.on("close", () => (upstreamClosed = true));
    }).listen(0, "127.0.0.1");
    await once(backend, "listening");
    const port = (backend.address() as AddressInfo).port;
    const { logger, lines } = captureLogger();
    const runner = await startRunner(bootstrap([wasmFilter(module, ""), tcpProxy("egress-router2")], [staticCluster("egress-router2", port)]), logger);
    try {
      const client = connect({ port: runner.listenerPort("main"), host: "127.0.0.1" });
      client.on("error", () => undefined);
      await once(client, "connect");
      await until(async () => (await stat(runner, "cluster.egress-router2.upstream_cx_active")) === 1, "upstream connected");
      client.write("boom");
      await once(client, "close");
      await until(() => upstreamClosed && runner.activeConnections === 0, "both sides closed");
      assert.equal(await stat(runner, "wasm_filter.wasmerang.traps"), 1);
      assert.ok(lines().some((l) => /wasm trap in proxy_on_downstream_data: .*unreachable/.test(l.msg)), JSON.stringify(lines()));
    } finally {
      await runner.close();
      backend.close();
    }
  });
});

describe("exposure", () => {
  it("the egress router's admin binds to loopback unless an address is written out", () => {
    assert.deepEqual(parseAdminAddress("9902"), { address: "127.0.0.1", port: 9902 });
    assert.deepEqual(parseAdminAddress("0.0.0.0:9902"), { address: "0.0.0.0", port: 9902 });
  });
});
