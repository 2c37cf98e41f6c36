// Hostile and unlucky peers against both relaying processes: one packet never ends a process,
// first bytes never wait behind a listener filter, buffers stay bounded while an upstream does not
// answer or a filter holds data, and the admin endpoint survives file descriptor exhaustion.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { connect, createServer, type AddressInfo, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect, createServer as createTlsServer } from "node:tls";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { stringify } from "yaml";
import { Allowlist } from "../src/egress/allowlist.js";
import { encodeProxyHeader } from "../src/egress/proxy-protocol.js";
import { EgressRouter } from "../src/egress/router.js";
import { silentLogger } from "../src/logging.js";
import { spawnCli, spawnRunner, type CliProcess } from "./cli-process.js";
import { buildThirdPartyModule } from "./fixtures/third-party-module.js";
import { FILTER_WASM, REPO } from "./helpers.js";
import {
  adminGet, bootstrap, captureLogger, type EchoServer, freePort, httpConnectionManager, PROXY_PROTOCOL_FILTER, readExactly, startEchoServer, startRunner, staticCluster,
  stopServer, tcpProxy, TLS_INSPECTOR_FILTER, wasmFilter,
} from "./net-helpers.js";

const LISTENING = /listener 'main' on 127\.0\.0\.1:(\d+)/;
const MiB = 1024 * 1024;

/** Connects, sends `bytes` in one write, and resolves with what came back once the peer closed. */
async function sendAndWaitClose(port: number, bytes: Buffer): Promise<Buffer> {
  const socket = connect({ port, host: "127.0.0.1" });
  socket.on("error", () => undefined);
  const chunks: Buffer[] = [];
  socket.on("data", (chunk: Buffer) => chunks.push(chunk));
  await once(socket, "connect");
  socket.write(bytes);
  await once(socket, "close");
  return Buffer.concat(chunks);
}

/** An open connection through a proxy to an echo server that must keep working. */
async function bystander(port: number, header: Buffer): Promise<{ check(): Promise<void>; socket: Socket }> {
  const socket = connect({ port, host: "127.0.0.1" });
  socket.on("error", () => undefined);
  await once(socket, "connect");
  socket.write(Buffer.concat([header, Buffer.from("hello")]));
  assert.equal((await readExactly(socket, 5)).toString(), "hello");
  return {
    socket,
    check: async () => {
      socket.write("still here");
      assert.equal((await readExactly(socket, 10)).toString(), "still here");
    },
  };
}

function statOf(text: string, name: string): number {
  const match = new RegExp(`^${name.replace(/[.[\]]/g, "\\$&")}: (\\d+)$`, "m").exec(text);
  return match ? Number(match[1]) : NaN;
}

async function adminStat(port: number, name: string): Promise<number> {
  return statOf(await (await fetch(`http://127.0.0.1:${port}/stats`)).text(), name);
}

