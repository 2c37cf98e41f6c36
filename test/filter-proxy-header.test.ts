// The filter's own PROXY protocol header (policy `proxy_protocol`), for upstreams whose cluster
// cannot be given Envoy's upstream proxy_protocol transport socket.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Allowlist } from "../src/egress/allowlist.js";
import { decodeProxyHeader, TLV } from "../src/egress/proxy-protocol.js";
import { EgressRouter } from "../src/egress/router.js";
import { silentLogger } from "../src/logging.js";
import { loadFilter } from "./helpers.js";
import { bootstrap, exchange, startRunner, startTagServer, staticCluster, tcpProxy, wasmFilter } from "./net-helpers.js";
import { FILTER_WASM } from "./helpers.js";

const policy = (version: number, tlvs: string[] = []) => ({
  log_level: "warn",
  proxy_protocol: { version, destination_ports: [443, "8000-8100"], tlvs },
  rules: [{ name: "tls", match: { destination_ports: [443] }, action: { cluster: "egress-router1" } }],
});

function header(data: Buffer) {
  const decoded = decodeProxyHeader(data);
  assert.equal(decoded.kind, "header", JSON.stringify(decoded));
  return decoded as Extract<typeof decoded, { kind: "header" }>;
}

describe("the filter's own PROXY header", () => {
  it("v2 with the SNI and the rule name as TLVs, in front of the first bytes only", async () => {
    const filter = await loadFilter(policy(2, ["authority", "rule"]));
    const connection = filter.connect({ source: "10.0.0.2:5000", destination: "203.0.113.9:443", serverName: "api.example.com" });
    const first = connection.downstream("hello").data;
    const { header: decoded, length } = header(first);
    assert.deepEqual(decoded.source, { address: "10.0.0.2", port: 5000 });
    assert.deepEqual(decoded.destination, { address: "203.0.113.9", port: 443 });
    assert.deepEqual(decoded.tlvs, [{ type: TLV.AUTHORITY, value: Buffer.from("api.example.com") }, { type: TLV.WASMERANG_RULE, value: Buffer.from("tls") }]);
    assert.equal(first.subarray(length).toString(), "hello");
    assert.equal(connection.downstream("more").data.toString(), "more");
  });

  it("v1 text, IPv4 and IPv6", async () => {
    const filter = await loadFilter(policy(1));
    const v4 = filter.connect({ source: "10.0.0.2:5000", destination: "203.0.113.9:8050" });
    assert.equal(v4.downstream("x").data.toString(), "PROXY TCP4 10.0.0.2 203.0.113.9 5000 8050\r\nx");
    const v6 = filter.connect({ source: "[2001:db8::2]:5000", destination: "[2001:db8::9]:443" });
    const { header: decoded } = header(v6.downstream("x").data);
    assert.deepEqual(decoded.source, { address: "2001:db8::2", port: 5000 });
    assert.deepEqual(decoded.destination, { address: "2001:db8::9", port: 443 });
  });

  it("no header for ports not listed", async () => {
    const filter = await loadFilter(policy(2));
    assert.equal(filter.connect({ source: "10.0.0.2:5000", destination: "203.0.113.9:80" }).downstream("plain").data.toString(), "plain");
  });

  const refused: [string, object, RegExp][] = [
    ["a server-speaks-first port", { proxy_protocol: { version: 2, destination_ports: ["20-30"] } },
      /proxy_protocol\.destination_ports\[0\]: includes port 21, where the server speaks first/],
    ["TLVs with v1", { proxy_protocol: { version: 1, destination_ports: [443], tlvs: ["rule"] } }, /proxy_protocol\.tlvs: PROXY protocol v1 cannot carry TLVs/],
    ["no ports", { proxy_protocol: { version: 2 } }, /proxy_protocol\.destination_ports: is required/],
    ["a bad version", { proxy_protocol: { version: 3, destination_ports: [443] } }, /proxy_protocol\.version: must be 1 or 2/],
  ];
  for (const [what, configuration, message] of refused) {
    it(`refuses ${what}`, async () => assert.rejects(loadFilter(configuration), message));
  }

  it("end to end: with no PROXY transport socket on the cluster, the filter's header takes the connection through the egress router", async () => {
    const destination = await startTagServer("dest", "127.0.0.61");
    const router = await EgressRouter.start({
      listen: { address: "127.0.0.1", port: 0 }, allowlist: Allowlist.parse([`127.0.0.61/32:${destination.port}`]),
      headerTimeoutMs: 1000, connectTimeoutMs: 1000, maxConnections: 10, logger: silentLogger,
    });
    // The client's own PROXY header stands in for original_dst: it names where the client meant to go.
    const runner = await startRunner(bootstrap(
      [wasmFilter(FILTER_WASM, JSON.stringify({ log_level: "warn", proxy_protocol: { version: 2, destination_ports: [destination.port] }, default: { cluster: "egress-router1" } })),
        tcpProxy("egress-router1")],
      [staticCluster("egress-router1", router.port)],
      { listener_filters: [{ name: "envoy.filters.listener.proxy_protocol", typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol" } }] },
    ));
    try {
      const clientHeader = `PROXY TCP4 127.0.0.20 127.0.0.61 40000 ${destination.port}\r\n`;
      assert.equal((await exchange(runner.listenerPort("main"), `${clientHeader}payload`, "127.0.0.20")).reply, "dest:payload");
      assert.equal(router.counter("forwarded"), 1);
    } finally {
      await runner.close();
      await router.close();
      await destination.close();
    }
  });
});
