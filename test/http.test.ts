// HTTP end to end through the runner: the same filter as an HTTP filter writes the chosen cluster
// into x-wasmerang-cluster, which the route uses through cluster_header.
import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { Agent, createServer, type Server } from "node:http";
import { connect, createServer as createNetServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Runner } from "../src/runner/runner.js";
import { buildThirdPartyModule } from "./fixtures/third-party-module.js";
import { FILTER_WASM } from "./helpers.js";
import { get, httpBootstrap, httpWasm, upstream } from "./http-helpers.js";
import { proxyProtocolTransport, staticCluster, startRunner } from "./net-helpers.js";

const dir = mkdtempSync(join(tmpdir(), "wasmerang-http-"));

const policy = (cluster: string) => JSON.stringify({ log_level: "warn", default: { cluster } });

const POLICY = JSON.stringify({
  log_level: "warn",
  http: { reject_status: 451, reject_body: "not here\n" },
  rules: [
    { name: "api", match: { authorities: ["api.example.com", "*.api.example.com"] }, action: { cluster: "egress-router2" } },
    { name: "admin", match: { path_prefixes: ["/admin"] }, action: { reject: true } },
    { name: "payments", match: { headers: [{ name: "x-team", value: "payments" }] }, action: { cluster: "egress-router2" } },
  ],
});

describe("HTTP through the runner", () => {
  let one: { server: Server; port: number };
  let two: { server: Server; port: number };
  let runner: Runner;
  const logPath = join(dir, "access.log");
  before(async () => {
    one = await upstream("router1");
    two = await upstream("router2");
    runner = await startRunner(httpBootstrap([httpWasm(FILTER_WASM, POLICY)],
      [staticCluster("egress-router1", one.port), staticCluster("egress-router2", two.port), staticCluster("dead", 1)], logPath));
  });
  after(async () => {
    await runner.close();
    one.server.close();
    two.server.close();
  });

  it("different source addresses reach different clusters (reference parity)", async () => {
    assert.equal((await get(runner, "/x", { source: "127.0.0.10" })).body, "router1 GET /x cluster=egress-router1 body=");
    assert.equal((await get(runner, "/x", { source: "127.0.0.11" })).body, "router2 GET /x cluster=egress-router2 body=");
  });

  it("Host, path and header matchers pick the cluster", async () => {
    assert.match((await get(runner, "/", { source: "127.0.0.10", host: "api.example.com:8080" })).body, /^router2 /);
    assert.match((await get(runner, "/", { source: "127.0.0.10", host: "v2.api.example.com" })).body, /^router2 /);
    assert.match((await get(runner, "/", { source: "127.0.0.10", headers: { "x-team": "payments" } })).body, /^router2 /);
    assert.match((await get(runner, "/", { source: "127.0.0.10", headers: { "x-team": "search" } })).body, /^router1 /);
  });

  it("a client's own x-wasmerang-cluster is overwritten", async () => {
    assert.equal((await get(runner, "/spoof", { source: "127.0.0.10", headers: { "x-wasmerang-cluster": "egress-router2" } })).body,
      "router1 GET /spoof cluster=egress-router1 body=");
  });

  it("reject answers locally with the configured status and body", async () => {
    assert.deepEqual(await get(runner, "/admin/users", { source: "127.0.0.10" }), { status: 451, body: "not here\n" });
  });

  it("keep-alive and chunked request bodies", async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const first = await get(runner, "/1", { source: "127.0.0.10", agent, body: "hello body" });
    const second = await get(runner, "/2", { source: "127.0.0.10", agent });
    assert.equal(first.body, "router1 POST /1 cluster=egress-router1 body=hello body");
    assert.equal(second.body, "router1 GET /2 cluster=egress-router1 body=");
    agent.destroy();
  });

  it("pipelined requests on one connection are answered in order", async () => {
    const socket = connect({ port: runner.listenerPort("http"), host: "127.0.0.1", localAddress: "127.0.0.10" });
    let received = "";
    socket.on("data", (chunk: Buffer) => (received += chunk.toString()));
    await once(socket, "connect");
    socket.write("GET /first HTTP/1.1\r\nHost: a.test\r\n\r\nGET /second HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n");
    await once(socket, "close");
    const bodies = [...received.matchAll(/router1 GET (\/\w+) cluster=egress-router1/g)].map((m) => m[1]);
    assert.deepEqual(bodies, ["/first", "/second"]);
  });

  it("a dead upstream answers 503 with UF in the access log", async () => {
    const deadPolicy = await startRunner(httpBootstrap([httpWasm(FILTER_WASM, JSON.stringify({ log_level: "warn", default: { cluster: "dead" } }))],
      [staticCluster("dead", 1)], join(dir, "dead.log")));
    try {
      const reply = await get(deadPolicy, "/gone");
      assert.equal(reply.status, 503);
      assert.match(reply.body, /^upstream connect error or disconnect\/reset before headers\. reset reason: connection failure/);
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.match(readFileSync(join(dir, "dead.log"), "utf8"), /^GET \/gone HTTP\/1\.1 503 UF dead$/m);
    } finally {
      await deadPolicy.close();
    }
  });

  it("without a decision the header is removed, so the route finds no cluster (404, NC)", async () => {
    const passthrough = await startRunner(httpBootstrap([httpWasm(FILTER_WASM, JSON.stringify({ log_level: "warn", default: { passthrough: true } }))],
      [staticCluster("egress-router1", one.port)]));
    try {
      assert.equal((await get(passthrough, "/", { headers: { "x-wasmerang-cluster": "egress-router1" } })).status, 404);
    } finally {
      await passthrough.close();
    }
  });

  it("the access log has the request line, status and cluster", async () => {
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.match(readFileSync(logPath, "utf8"), /^GET \/x HTTP\/1\.1 200 - egress-router1$/m);
    assert.match(readFileSync(logPath, "utf8"), /^GET \/admin\/users HTTP\/1\.1 451 - -$/m);
  });

  it("body callbacks: a module appends to the request and the response bodies at end of stream", async () => {
    const module = join(dir, "http-body.wasm");
    writeFileSync(module, await buildThirdPartyModule("http-body"));
    const bodies = await startRunner(httpBootstrap([httpWasm(module, ""), httpWasm(FILTER_WASM, policy("egress-router1"))],
      [staticCluster("egress-router1", one.port)]));
    try {
      assert.equal((await get(bodies, "/b", { body: "payload" })).body, "router1 POST /b cluster=egress-router1 body=payload!?");
    } finally {
      await bodies.close();
    }
  });

  it("a third-party-style HTTP module (headers only) loads and routes", async () => {
    const module = join(dir, "http-route.wasm");
    writeFileSync(module, await buildThirdPartyModule("http-route"));
    const thirdParty = await startRunner(httpBootstrap([httpWasm(module, "")], [staticCluster("egress-router2", two.port)]));
    try {
      assert.equal((await get(thirdParty, "/t")).body, "router2 GET /t cluster=egress-router2 body=");
    } finally {
      await thirdParty.close();
    }
  });
});

