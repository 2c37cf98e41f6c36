// The egress router: forwards only to allowlisted original destinations, refuses every bad or
// slow header with a counter, never relays to special-purpose ranges it was not told to.
import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtempSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Allowlist } from "../src/egress/allowlist.js";
import { encodeProxyHeader, TLV } from "../src/egress/proxy-protocol.js";
import { EgressRouter } from "../src/egress/router.js";
import { silentLogger } from "../src/logging.js";
import { startTagServer, type TagServer } from "./net-helpers.js";

describe("allowlist", () => {
  const list = Allowlist.parse(["10.0.0.0/8:443", "[2001:db8::/32]:80,443", "192.0.2.1:8000-8100", "127.0.0.1/32:*", "0.0.0.0/0:22"]);
  const cases: [string, number, boolean][] = [
    ["10.1.2.3", 443, true], ["10.1.2.3", 80, false], ["11.0.0.1", 443, false],
    ["2001:db8::1", 80, true], ["2001:db9::1", 80, false],
    ["192.0.2.1", 8050, true], ["192.0.2.1", 8101, false],
    ["::ffff:10.9.9.9", 443, true], ["::ffff:11.9.9.9", 443, false],
    ["127.0.0.1", 5, true], ["::ffff:127.0.0.1", 5, true], ["127.0.0.2", 5, false],
    // 0.0.0.0/0 opens port 22 to the world, but not to special-purpose ranges.
    ["8.8.8.8", 22, true], ["127.0.0.2", 22, false], ["169.254.169.254", 22, false], ["0.0.0.0", 22, false], ["224.0.0.1", 22, false],
    ["::1", 22, false], ["fe80::1", 22, false], ["not-an-ip", 22, false],
  ];
  for (const [address, port, allowed] of cases) {
    it(`${address}:${port} ${allowed ? "allowed" : "denied"}`, () => assert.equal(list.check(address, port).allowed, allowed));
  }

  it("refuses malformed rules with the rule in the message", () => {
    assert.throws(() => Allowlist.parse(["10.0.0.0/33:443"]), /allow rule '10\.0\.0\.0\/33:443': '10\.0\.0\.0\/33' is not a CIDR/);
    assert.throws(() => Allowlist.parse(["10.0.0.0/8:0"]), /bad port or range '0'/);
    assert.throws(() => Allowlist.parse(["10.0.0.0/8"]), /expected CIDR:PORTS/);
  });

  it("allows nothing when empty", () => assert.equal(Allowlist.parse([]).check("10.0.0.1", 443).allowed, false));
});

describe("egress router", () => {
  let destination: TagServer;
  let router: EgressRouter;
  before(async () => {
    destination = await startTagServer("dest", "127.0.0.60");
    router = await EgressRouter.start({
      listen: { address: "127.0.0.1", port: 0 },
      allowlist: Allowlist.parse([`127.0.0.60/32:${destination.port}`]),
      admin: { address: "127.0.0.1", port: 0 },
      headerTimeoutMs: 300,
      connectTimeoutMs: 1000,
      maxConnections: 3,
      logger: silentLogger,
    });
  });
  after(async () => {
    await router.close();
    await destination.close();
  });

  async function idle(): Promise<void> {
    while (router.activeConnections > 0) await new Promise((resolve) => setTimeout(resolve, 10));
  }

  async function send(data: Buffer, halfClose = true): Promise<string> {
    const socket = connect({ port: router.port, host: "127.0.0.1", allowHalfOpen: true });
    const chunks: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("error", () => undefined);
    socket.on("end", () => socket.end());
    await once(socket, "connect");
    const closed = new Promise((resolve) => socket.once("close", resolve));
    if (halfClose) socket.end(data);
    else socket.write(data);
    await closed;
    return Buffer.concat(chunks).toString();
  }

  for (const version of [1, 2] as const) {
    it(`forwards a PROXY v${version} connection to its allowed original destination, half-close included`, async () => {
      const header = encodeProxyHeader(version, { address: "10.0.0.2", port: 5555 }, { address: "127.0.0.60", port: destination.port });
      assert.equal(await send(Buffer.concat([header, Buffer.from("payload")])), "dest:payload");
    });
  }

  it("refuses a destination outside the allowlist, and counts it", async () => {
    const before = router.counter("denied");
    for (const target of ["127.0.0.61", "::ffff:127.0.0.61", "0.0.0.0", "169.254.169.254"]) {
      const header = encodeProxyHeader(2, { address: "10.0.0.2", port: 1 }, { address: target, port: destination.port });
      assert.equal(await send(Buffer.concat([header, Buffer.from("x")])), "");
    }
    assert.equal(router.counter("denied"), before + 4);
  });

  it("refuses malformed and truncated headers, and counts them", async () => {
    const before = router.counter("badHeader");
    assert.equal(await send(Buffer.from("GET / HTTP/1.1\r\n\r\n")), "");
    assert.equal(await send(Buffer.from("PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n")), "");
    assert.equal(await send(encodeProxyHeader(2, { address: "1.2.3.4", port: 1 }, { address: "127.0.0.60", port: 1 }).subarray(0, 20)), "");
    assert.equal(router.counter("badHeader"), before + 3);
  });

  it("refuses a slow header within the timeout", async () => {
    const before = router.counter("headerTimeout");
    const started = Date.now();
    assert.equal(await send(Buffer.from("PROXY TCP4 "), false), "");
    assert.ok(Date.now() - started < 2000);
    assert.equal(router.counter("headerTimeout"), before + 1);
  });

  it("enforces the connection limit", async () => {
    await idle();
    const before = router.counter("overLimit");
    const held = await Promise.all([1, 2, 3].map(async () => {
      const socket = connect({ port: router.port, host: "127.0.0.1" });
      socket.on("error", () => undefined);
      await once(socket, "connect");
      return socket;
    }));
    assert.equal(await send(Buffer.from("x")), "");
    assert.equal(router.counter("overLimit"), before + 1);
    for (const socket of held) socket.destroy();
    await idle();
  });

  it("serves its counters on the admin port", async () => {
    const response = await fetch(`http://127.0.0.1:${router.adminPort}/stats`);
    assert.match(await response.text(), /^egress\.forwarded: [1-9]\d*$/m);
  });

  it("reads the rule and SNI TLVs for its log", async () => {
    const header = encodeProxyHeader(2, { address: "10.0.0.2", port: 1 }, { address: "127.0.0.60", port: destination.port },
      [{ type: TLV.WASMERANG_RULE, value: Buffer.from("corp") }, { type: TLV.AUTHORITY, value: Buffer.from("a.example") }]);
    assert.equal(await send(Buffer.concat([header, Buffer.from("t")])), "dest:t");
  });
});


