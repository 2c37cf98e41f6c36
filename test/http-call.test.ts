// proxy_http_call through the runner, as Envoy makes it: a network filter pauses a new connection,
// asks a policy service (a cluster of the bootstrap), and routes or closes when the answer comes;
// a call to a cluster the bootstrap lacks is BadArgument.
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { toRunnerConfig } from "../src/envoy/load.js";
import { thirdPartyModuleFile } from "./fixtures/third-party-module.js";
import { bootstrap, exchange, startRunner, staticCluster, tagServers, tcpProxy, wasmFilter } from "./net-helpers.js";


describe("proxy_http_call from a network filter", () => {
  const routers = tagServers("r1", "r2");
  let policy: Server;
  let answer = "route";
  const asked: string[] = [];

  before(async () => {
    policy = createServer((request, response) => {
      asked.push(`${request.method} ${request.url} ${request.headers.host}`);
      if (answer !== "hang") response.end(answer);
    }).listen(0, "127.0.0.1");
    await once(policy, "listening");
  });

  after(() => policy.close());

  const clusters = () => [staticCluster("egress-router1", routers[0]!.port), staticCluster("egress-router2", routers[1]!.port),
    staticCluster("policy", (policy.address() as AddressInfo).port)];

  it("the connection waits for the answer, then goes where it says", async () => {
    const runner = await startRunner(bootstrap([wasmFilter(await thirdPartyModuleFile("ask-policy"), ""), tcpProxy("egress-router1")], clusters()));
    try {
      answer = "route";
      assert.equal((await exchange(runner.listenerPort("main"), "hello")).reply, "r2:hello");
      assert.deepEqual(asked.at(-1), "GET /decide policy");
      answer = "close";
      const closed = await exchange(runner.listenerPort("main"), "bye");
      assert.ok(closed.closedEmpty);
    } finally {
      await runner.close();
    }
  });

  it("past its timeout (1 s here) the call gets Envoy's empty answer: no headers, no body", async () => {
    const runner = await startRunner(bootstrap([wasmFilter(await thirdPartyModuleFile("ask-policy"), ""), tcpProxy("egress-router1")], clusters()));
    try {
      answer = "hang";
      const started = Date.now();
      assert.ok((await exchange(runner.listenerPort("main"), "slow")).closedEmpty);
      assert.ok(Date.now() - started >= 900);
    } finally {
      answer = "route";
      policy.closeAllConnections();
      await runner.close();
    }
  });

  it("a VM a reload kept calls the clusters of the new configuration", async () => {
    const moved: string[] = [];
    const second = createServer((request, response) => {
      moved.push(`${request.method} ${request.url}`);
      response.end("route");
    }).listen(0, "127.0.0.1");
    await once(second, "listening");
    const config = (policyPort: number) => bootstrap([wasmFilter(filterFile, ""), tcpProxy("egress-router1")],
      [staticCluster("egress-router1", routers[0]!.port), staticCluster("egress-router2", routers[1]!.port), staticCluster("policy", policyPort)]);
    const filterFile = await thirdPartyModuleFile("ask-policy");
    const runner = await startRunner(config((policy.address() as AddressInfo).port));
    try {
      answer = "route";
      await runner.reload(toRunnerConfig(config((second.address() as AddressInfo).port), "moved.yaml"));
      const calls = asked.length;
      assert.equal((await exchange(runner.listenerPort("main"), "moved")).reply, "r2:moved");
      assert.deepEqual(moved, ["GET /decide"]);
      assert.equal(asked.length, calls, "the old policy server is not asked any more");
    } finally {
      await runner.close();
      second.close();
    }
  });

  it("a call to a cluster the bootstrap does not define is refused (BadArgument): the module continues unrouted", async () => {
    const runner = await startRunner(bootstrap([wasmFilter(await thirdPartyModuleFile("ask-unknown-cluster"), ""), tcpProxy("egress-router1")], clusters()));
    try {
      const calls = asked.length;
      assert.equal((await exchange(runner.listenerPort("main"), "x")).reply, "r1:x");
      assert.equal(asked.length, calls);
    } finally {
      await runner.close();
    }
  });
});