/** Waits (up to `ms`) until a stat reads `value`, then asserts it. */
async function untilStat(port: number, name: string, value: number, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while ((await adminStat(port, name)) !== value && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(await adminStat(port, name), value, name);
}

function writeBootstrap(config: object): string {
  const file = join(mkdtempSync(join(tmpdir(), "wasmerang-hostile-")), "envoy.yaml");
  writeFileSync(file, stringify(config));
  return file;
}

/** A bootstrap with the admin on `adminPort` and one listener on an ephemeral port. */
function withAdmin(config: object, adminPort: number): object {
  return { ...config, admin: { address: { socket_address: { address: "127.0.0.1", port_value: adminPort } } } };
}

async function stopProcess(cli: CliProcess): Promise<void> {
  if (cli.child.exitCode !== null) return;
  cli.child.kill("SIGKILL");
  await once(cli.child, "exit");
}

const ZONE_HEADERS = [
  "PROXY TCP6 fe80::1%lo ::1 1000 80\r\n",
  "PROXY TCP6 ::1 fe80::1%25eth0 1000 80\r\n",
  "PROXY TCP6 fe80::1% ::1 1000 80\r\n",
];

describe("one packet never ends a process", { timeout: 60_000 }, () => {
  let echo: EchoServer;
  before(async () => (echo = await startEchoServer()));
  after(() => stopServer(echo));

  it("the runner's proxy_protocol listener filter: a zone id closes that connection only", async () => {
    const adminPort = await freePort();
    const cli = spawnRunner(writeBootstrap(withAdmin(bootstrap([tcpProxy("echo")], [staticCluster("echo", echo.port)], { listener_filters: [PROXY_PROTOCOL_FILTER] }), adminPort)));
    try {
      const port = Number((await cli.waitFor(LISTENING))[1]);
      const kept = await bystander(port, encodeProxyHeader(1, { address: "10.0.0.1", port: 1 }, { address: "10.0.0.2", port: 2 }));
      for (const header of ZONE_HEADERS) assert.equal((await sendAndWaitClose(port, Buffer.from(header))).length, 0);
      await kept.check();
      assert.equal(cli.child.exitCode, null, cli.output());
      assert.equal(await adminStat(adminPort, "listener.127.0.0.1_0.downstream_listener_filter_error"), ZONE_HEADERS.length);
      assert.match(cli.output(), /bad PROXY protocol header: byte 18: zone id in TCP6 source address 'fe80::1%lo'/);
      kept.socket.destroy();
    } finally {
      await stopProcess(cli);
    }
  });

  it("the egress router: a zone id in either address closes that connection only", async () => {
    const adminPort = await freePort();
    const cli = spawnCli(["egress", "--listen", "127.0.0.1:0", "--allow", `127.0.0.1/32:${echo.port}`, "--admin", String(adminPort)]);
    try {
      const port = Number((await cli.waitFor(/egress router on 127\.0\.0\.1:(\d+)/))[1]);
      const kept = await bystander(port, encodeProxyHeader(2, { address: "10.0.0.1", port: 1 }, { address: "127.0.0.1", port: echo.port }));
      for (const header of ZONE_HEADERS) assert.equal((await sendAndWaitClose(port, Buffer.from(header))).length, 0);
      await kept.check();
      assert.equal(cli.child.exitCode, null, cli.output());
      assert.equal(await adminStat(adminPort, "egress.bad_header"), ZONE_HEADERS.length);
      assert.match(cli.output(), /bad PROXY header: byte 22: zone id in TCP6 destination address 'fe80::1%25eth0'/);
      kept.socket.destroy();
    } finally {
      await stopProcess(cli);
    }
  });
});

describe("first bytes never wait behind a listener filter", { timeout: 60_000 }, () => {
  let echo: EchoServer;
  before(async () => (echo = await startEchoServer()));
  after(() => stopServer(echo));

  it("a PROXY header and data in one write are answered without the client sending more; bytes counted once", async () => {
    const runner = await startRunner(bootstrap([tcpProxy("echo")], [staticCluster("echo", echo.port)], { listener_filters: [PROXY_PROTOCOL_FILTER] }));
    try {
      const client = connect({ port: runner.listenerPort("main"), host: "127.0.0.1" });
      await once(client, "connect");
      client.write(Buffer.concat([encodeProxyHeader(2, { address: "10.0.0.1", port: 1 }, { address: "10.0.0.2", port: 2 }), Buffer.from("ping")]));
      assert.equal((await readExactly(client, 4)).toString(), "ping");
      client.destroy();
      while (runner.activeConnections > 0) await new Promise((resolve) => setTimeout(resolve, 10));
      const stats = (await adminGet(runner, "/stats")).body;
      // The header is the listener filter's; the payload is what the upstream received.
      assert.equal(statOf(stats, "tcp.ingress.downstream_cx_rx_bytes_total"), 4);
      assert.equal(statOf(stats, "cluster.echo.upstream_cx_tx_bytes_total"), 4);
    } finally {
      await runner.close();
    }
  });

  it("a PROXY header and an HTTP request in one write are answered on a kept-alive connection", async () => {
    const web = createHttpServer((request, response) => response.end(`seen ${request.url}`));
    web.listen(0, "127.0.0.1");
    await once(web, "listening");
    const runner = await startRunner(bootstrap([httpConnectionManager({ cluster: "web" })], [staticCluster("web", (web.address() as AddressInfo).port)], { listener_filters: [PROXY_PROTOCOL_FILTER] }));
    try {
      const client = connect({ port: runner.listenerPort("main"), host: "127.0.0.1" });
      await once(client, "connect");
      const request = Buffer.from("GET /first HTTP/1.1\r\nhost: example\r\n\r\n");
      client.write(Buffer.concat([encodeProxyHeader(1, { address: "10.0.0.1", port: 1 }, { address: "10.0.0.2", port: 80 }), request]));
      const reply = await new Promise<string>((resolve) => client.once("data", (chunk: Buffer) => resolve(chunk.toString())));
      assert.match(reply, /^HTTP\/1\.1 200[^]*seen \/first$/);
      client.destroy();
    } finally {
      await runner.close();
      web.close();
    }
  });

  it("a real TLS handshake through tls_inspector completes, routed by its SNI", async () => {
    const tls = createTlsServer({ key: readFileSync(join(REPO, "test/fixtures/tls/key.pem")), cert: readFileSync(join(REPO, "test/fixtures/tls/cert.pem")) },
      (socket) => socket.pipe(socket));
    tls.listen(0, "127.0.0.1");
    await once(tls, "listening");
    const policy = { log_level: "warn", rules: [{ match: { server_names: ["*.corp.example"] }, action: { cluster: "tls" } }], default: { cluster: "plain" } };
    const runner = await startRunner(bootstrap([wasmFilter(FILTER_WASM, JSON.stringify(policy)), tcpProxy("plain")],
      [staticCluster("tls", (tls.address() as AddressInfo).port), staticCluster("plain", echo.port)], { listener_filters: [TLS_INSPECTOR_FILTER] }));
    try {
      const client = tlsConnect({ port: runner.listenerPort("main"), host: "127.0.0.1", servername: "api.corp.example", ca: readFileSync(join(REPO, "test/fixtures/tls/cert.pem")) });
      await once(client, "secureConnect");
      client.write("over tls");
      const reply = await new Promise<string>((resolve) => client.once("data", (chunk: Buffer) => resolve(chunk.toString())));
      assert.equal(reply, "over tls");
      client.destroy();
    } finally {
      await runner.close();
      tls.close();
    }
  });
});

/** A listener in a stopped process with a full accept queue: connects to it never complete. */
async function unansweredPort(): Promise<{ port: number; release(): void }> {
  const script = join(mkdtempSync(join(tmpdir(), "wasmerang-stopped-")), "listen.cjs");
  writeFileSync(script, "const s=require('net').createServer().listen({port:0,host:'127.0.0.1',backlog:1},()=>{console.log(s.address().port)})");
  const stopped = spawn(process.execPath, [script], { stdio: ["ignore", "pipe", "inherit"] });
  const port = Number(await new Promise<string>((resolve) => stopped.stdout.once("data", (d: Buffer) => resolve(d.toString().trim()))));
  stopped.kill("SIGSTOP");
  const fillers: Socket[] = [];
  for (let i = 0; i < 4; i++) fillers.push(connect({ port, host: "127.0.0.1" }).on("error", () => undefined));
  await new Promise((resolve) => setTimeout(resolve, 200));
  return {
    port,
    release: () => {
      for (const socket of fillers) socket.destroy();
      stopped.kill("SIGKILL");
    },
  };
}

function drainOrTimeout(socket: Socket, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      socket.off("drain", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    socket.once("drain", done);
  });
}

