// examples/policy-service: a filter on this project's SDK that asks a policy service (proxy_http_call)
// where each connection goes, run through the runner with the example's own bootstrap (ports
// moved to the test's servers).
import assert from "node:assert/strict";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parseYaml } from "../src/envoy/load.js";
import type { Runner } from "../src/runner/runner.js";
import { REPO } from "./helpers.js";
import { exchange, startRunner, tagServers } from "./net-helpers.js";

type Bootstrap = { admin: { address: { socket_address: { port_value: number } } };
  static_resources: { listeners: { address: { socket_address: { port_value: number } } }[]; clusters: { name: string; load_assignment: { endpoints: { lb_endpoints: { endpoint: { address: { socket_address: { port_value: number } } } }[] }[] } }[] } };

describe("examples/policy-service: routing decided by a policy service", () => {
  const routers = tagServers("r1", "r2");
  let policy: Server;
  let runner: Runner;
  const answers = new Map<string, string>();
  const asked: string[] = [];

  before(async () => {
    policy = createServer((request, response) => {
      const source = new URL(request.url ?? "/", "http://policy").searchParams.get("source") ?? "";
      asked.push(source);
      const answer = answers.get(source.split(":")[0]!) ?? "reject";
      response.writeHead(answer === "error" ? 500 : 200).end(answer);
    }).listen(0, "127.0.0.1");
    await once(policy, "listening");
    const config = parseYaml(readFileSync(join(REPO, "examples/policy-service/envoy.yaml"), "utf8"), "envoy.yaml") as Bootstrap;
    config.admin.address.socket_address.port_value = 0;
    config.static_resources.listeners[0]!.address.socket_address.port_value = 0;
    const ports: Record<string, number> = { policy: (policy.address() as AddressInfo).port, "egress-router1": routers[0]!.port, "egress-router2": routers[1]!.port };
    for (const cluster of config.static_resources.clusters) {
      cluster.load_assignment.endpoints[0]!.lb_endpoints[0]!.endpoint.address.socket_address.port_value = ports[cluster.name]!;
    }
    runner = await startRunner(config);
  });

  after(async () => {
    await runner.close();
    policy.close();
  });

  it("a connection goes to the cluster the service names, and the service is told the source", async () => {
    answers.set("127.0.0.1", "egress-router2");
    assert.equal((await exchange(runner.listenerPort("ask-policy"), "to two")).reply, "r2:to two");
    assert.match(asked.at(-1)!, /^127\.0\.0\.1:\d+$/);
  });

  it("`reject` or an error answer closes the connection before any upstream is reached", async () => {
    const accepted = routers[0]!.accepted + routers[1]!.accepted;
    answers.set("127.0.0.1", "reject");
    assert.ok((await exchange(runner.listenerPort("ask-policy"), "no")).closedEmpty);
    answers.set("127.0.0.1", "error");
    assert.ok((await exchange(runner.listenerPort("ask-policy"), "no")).closedEmpty);
    assert.equal(routers[0]!.accepted + routers[1]!.accepted, accepted);
  });
});
