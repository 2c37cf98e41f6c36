// Counters that add up: for each listener filter, the runner's byte counters, the access log and
// what the peers got agree; connections are counted once; HTTP listeners have no tcp_proxy stats;
// a connection cut at the drain deadline still gets its access-log line.
import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtempSync, readFileSync } from "node:fs";
import { connect, createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { after, before, describe, it } from "node:test";
import { encodeProxyHeader } from "../src/egress/proxy-protocol.js";
import {
  adminGet, bootstrap, fileAccessLog, httpConnectionManager, PROXY_PROTOCOL_FILTER, readExactly, startEchoServer, startRunner, staticCluster,
  stopServer, tcpProxy, TLS_INSPECTOR_FILTER, type EchoServer,
} from "./net-helpers.js";

/** The first bytes a real TLS client sends for `serverName`: its ClientHello. */
async function clientHello(serverName: string): Promise<Buffer> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const first = new Promise<Buffer>((resolve) => server.once("connection", (socket) => socket.once("data", (chunk: Buffer) => {
    resolve(chunk);
    socket.destroy();
  })));
  const client = tlsConnect({ port: (server.address() as AddressInfo).port, host: "127.0.0.1", servername: serverName });
  client.on("error", () => undefined);
  const hello = await first;
  client.destroy();
  server.close();
  return hello;
}

function stat(body: string, name: string): number {
  const match = new RegExp(`^${name.replace(/[.[\]]/g, "\\$&")}: (\\d+)$`, "m").exec(body);
  return match ? Number(match[1]) : NaN;
}

const PAYLOAD = Buffer.alloc(100_000, 0x61);
const SOURCE = { address: "10.0.0.1", port: 4000 };
const DESTINATION = { address: "10.0.0.2", port: 443 };

describe("byte and connection accounting per listener filter", () => {
  let echo: EchoServer;
  before(async () => (echo = await startEchoServer()));
  after(() => stopServer(echo));

  const cases: { name: string; filters: object[]; header: () => Buffer; counted: () => Promise<Buffer> }[] = [
    { name: "no listener filter", filters: [], header: () => Buffer.alloc(0), counted: async () => PAYLOAD },
    { name: "proxy_protocol, v1 header", filters: [PROXY_PROTOCOL_FILTER], header: () => encodeProxyHeader(1, SOURCE, DESTINATION), counted: async () => PAYLOAD },
    { name: "proxy_protocol, v2 header", filters: [PROXY_PROTOCOL_FILTER], header: () => encodeProxyHeader(2, SOURCE, DESTINATION), counted: async () => PAYLOAD },
    // The ClientHello is peeked, not consumed: it goes upstream and is counted.
    { name: "tls_inspector, a real ClientHello", filters: [TLS_INSPECTOR_FILTER], header: () => Buffer.alloc(0),
      counted: async () => Buffer.concat([await clientHello("api.example"), PAYLOAD]) },
    { name: "proxy_protocol then tls_inspector", filters: [PROXY_PROTOCOL_FILTER, TLS_INSPECTOR_FILTER], header: () => encodeProxyHeader(2, SOURCE, DESTINATION),
      counted: async () => Buffer.concat([await clientHello("api.example"), PAYLOAD]) },
  ];
  for (const { name, filters, header, counted } of cases) {
    it(`${name}: counters, access log and peers agree`, async () => {
      const log = join(mkdtempSync(join(tmpdir(), "wasmerang-accounting-")), "access.log");
      const runner = await startRunner(bootstrap([tcpProxy("echo", { access_log: [fileAccessLog(log, "%BYTES_RECEIVED% %BYTES_SENT% %UPSTREAM_CLUSTER%\n")] })],
        [staticCluster("echo", echo.port)], { listener_filters: filters }));
      try {
        const before = echo.received;
        const body = await counted();
        const client = connect({ port: runner.listenerPort("main"), host: "127.0.0.1" });
        await once(client, "connect");
        const reply = readExactly(client, body.length, 10_000);
        client.write(Buffer.concat([header(), body]));
        assert.equal((await reply).length, body.length);
        client.end();
        await once(client, "close");
        for (let i = 0; i < 100 && runner.activeConnections > 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
        assert.equal(echo.received - before, body.length, "the upstream got everything after the PROXY header");
        const stats = (await adminGet(runner, "/stats")).body;
        assert.equal(stat(stats, "tcp.ingress.downstream_cx_rx_bytes_total"), body.length);
        assert.equal(stat(stats, "tcp.ingress.downstream_cx_tx_bytes_total"), body.length);
        assert.equal(stat(stats, "cluster.echo.upstream_cx_tx_bytes_total"), body.length);
        assert.equal(stat(stats, "cluster.echo.upstream_cx_rx_bytes_total"), body.length);
        assert.equal(stat(stats, "listener.127.0.0.1_0.downstream_cx_total"), 1);
        assert.equal(stat(stats, "listener.127.0.0.1_0.downstream_cx_destroy"), 1);
        assert.equal(stat(stats, "listener.127.0.0.1_0.downstream_cx_active"), 0);
        await runner.close();
        assert.equal(readFileSync(log, "utf8"), `${body.length} ${body.length} echo\n`);
      } finally {
        await runner.close();
      }
    });
  }

  it("an HTTP listener counts under http.<prefix>, not tcp.*", async () => {
    const runner = await startRunner(bootstrap([httpConnectionManager({ cluster: "echo" })], [staticCluster("echo", echo.port)]));
    try {
      const stats = (await adminGet(runner, "/stats")).body;
      assert.match(stats, /^http\.web\.downstream_rq_total: 0$/m);
      assert.doesNotMatch(stats, /^tcp\./m);
    } finally {
      await runner.close();
    }
  });

  it("a connection cut at the drain deadline is reset and still logged", async () => {
    const log = join(mkdtempSync(join(tmpdir(), "wasmerang-drain-log-")), "access.log");
    const runner = await startRunner(bootstrap([tcpProxy("echo", { access_log: [fileAccessLog(log, "%BYTES_RECEIVED% %UPSTREAM_CLUSTER% %DURATION%\n")] })],
      [staticCluster("echo", echo.port)]));
    const client = connect({ port: runner.listenerPort("main"), host: "127.0.0.1" });
    client.on("error", () => undefined);
    await once(client, "connect");
    client.write("half a transfer");
    await readExactly(client, 15);
    await runner.drain(200);
    assert.match(readFileSync(log, "utf8"), /^15 echo \d+\n$/);
  });
});