/** Writes as fast as the proxy takes it for `ms`; resolves with the bytes it accepted. */
async function flood(port: number, ms: number, header: Buffer = Buffer.alloc(0)): Promise<{ socket: Socket; accepted: number }> {
  const socket = connect({ port, host: "127.0.0.1" });
  socket.on("error", () => undefined);
  await once(socket, "connect");
  if (header.length > 0) socket.write(header);
  const chunk = Buffer.alloc(64 * 1024, 0x78);
  let accepted = 0;
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && !socket.destroyed) {
    if (socket.write(chunk)) accepted += chunk.length;
    else await drainOrTimeout(socket, 100);
  }
  return { socket, accepted: accepted - socket.writableLength };
}

describe("buffers stay bounded", { timeout: 60_000 }, () => {
  it("8 clients sending to an upstream that never connects: the runner stops reading them, memory returns to baseline", async (t) => {
    const silent = await unansweredPort();
    const adminPort = await freePort();
    // As in Envoy, a downstream that is not being read is found closed when the connect ends:
    // here at the connect timeout.
    const cli = spawnRunner(writeBootstrap(withAdmin(bootstrap([tcpProxy("silent")], [{ ...staticCluster("silent", silent.port), connect_timeout: "4s" }]), adminPort)));
    try {
      const port = Number((await cli.waitFor(LISTENING))[1]);
      await fetch(`http://127.0.0.1:${adminPort}/ready`);
      const baseline = cli.rss();
      const clients = await Promise.all(Array.from({ length: 8 }, () => flood(port, 3000)));
      const during = cli.rss();
      assert.equal(await adminStat(adminPort, "cluster.silent.upstream_cx_total"), 8, "every upstream is still connecting");
      for (const { accepted } of clients) assert.ok(accepted < 8 * MiB, `a client got ${accepted} bytes into a proxy whose upstream never connected`);
      assert.ok(during - baseline < 64 * MiB, `resident memory grew by ${(during - baseline) / MiB} MiB`);
      for (const { socket } of clients) socket.destroy();
      // Connections whose upstream connect was cut by the descriptor limit close at connect_timeout, later on a loaded machine.
      await untilStat(adminPort, "listener.127.0.0.1_0.downstream_cx_active", 0, 15_000);
      assert.equal(await adminStat(adminPort, "cluster.silent.upstream_cx_connect_timeout"), 8);
      const afterwards = cli.rss();
      assert.ok(afterwards - baseline < 64 * MiB, `resident memory after the connections ended: ${(afterwards - baseline) / MiB} MiB over baseline`);
      const mib = (bytes: number) => (bytes / MiB).toFixed(1);
      t.diagnostic(`RSS MiB before ${mib(baseline)}, during ${mib(during)}, after ${mib(afterwards)}; accepted per client up to ${mib(Math.max(...clients.map((c) => c.accepted)))} MiB`);
    } finally {
      await stopProcess(cli);
      silent.release();
    }
  });

  it("a filter holding every byte: reading stops at per_connection_buffer_limit_bytes", async (t) => {
    const module = join(mkdtempSync(join(tmpdir(), "wasmerang-hold-")), "hold-data.wasm");
    writeFileSync(module, await buildThirdPartyModule("hold-data"));
    const echo = await startEchoServer();
    const runner = await startRunner(bootstrap([wasmFilter(module, ""), tcpProxy("egress-router2")], [staticCluster("egress-router2", echo.port)],
      { per_connection_buffer_limit_bytes: 256 * 1024 }));
    try {
      const { socket, accepted } = await flood(runner.listenerPort("main"), 1500);
      // The limit, plus what the kernel's socket buffers hold on loopback.
      assert.ok(accepted < 16 * MiB, `${accepted} bytes went into a connection whose filter holds everything`);
      assert.ok(accepted > 256 * 1024, "reading went on up to the limit");
      t.diagnostic(`a 256 KiB limit: the client got ${(accepted / MiB).toFixed(1)} MiB in before its writes backed up`);
      socket.destroy();
    } finally {
      await runner.close();
      await stopServer(echo);
    }
  });
});

