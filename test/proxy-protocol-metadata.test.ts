// Facts from the PROXY protocol a connection arrived with: the proxy_protocol listener filter's
// `rules` copy TLVs into dynamic metadata (sanitized to UTF-8 as Envoy does), the filter routes on
// them, access logs print them with %DYNAMIC_METADATA%; and the original_dst action sends allowed
// destinations straight through an ORIGINAL_DST cluster.
import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtempSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { encodeProxyHeader, type Tlv } from "../src/egress/proxy-protocol.js";
import { sanitizeUtf8 } from "../src/runner/proxy-protocol-metadata.js";
import { FILTER_WASM } from "./helpers.js";
import { bootstrap, fileAccessLog, PROXY_PROTOCOL_FILTER, startRunner, staticCluster, tagServers, tcpProxy, wasmFilter } from "./net-helpers.js";

const dir = mkdtempSync(join(tmpdir(), "wasmerang-pp-metadata-"));
const AWS_VPCE = 0xea;
const NAMESPACE = "envoy.filters.listener.proxy_protocol";

/** Sends a PROXY v2 header (with `tlvs`) and `data`, half-closes, and returns what came back. */
async function sendWithHeader(port: number, destination: { address: string; port: number }, tlvs: Tlv[], data: string): Promise<string> {
  const socket = connect({ port, host: "127.0.0.1", allowHalfOpen: true });
  const chunks: Buffer[] = [];
  socket.on("data", (chunk: Buffer) => chunks.push(chunk));
  await once(socket, "connect");
  socket.end(Buffer.concat([encodeProxyHeader(2, { address: "10.0.0.7", port: 40000 }, destination, tlvs), Buffer.from(data)]));
  await new Promise<void>((resolve) => {
    socket.on("error", () => resolve());
    socket.on("close", () => resolve());
  });
  return Buffer.concat(chunks).toString("latin1");
}

const vpce = (id: string): Tlv => ({ type: AWS_VPCE, value: Buffer.concat([Buffer.from([0x01]), Buffer.from(id)]) });

describe("Envoy's sanitizeUtf8String", () => {
  it("keeps valid UTF-8 and turns every other byte into '!'", () => {
    assert.equal(sanitizeUtf8(Buffer.from([0x01, 0x76, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80])), "\u0001vé€😀");
    assert.equal(sanitizeUtf8(Buffer.from([0x61, 0xff, 0xc3, 0x28, 0xe2, 0x82, 0xc0, 0x80, 0xed, 0xa0, 0x80])), "a!!(!!!!!!!");
  });
});

describe("TLVs through the proxy_protocol listener filter's rules", () => {
  const servers = tagServers("partners", "egress", "direct");

  function config(logPath: string): object {
    const policy = {
      rules: [
        { name: "partner-endpoint", match: { metadata: [{ namespace: NAMESPACE, key: "vpce_id", exact: "\u0001vpce-0abc" }] }, action: { cluster: "partners" } },
        { name: "internal", match: { destination_cidrs: ["127.0.0.0/8"] }, action: { original_dst: "direct" } },
      ],
      default: { cluster: "egress" },
    };
    const format = "%DYNAMIC_METADATA(envoy.filters.listener.proxy_protocol:vpce_id)% %DYNAMIC_METADATA(envoy.filters.listener.proxy_protocol)% %DYNAMIC_METADATA(absent:x)% %UPSTREAM_CLUSTER%\n";
    return bootstrap([wasmFilter(FILTER_WASM, JSON.stringify(policy)), tcpProxy("egress", { access_log: [fileAccessLog(logPath, format)] })],
      [staticCluster("partners", servers[0]!.port), staticCluster("egress", servers[1]!.port),
        { name: "direct", type: "ORIGINAL_DST", lb_policy: "CLUSTER_PROVIDED", connect_timeout: "1s" }],
      { listener_filters: [{ ...PROXY_PROTOCOL_FILTER, typed_config: { ...PROXY_PROTOCOL_FILTER.typed_config, rules: [{ tlv_type: AWS_VPCE, on_tlv_present: { key: "vpce_id" } }] } }] });
  }

  it("a TLV the rules name becomes dynamic metadata the filter routes on, and the access log prints", async () => {
    const log = join(dir, "tlv.log");
    const runner = await startRunner(config(log));
    try {
      const outside = { address: "203.0.113.9", port: 443 };
      assert.equal(await sendWithHeader(runner.listenerPort("main"), outside, [vpce("vpce-0abc")], "a"), "partners:a");
      assert.equal(await sendWithHeader(runner.listenerPort("main"), outside, [vpce("vpce-0def")], "b"), "egress:b");
      assert.equal(await sendWithHeader(runner.listenerPort("main"), outside, [{ type: 0xeb, value: Buffer.from("other") }], "c"), "egress:c");
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.deepEqual(readFileSync(log, "utf8").split("\n").filter((line) => line !== ""), [
        "\u0001vpce-0abc {\"vpce_id\":\"\\u0001vpce-0abc\"} - partners",
        "\u0001vpce-0def {\"vpce_id\":\"\\u0001vpce-0def\"} - egress",
        "- - - egress",
      ]);
    } finally {
      await runner.close();
    }
  });

  it("original_dst: a destination the rule allows is reached directly through the ORIGINAL_DST cluster", async () => {
    const runner = await startRunner(config(join(dir, "direct.log")));
    try {
      const direct = servers[2]!;
      assert.equal(await sendWithHeader(runner.listenerPort("main"), { address: "127.0.0.1", port: direct.port }, [], "d"), "direct:d");
      assert.equal(direct.accepted, 1);
    } finally {
      await runner.close();
    }
  });
});