describe("the egress access log: one record per connection, whatever its end", () => {
  let destination: TagServer;
  before(async () => (destination = await startTagServer("dest", "127.0.0.60")));
  after(() => destination.close());

  async function routerWithLog(format: "text" | "json"): Promise<{ router: EgressRouter; lines: () => string[] }> {
    const file = join(mkdtempSync(join(tmpdir(), "wasmerang-egress-log-")), "access.log");
    const router = await EgressRouter.start({
      listen: { address: "127.0.0.1", port: 0 }, allowlist: Allowlist.parse([`127.0.0.60/32:${destination.port}`]),
      headerTimeoutMs: 300, connectTimeoutMs: 1000, maxConnections: 10, logger: silentLogger, accessLog: file, accessLogFormat: format,
    });
    return { router, lines: () => readFileSync(file, "utf8").split("\n").filter((line) => line !== "") };
  }

  /** Sends, half-closes, waits for the router to close; returns the client's own port. */
  async function sendFrom(router: EgressRouter, data: Buffer): Promise<number> {
    const socket = connect({ port: router.port, host: "127.0.0.1", allowHalfOpen: true });
    socket.on("error", () => undefined);
    socket.resume();
    const closed = new Promise((resolve) => socket.once("close", resolve));
    await once(socket, "connect");
    const port = socket.localPort!;
    socket.end(data);
    await closed;
    return port;
  }

  const forwardHeader = (tlvs: { type: number; value: Buffer }[] = []) =>
    encodeProxyHeader(2, { address: "10.0.0.2", port: 5555 }, { address: "127.0.0.60", port: destination.port }, tlvs);

  it("forwarded, denied and bad connections each get a line naming the client, the decision and the reason", async () => {
    const { router, lines } = await routerWithLog("text");
    const forwarded = await sendFrom(router, Buffer.concat([forwardHeader([{ type: TLV.WASMERANG_RULE, value: Buffer.from("corp") }]), Buffer.from("data")]));
    const denied = await sendFrom(router, encodeProxyHeader(1, { address: "10.0.0.2", port: 5555 }, { address: "127.0.0.61", port: 22 }));
    const bad = await sendFrom(router, Buffer.from("GET / HTTP/1.1\r\n\r\n"));
    await router.close();
    const [first, second, third] = lines();
    assert.match(first!, new RegExp(`^\\S+ 127\\.0\\.0\\.1:${forwarded} 10\\.0\\.0\\.2:5555 -> 127\\.0\\.0\\.60:${destination.port} rule=corp up=4 down=\\d+ \\d+ms forwarded$`));
    assert.match(second!, new RegExp(`^\\S+ 127\\.0\\.0\\.1:${denied} 10\\.0\\.0\\.2:5555 -> 127\\.0\\.0\\.61:22 up=0 down=0 \\d+ms denied reason="destination denied: 127\\.0\\.0\\.61:22 is not in the allowlist`));
    assert.match(third!, new RegExp(`^\\S+ 127\\.0\\.0\\.1:${bad} - -> - up=0 down=0 \\d+ms bad_header reason=`));
    assert.equal(lines().length, 3);
  });

  it("a newline in a TLV cannot forge a line", async () => {
    const { router, lines } = await routerWithLog("text");
    await sendFrom(router, Buffer.concat([forwardHeader([{ type: TLV.AUTHORITY, value: Buffer.from("a.example\n2026-01-01T00:00:00Z 6.6.6.6:1 forged") }]), Buffer.from("x")]));
    await router.close();
    assert.equal(lines().length, 1);
    assert.match(lines()[0]!, /authority=a\.example\\x0a2026-01-01T00:00:00Z\\x206\.6\.6\.6:1\\x20forged /);
  });

  it("JSON lines on request", async () => {
    const { router, lines } = await routerWithLog("json");
    await sendFrom(router, Buffer.concat([forwardHeader(), Buffer.from("x")]));
    await sendFrom(router, Buffer.from("PROXY TCP4 "));
    await router.close();
    const records = lines().map((line) => JSON.parse(line) as { decision: string; client: string; destination: string; reason?: string; bytes_up: number });
    assert.deepEqual(records.map((r) => r.decision), ["forwarded", "bad_header"]);
    assert.equal(records[0]!.destination, `127.0.0.60:${destination.port}`);
    assert.equal(records[0]!.bytes_up, 1);
    assert.match(records[0]!.client, /^127\.0\.0\.1:\d+$/);
    assert.match(records[1]!.reason!, /before a complete PROXY header/);
  });
});