/** Opens `count` connections to `port` and keeps them; resolves once every one connected or was refused. */
async function openMany(port: number, count: number): Promise<Socket[]> {
  const sockets: Socket[] = [];
  await Promise.all(Array.from({ length: count }, async () => {
    const socket = connect({ port, host: "127.0.0.1" });
    socket.on("error", () => undefined);
    sockets.push(socket);
    await Promise.race([once(socket, "connect"), once(socket, "close")]);
  }));
  return sockets;
}

async function answers(adminPort: number, path: string): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${adminPort}${path}`, { signal: AbortSignal.timeout(3000) });
  await response.text();
  return response.status;
}

describe("file descriptor exhaustion", { timeout: 60_000 }, () => {
  let echo: EchoServer;
  before(async () => (echo = await startEchoServer()));
  after(() => stopServer(echo));

  it("the runner under ulimit -n 1024 with 2,000 clients: admin answers, the excess is refused and counted, service recovers", async (t) => {
    const adminPort = await freePort();
    const file = writeBootstrap(withAdmin(bootstrap([tcpProxy("echo")], [staticCluster("echo", echo.port)]), adminPort));
    const cli = spawnCli(["run", "-c", file], { fileLimit: 1024 });
    try {
      const port = Number((await cli.waitFor(LISTENING))[1]);
      const clients = await openMany(port, 2000);
      assert.equal(await answers(adminPort, "/ready"), 200);
      assert.equal(await answers(adminPort, "/stats"), 200);
      const overflow = await adminStat(adminPort, "listener.127.0.0.1_0.downstream_global_cx_overflow");
      const active = await adminStat(adminPort, "listener.127.0.0.1_0.downstream_cx_active");
      assert.ok(overflow > 0 && active > 0 && active <= 480, `overflow ${overflow}, active ${active}`);
      t.diagnostic(`2,000 clients: ${active} proxied, ${overflow} refused (downstream_global_cx_overflow); /ready and /stats answered`);
      assert.match(cli.output(), /connection refused: the process's file descriptor limit/);
      for (const socket of clients) socket.destroy();
      // Connections whose upstream connect was cut by the descriptor limit close at connect_timeout, later on a loaded machine.
      await untilStat(adminPort, "listener.127.0.0.1_0.downstream_cx_active", 0, 15_000);
      const kept = await bystander(port, Buffer.alloc(0));
      await kept.check();
      kept.socket.destroy();
      assert.equal(cli.child.exitCode, null);
    } finally {
      await stopProcess(cli);
    }
  });

  it("the egress router under ulimit -n 1024 with 2,000 clients: admin answers, the excess is refused and counted, service recovers", async () => {
    const adminPort = await freePort();
    const cli = spawnCli(["egress", "--listen", "127.0.0.1:0", "--allow", `127.0.0.1/32:${echo.port}`, "--admin", String(adminPort)], { fileLimit: 1024 });
    try {
      const port = Number((await cli.waitFor(/egress router on 127\.0\.0\.1:(\d+)/))[1]);
      const clients = await openMany(port, 2000);
      assert.equal(await answers(adminPort, "/ready"), 200);
      assert.ok(await adminStat(adminPort, "egress.over_limit") > 0);
      assert.ok(await adminStat(adminPort, "egress.cx_active") <= 480);
      assert.match(cli.output(), /connection refused: connection limit 480 reached \(the file descriptor limit/);
      for (const socket of clients) socket.destroy();
      await untilStat(adminPort, "egress.cx_active", 0);
      const kept = await bystander(port, encodeProxyHeader(2, { address: "10.0.0.1", port: 1 }, { address: "127.0.0.1", port: echo.port }));
      await kept.check();
      kept.socket.destroy();
    } finally {
      await stopProcess(cli);
    }
  });
});

/** Hostile first bytes: PROXY headers valid, mutated, truncated, oversized, with zone ids; TLS-like records; noise. */
function hostileStream(): fc.Arbitrary<Buffer> {
  const endpoint = fc.record({ address: fc.oneof(fc.ipV4(), fc.ipV6()), port: fc.integer({ min: 0, max: 65535 }) });
  const tlv = fc.record({ type: fc.integer({ min: 0, max: 255 }), value: fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)) });
  const valid = fc.tuple(fc.constantFrom<1 | 2>(1, 2), endpoint, endpoint, fc.array(tlv, { maxLength: 3 }))
    .map(([version, source, destination, tlvs]) => encodeProxyHeader(version, source, destination, version === 2 ? tlvs : []));
  const mutated = fc.tuple(valid, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }))
    .map(([header, flips]) => {
      const copy = Buffer.from(header);
      for (const [at, value] of flips) copy[at % copy.length] = value;
      return copy;
    });
  const zoned = fc.tuple(fc.ipV6(), fc.string({ maxLength: 20 }), fc.boolean())
    .map(([address, zone, first]) => Buffer.from(first ? `PROXY TCP6 ${address}%${zone} ::1 1 2\r\n` : `PROXY TCP6 ::1 ${address}%${zone} 1 2\r\n`, "latin1"));
  const oversized = fc.tuple(valid.filter((h) => h[0] === 0x0d), fc.integer({ min: 0, max: 0xffff }))
    .map(([header, length]) => {
      const copy = Buffer.from(header);
      copy.writeUInt16BE(length, 14);
      return copy;
    });
  const truncated = fc.tuple(valid, fc.nat()).map(([header, cut]) => header.subarray(0, cut % header.length));
  const tlsLike = fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.concat([Buffer.from([0x16, 0x03, 0x01]), Buffer.from(a)]));
  const header = fc.oneof(valid, mutated, zoned, oversized, truncated, tlsLike, fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)));
  return fc.tuple(header, fc.uint8Array({ maxLength: 200 })).map(([head, payload]) => Buffer.concat([head, Buffer.from(payload)]));
}

/** Sends `bytes` in pieces cut at `cuts`, half-closes, and waits for the proxy to close (true) or not (false). */
async function sendInPieces(port: number, bytes: Buffer, cuts: number[]): Promise<boolean> {
  const socket = connect({ port, host: "127.0.0.1", allowHalfOpen: true });
  socket.setNoDelay(true);
  socket.on("error", () => undefined);
  socket.resume();
  const closed = new Promise<boolean>((resolve) => socket.once("close", () => resolve(true)));
  await Promise.race([once(socket, "connect"), closed]);
  let from = 0;
  for (const cut of [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)) {
    if (!socket.destroyed) socket.write(bytes.subarray(from, cut));
    from = cut;
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  if (!socket.destroyed) socket.end(bytes.subarray(from));
  const closedInTime = await Promise.race([closed, new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 2000))]);
  socket.destroy();
  return closedInTime;
}

describe("fuzzing the socket paths", { timeout: 120_000 }, () => {
  let echo: EchoServer;
  before(async () => (echo = await startEchoServer()));
  after(() => stopServer(echo));

  const policy = JSON.stringify({ log_level: "warn", default: { cluster: "echo" } });
  const header = encodeProxyHeader(2, { address: "2001:db8::1", port: 4000 }, { address: "127.0.0.1", port: 0 },
    [{ type: 0x02, value: Buffer.from("api.example") }, { type: 0xe0, value: Buffer.from("rule") }]);

  it("the runner (proxy_protocol, tls_inspector, the filter): every hostile stream ends with its connection closed, the process serving", async () => {
    const runner = await startRunner(bootstrap([wasmFilter(FILTER_WASM, policy), tcpProxy("echo")], [staticCluster("echo", echo.port)],
      { listener_filters: [PROXY_PROTOCOL_FILTER, TLS_INSPECTOR_FILTER] }));
    try {
      const port = runner.listenerPort("main");
      await fc.assert(fc.asyncProperty(hostileStream(), fc.array(fc.nat(), { maxLength: 4 }), (bytes, cuts) => sendInPieces(port, bytes, cuts)), { numRuns: 300 });
      for (let i = 0; i < 100 && runner.activeConnections > 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(runner.activeConnections, 0);
      const kept = await bystander(port, header);
      await kept.check();
      kept.socket.destroy();
    } finally {
      await runner.close();
    }
  });

  it("the egress router: every hostile stream ends with its connection closed, the process serving", async () => {
    const router = await EgressRouter.start({
      listen: { address: "127.0.0.1", port: 0 }, allowlist: Allowlist.parse([`127.0.0.1/32:${echo.port}`, "0.0.0.0/0:*", "[::/0]:*"]),
      headerTimeoutMs: 1000, connectTimeoutMs: 500, maxConnections: 1024, logger: silentLogger,
    });
    try {
      await fc.assert(fc.asyncProperty(hostileStream(), fc.array(fc.nat(), { maxLength: 4 }), (bytes, cuts) => sendInPieces(router.port, bytes, cuts)), { numRuns: 300 });
      for (let i = 0; i < 100 && router.activeConnections > 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(router.activeConnections, 0);
    } finally {
      await router.close();
    }
  });

  it("a PROXY v2 header with TLVs and data, split at every offset, arrives whole through the runner and the egress router", async () => {
    const router = await EgressRouter.start({
      listen: { address: "127.0.0.1", port: 0 }, allowlist: Allowlist.parse([`127.0.0.1/32:${echo.port}`]),
      headerTimeoutMs: 1000, connectTimeoutMs: 500, maxConnections: 1024, logger: silentLogger,
    });
    const runner = await startRunner(bootstrap([tcpProxy("echo")], [staticCluster("echo", echo.port)], { listener_filters: [PROXY_PROTOCOL_FILTER, TLS_INSPECTOR_FILTER] }));
    try {
      const toEgress = Buffer.concat([encodeProxyHeader(2, { address: "2001:db8::1", port: 4000 }, { address: "127.0.0.1", port: echo.port },
        [{ type: 0x02, value: Buffer.from("api.example") }]), Buffer.from("payload")]);
      const toRunner = Buffer.concat([header, Buffer.from("payload")]);
      for (const [port, bytes] of [[router.port, toEgress], [runner.listenerPort("main"), toRunner]] as const) {
        for (let cut = 1; cut < bytes.length; cut++) {
          const socket = connect({ port, host: "127.0.0.1", allowHalfOpen: true });
          socket.setNoDelay(true);
          const reply = readExactly(socket, 7);
          await once(socket, "connect");
          socket.write(bytes.subarray(0, cut));
          await new Promise((resolve) => setTimeout(resolve, 1));
          socket.write(bytes.subarray(cut));
          assert.equal((await reply).toString(), "payload", `split at byte ${cut}`);
          socket.destroy();
        }
      }
    } finally {
      await runner.close();
      await router.close();
    }
  });
});

describe("hostile upstreams", { timeout: 30_000 }, () => {
  it("an HTTP upstream answering with status 000 gets the client a 502 (UPE); the runner keeps serving", async () => {
    const upstream = createServer((socket) => socket.on("data", () => socket.end("HTTP/1.1 000 Odd\r\ncontent-length: 0\r\n\r\n")));
    upstream.listen(0, "127.0.0.1");
    await once(upstream, "listening");
    const { logger, lines } = captureLogger();
    const runner = await startRunner(bootstrap([httpConnectionManager({ cluster: "odd" })], [staticCluster("odd", (upstream.address() as AddressInfo).port)]), logger);
    try {
      for (let i = 0; i < 2; i++) {
        const response = await fetch(`http://127.0.0.1:${runner.listenerPort("main")}/`);
        assert.equal(response.status, 502);
        assert.match(await response.text(), /invalid status '0'/);
      }
      assert.equal((await adminGet(runner, "/ready")).status, 200);
      assert.equal(lines().filter((l) => l.msg === "request failed").length, 0, "handled as a protocol error, not an exception");
    } finally {
      await runner.close();
      upstream.close();
    }
  });
});
