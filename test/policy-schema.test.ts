// The shipped JSON Schema agrees with the filter: what the schema accepts the filter configures
// with, and what the schema refuses the filter refuses too.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import Ajv2020 from "ajv/dist/2020.js";
import { parse } from "yaml";
import { loadFilter, REPO } from "./helpers.js";

const schema = JSON.parse(readFileSync(join(REPO, "schema/policy.schema.json"), "utf8")) as object;
const validate = new Ajv2020.default({ allErrors: true }).compile(schema);

const demoPolicy = JSON.parse(
  (parse(readFileSync(join(REPO, "examples/local/envoy.yaml"), "utf8")) as { static_resources: { listeners: { filter_chains: { filters: { typed_config: { config: { configuration: { value: string } } } }[] }[] }[] } })
    .static_resources.listeners[0]!.filter_chains[0]!.filters[0]!.typed_config.config.configuration.value,
) as object;

const good: object[] = [
  demoPolicy,
  {},
  { mode: "istio", log_level: "warn" },
  { rules: [{ name: "r", match: { source_cidrs: ["10.0.0.0/8", "2001:db8::/32"], destination_ports: [443, "8000-8100"], server_names: ["*.example.com"] },
    action: { hash: ["a", { cluster: "b", weight: 2 }] } }], default: { passthrough: true } },
  { default: { cluster: "outbound|{dst_port}||egress.default.svc.cluster.local" } },
  { default: { reference: "istio" } },
  { proxy_protocol: { version: 2, destination_ports: [443, "8000-8100"], tlvs: ["authority", "rule"] } },
  { http: { cluster_header: "x-route", reject_status: 451, reject_body: "no" },
    rules: [{ match: { authorities: ["*.example.com"], path_prefixes: ["/api"], headers: [{ name: "x-team", value: "a" }] }, action: { cluster: "a" } }] },
  { record_decision: true, rules: [{ match: { metadata: [{ namespace: "envoy.filters.listener.proxy_protocol", key: "vpce_id", values: ["a", "b"] }],
    filter_state: [{ key: "wasm.team", prefix: "pay" }], destination_cidrs: ["10.0.0.0/8"] }, action: { original_dst: "direct" } }] },
];
const bad: object[] = [
  { rulez: [] },
  { rules: [{ match: {} }] },
  { default: { cluster: "a", reject: true } },
  { default: { hash: [] } },
  { default: { hash: [{ cluster: "a", weight: 0 }] } },
  { rules: [{ match: { source_parity: "3" }, action: { reject: true } }] },
  { log_level: "loud" },
  { record_decision: "yes" },
  { rules: [{ match: { metadata: [{ key: "k", exact: "v" }] }, action: { reject: true } }] },
  { rules: [{ match: { filter_state: [{ key: "k", exact: "v", prefix: "p" }] }, action: { reject: true } }] },
  { rules: [{ match: { filter_state: [{ key: "k" }] }, action: { reject: true } }] },
  { http: { reject_status: 99 } },
  { proxy_protocol: { version: 2 } },
  { rules: [{ match: { headers: [{ name: "x" }] }, action: { reject: true } }] },
];

describe("policy JSON Schema", () => {
  for (const policy of good) {
    it(`accepts ${JSON.stringify(policy).slice(0, 80)} (and so does the filter)`, async () => {
      assert.ok(validate(policy), JSON.stringify(validate.errors));
      await loadFilter(policy);
    });
  }
  for (const policy of bad) {
    it(`refuses ${JSON.stringify(policy).slice(0, 80)} (and so does the filter)`, async () => {
      assert.equal(validate(policy), false);
      await assert.rejects(loadFilter(policy), /proxy_on_configure rejected/);
    });
  }
});
