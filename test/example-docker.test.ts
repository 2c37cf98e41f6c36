// The Docker example's envoy.yaml, run by the local runner: Docker cannot run here, so its routing
// is tested with the same file, with only addresses and the module path pointed at this machine.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { parse } from "yaml";
import { decodeProxyHeader, encodeProxyHeader } from "../src/egress/proxy-protocol.js";
import { FILTER_WASM, REPO } from "./helpers.js";
import { exchange, startRunner, startTagServer, type TagServer } from "./net-helpers.js";

let routers: TagServer[] = [];
before(async () => {
  routers = [await startTagServer("egress-router1"), await startTagServer("egress-router2")];
});
after(async () => {
  for (const router of routers) await router.close();
});

it("examples/envoy-docker/envoy.yaml routes even clients to egress-router1 and odd ones to egress-router2, with PROXY v2", async () => {
  const config = parse(readFileSync(join(REPO, "examples/envoy-docker/envoy.yaml"), "utf8")) as any; // a YAML document edited in place
  config.admin.address.socket_address = { address: "127.0.0.1", port_value: 0 };
  const listener = config.static_resources.listeners[0];
  listener.address.socket_address = { address: "127.0.0.1", port_value: 0 };
  listener.filter_chains[0].filters[0].typed_config.config.vm_config.code.local.filename = FILTER_WASM;
  listener.filter_chains[0].filters[1].typed_config.access_log = [];
  config.static_resources.clusters.forEach((cluster: { type: string; load_assignment: { endpoints: { lb_endpoints: { endpoint: { address: { socket_address: object } } }[] }[] } }, i: number) => {
    cluster.type = "STATIC";
    cluster.load_assignment.endpoints[0]!.lb_endpoints[0]!.endpoint.address.socket_address = { address: "127.0.0.1", port_value: routers[i]!.port };
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
  } finally {
    await runner.close();
  }
});
