// The Docker example's envoy.yaml, run by the local runner: Docker cannot run here, so its routing
// is tested with the same file, with only addresses and the module path pointed at this machine.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { once } from "node:events";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, it } from "node:test";
import { parse } from "yaml";
import { decodeProxyHeader, encodeProxyHeader } from "../src/egress/proxy-protocol.js";
import { FILTER_WASM, REPO } from "./helpers.js";
import { exchange, startRunner, startTagServer, type TagServer } from "./net-helpers.js";

let routers: TagServer[] = [];
let webs: Server[] = [];
before(async () => {
  routers = [await startTagServer("egress-router1"), await startTagServer("egress-router2")];
  webs = await Promise.all([1, 2].map(async (n) => {
    const server = createServer((req, res) => res.end(`web via egress-router${n}: ${req.headers["x-wasmerang-cluster"]}`)).listen(0, "127.0.0.1");
    await once(server, "listening");
    return server;
  }));
});
after(async () => {
  for (const router of routers) await router.close();
  for (const web of webs) web.close();
});

function httpGet(port: number, source: string): Promise<string> {
  return new Promise((resolve, reject) => {
    request({ host: "127.0.0.1", port, path: "/web", localAddress: source, agent: false }, (res) => {
      let body = "";
      res.on("data", (chunk: Buffer) => (body += chunk.toString()));
      res.on("end", () => resolve(body));
    }).on("error", reject).end();
  });
}

it("examples/envoy-docker/envoy.yaml routes even clients to egress-router1 and odd ones to egress-router2, with PROXY v2", async () => {
  const config = parse(readFileSync(join(REPO, "examples/envoy-docker/envoy.yaml"), "utf8")) as any; // a YAML document edited in place
  config.admin.address.socket_address = { address: "127.0.0.1", port_value: 0 };
  const listener = config.static_resources.listeners[0];
  listener.address.socket_address = { address: "127.0.0.1", port_value: 0 };
  listener.filter_chains[0].filters[0].typed_config.config.vm_config.code.local.filename = FILTER_WASM;
  listener.filter_chains[0].filters[1].typed_config.access_log = [];
  config.static_resources.listeners[1].address.socket_address = { address: "127.0.0.1", port_value: 0 };
  config.static_resources.listeners[1].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.config.vm_config.code.local.filename = FILTER_WASM;
  config.static_resources.clusters.forEach((cluster: { name: string; type: string; load_assignment: { endpoints: { lb_endpoints: { endpoint: { address: { socket_address: object } } }[] }[] } }) => {
    const index = cluster.name.startsWith("egress-router1") ? 0 : 1;
    const port = cluster.name.endsWith("-http") ? (webs[index]!.address() as AddressInfo).port : routers[index]!.port;
    cluster.type = "STATIC";
    cluster.load_assignment.endpoints[0]!.lb_endpoints[0]!.endpoint.address.socket_address = { address: "127.0.0.1", port_value: port };
  });
  const runner = await startRunner(config);
  try {
    for (const [client, router] of [["127.0.0.10", 0], ["127.0.0.11", 1]] as const) {
      const destination = { address: "10.88.2.100", port: 8080 };
      const header = encodeProxyHeader(1, { address: client, port: 40000 }, destination).toString("latin1");
      const { reply } = await exchange(runner.listenerPort("wasmerang"), `${header}hello from ${client}`, client);
      const [tag, rest] = [reply.slice(0, reply.indexOf(":")), Buffer.from(reply.slice(reply.indexOf(":") + 1), "latin1")];
      assert.equal(tag, `egress-router${router + 1}`);
      const decoded = decodeProxyHeader(rest);
      assert.equal(decoded.kind, "header");
      if (decoded.kind !== "header") return;
      assert.equal(decoded.header.version, 2);
      assert.deepEqual(decoded.header.source, { address: client, port: 40000 });
      assert.deepEqual(decoded.header.destination, destination);
      assert.equal(rest.subarray(decoded.length).toString(), `hello from ${client}`);
    }
    // The HTTP listener: the request reaches the router the source's parity picks, with the header set.
    for (const [client, router] of [["127.0.0.10", 1], ["127.0.0.11", 2]] as const) {
      assert.equal(await httpGet(runner.listenerPort("wasmerang_http"), client), `web via egress-router${router}: egress-router${router}-http`);
    }
  } finally {
    await runner.close();
  }
});