describe("HTTP headers as Envoy's connection manager presents them", () => {
  it("hop-by-hop headers removed, x-forwarded-proto and x-request-id added; the response gets server: envoy and the router's timing", async () => {
    let received: Record<string, string | string[] | undefined> = {};
    const echo = createServer((request, response) => {
      received = request.headers;
      response.writeHead(200, { server: "backend", "keep-alive": "timeout=9" }).end("ok");
    }).listen(0, "127.0.0.1");
    await once(echo, "listening");
    const runner = await startRunner(httpBootstrap([httpWasm(FILTER_WASM, policy("backend"))], [staticCluster("backend", (echo.address() as AddressInfo).port)]));
    try {
      const response = await fetch(`http://127.0.0.1:${runner.listenerPort("http")}/h`, { headers: { te: "gzip", "x-client": "1", "proxy-connection": "keep-alive" } });
      assert.equal(await response.text(), "ok");
      assert.equal(response.headers.get("server"), "envoy");
      assert.match(response.headers.get("x-envoy-upstream-service-time") ?? "", /^\d+$/);
      assert.notEqual(response.headers.get("keep-alive"), "timeout=9", "the upstream's connection headers stay with its connection");
      assert.equal(received["x-client"], "1");
      assert.equal(received.te, undefined, "a TE without trailers is removed");
      assert.equal(received["proxy-connection"], undefined);
      assert.equal(received["x-forwarded-proto"], "http");
      assert.match(String(received["x-request-id"]), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      await (await fetch(`http://127.0.0.1:${runner.listenerPort("http")}/h`, { headers: { te: "gzip;q=0.5, Trailers" } })).text();
      assert.equal(received.te, "trailers", "TE with trailers goes upstream as `trailers`, as Envoy's connection manager leaves it");
    } finally {
      await runner.close();
      echo.close();
    }
  });
});

describe("HTTP to a cluster with the upstream PROXY protocol transport", () => {
  it("each downstream connection gets its own upstream connections, each starting with that connection's addresses", async () => {
    // An upstream that reads the PROXY v1 line, then answers HTTP with it.
    const headers: string[] = [];
    const http = createServer((req, res) => res.end(headers[Number((req.socket as unknown as { index: number }).index)]));
    const upstreamServer = createNetServer((socket) => {
      let buffered = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        const end = buffered.indexOf("\r\n");
        if (end < 0) return;
        socket.off("data", onData);
        (socket as unknown as { index: number }).index = headers.push(buffered.subarray(0, end).toString("latin1")) - 1;
        socket.unshift(buffered.subarray(end + 2));
        http.emit("connection", socket);
      };
      socket.on("data", onData);
    }).listen(0, "127.0.0.1");
    await once(upstreamServer, "listening");
    const runner = await startRunner(httpBootstrap([httpWasm(FILTER_WASM, policy("pp"))],
      [staticCluster("pp", (upstreamServer.address() as AddressInfo).port, { transport_socket: proxyProtocolTransport("V1") })]));
    const first = new Agent({ keepAlive: true, maxSockets: 1 });
    const second = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const port = runner.listenerPort("http");
      const header = new RegExp(`^PROXY TCP4 127\\.0\\.0\\.1 127\\.0\\.0\\.1 (\\d+) ${port}$`);
      const a1 = (await get(runner, "/1", { agent: first })).body;
      const a2 = (await get(runner, "/2", { agent: first })).body;
      const b1 = (await get(runner, "/3", { agent: second })).body;
      assert.match(a1, header);
      assert.equal(a2, a1, "a keep-alive downstream connection reuses its upstream connection");
      assert.match(b1, header);
      assert.notEqual(b1, a1, "another downstream connection has its own upstream connection and header");
      assert.equal(headers.length, 2);
    } finally {
      first.destroy();
      second.destroy();
      await runner.close();
      upstreamServer.close();
    }
  });
});
