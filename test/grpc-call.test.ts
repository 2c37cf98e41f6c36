// proxy_grpc_call through the runner: a network filter pauses a new connection, calls a gRPC
// service on a cluster of the bootstrap (HTTP/2, length-prefixed messages, grpc-status in the
// trailers), and routes on the reply or closes on a failed status; a call to a cluster the
// bootstrap lacks is BadArgument. The service is node:http2 speaking gRPC's framing.
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type Http2Server } from "node:http2";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { grpcCluster } from "../src/host/grpc-call.js";
import { thirdPartyModuleFile } from "./fixtures/third-party-module.js";
import { bootstrap, exchange, startRunner, staticCluster, tagServers, tcpProxy, wasmFilter } from "./net-helpers.js";


function frame(message: string): Buffer {
  const body = Buffer.from(message);
  const out = Buffer.alloc(5 + body.length);
  out.writeUInt32BE(body.length, 1);
  body.copy(out, 5);
  return out;
}

describe("proxy_grpc_call from a network filter", () => {
  const routers = tagServers("r1", "r2");
  let service: Http2Server;
  let reply: { message?: string; status: number } = { message: "route", status: 0 };
  const calls: { path: string; message: string }[] = [];

  before(async () => {
    service = createServer();
    service.on("stream", (stream, headers) => {
      const chunks: Buffer[] = [];
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("end", () => {
        const request = Buffer.concat(chunks);
        calls.push({ path: String(headers[":path"]), message: request.subarray(5, 5 + request.readUInt32BE(1)).toString() });
        stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": String(reply.status) }));
        stream.end(reply.message === undefined ? undefined : frame(reply.message));
      });
    });
    service.listen(0, "127.0.0.1");
    await once(service, "listening");
  });

  after(() => service.close());

  const clusters = () => [staticCluster("egress-router1", routers[0]!.port), staticCluster("egress-router2", routers[1]!.port),
    staticCluster("grpc", (service.address() as AddressInfo).port)];

  it("the connection waits for the reply and goes where it says; a failed status closes it", async () => {
    const runner = await startRunner(bootstrap([wasmFilter(await thirdPartyModuleFile("grpc-ask"), ""), tcpProxy("egress-router1")], clusters()));
    try {
      reply = { message: "route", status: 0 };
      assert.equal((await exchange(runner.listenerPort("main"), "hello")).reply, "r2:hello");
      assert.deepEqual(calls.at(-1), { path: "/test.Policy/Decide", message: "hello" });
      reply = { status: 7 };
      assert.ok((await exchange(runner.listenerPort("main"), "denied")).closedEmpty);
    } finally {
      await runner.close();
    }
  });

  it("a call to a cluster the bootstrap does not define is refused (BadArgument): the module continues unrouted", async () => {
    const runner = await startRunner(bootstrap([wasmFilter(await thirdPartyModuleFile("grpc-unknown-cluster"), ""), tcpProxy("egress-router1")], clusters()));
    try {
      const count = calls.length;
      assert.equal((await exchange(runner.listenerPort("main"), "x")).reply, "r1:x");
      assert.equal(calls.length, count);
    } finally {
      await runner.close();
    }
  });

  it("the service argument is a GrpcService naming a cluster, or the cluster's name", () => {
    // envoy_grpc { cluster_name: "grpc" }
    assert.equal(grpcCluster(Buffer.from([0x0a, 0x06, 0x0a, 0x04, ...Buffer.from("grpc")])), "grpc");
    assert.equal(grpcCluster(Buffer.from("policy-service")), "policy-service");
  });
});
