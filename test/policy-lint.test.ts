// Policy lint: each finding on a policy that shows it, and none on policies without the mistake;
// through `validate`, the findings are warnings at the policy's paths.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { lintPolicy } from "../src/policy-lint.js";

const rule = (match: object, action: object = { cluster: "c" }, name?: string) => ({ ...(name ? { name } : {}), match, action });
const messages = (policy: object, kind: "network" | "http" = "network") => lintPolicy(policy as Record<string, unknown>, kind).map((f) => `${f.path}: ${f.message}`);

describe("policy lint", () => {
  it("a rule shadowed by an earlier one: CIDR containment, IPv6 too", () => {
    assert.deepEqual(messages({ rules: [rule({ source_cidrs: ["10.0.0.0/8", "2001:db8::/32"] }), rule({ source_cidrs: ["10.1.0.0/16", "2001:db8:1::7"] }, { cluster: "d" }, "inner")] }),
      ["rules[1]: rules[1] ('inner') is never reached: rules[0] before it matches everything it matches"]);
    assert.deepEqual(messages({ rules: [rule({ source_cidrs: ["10.1.0.0/16"] }), rule({ source_cidrs: ["10.0.0.0/8"] })] }), []);
    assert.deepEqual(messages({ rules: [rule({ source_cidrs: ["10.0.0.0/8"] }), rule({ source_cidrs: ["10.1.0.0/16", "11.0.0.1"] })] }), [],
      "one address outside the earlier rule keeps the later one reachable");
  });

  it("port ranges, SNI patterns, parity and added matchers", () => {
    assert.match(messages({ rules: [rule({ destination_ports: ["8000-8100"] }), rule({ destination_ports: [8080, "8090-8095"] })] })[0]!, /rules\[1\].*never reached/);
    assert.deepEqual(messages({ rules: [rule({ destination_ports: ["8000-8100"] }), rule({ destination_ports: ["8050-8200"] })] }), []);
    assert.match(messages({ rules: [rule({ server_names: ["*.corp"] }), rule({ server_names: ["db.corp", "*.eu.corp"] })] })[0]!, /never reached/);
    assert.deepEqual(messages({ rules: [rule({ server_names: ["*.corp"] }), rule({ server_names: ["corp"] })] }), [], "*.corp does not match corp itself");
    assert.match(messages({ rules: [rule({ source_parity: "even" }), rule({ source_cidrs: ["10.0.0.4", "10.0.0.6/32"] })] })[0]!, /never reached/);
    assert.deepEqual(messages({ rules: [rule({ source_parity: "even" }), rule({ source_cidrs: ["10.0.0.4/31"] })] }), [], "a /31 holds an odd address too");
    assert.match(messages({ rules: [rule({ source_cidrs: ["10.0.0.0/8"] }), rule({ source_cidrs: ["10.0.0.0/8"], destination_ports: [443] })] })[0]!, /never reached/,
      "a later rule with more matchers is still covered");
    assert.deepEqual(messages({ rules: [rule({ source_cidrs: ["10.0.0.0/8"], destination_ports: [443] }), rule({ source_cidrs: ["10.0.0.0/8"] })] }), []);
  });

  it("metadata and filter state matchers narrow a rule: an earlier rule with them shadows nothing without them", () => {
    const tenant = { metadata: [{ namespace: "corp", key: "tier", exact: "gold" }] };
    assert.deepEqual(messages({ rules: [rule(tenant), rule({})] }), []);
    assert.match(messages({ rules: [rule(tenant), rule({ ...tenant, destination_ports: [443] })] })[0]!, /rules\[1\] is never reached/);
  });

  it("a rule that can never match: parity against host addresses of the other parity; HTTP matchers in a network filter", () => {
    assert.deepEqual(messages({ rules: [rule({ source_parity: "odd", source_cidrs: ["10.0.0.2", "2001:db8::a"] })] }),
      ["rules[0]: rules[0] can never match: it asks for odd sources, but every address in its source_cidrs is even"]);
    assert.match(messages({ rules: [rule({ path_prefixes: ["/api"] })] })[0]!, /can never match: it has HTTP matchers .* never match a TCP connection/);
    assert.deepEqual(messages({ rules: [rule({ path_prefixes: ["/api"] })] }, "http"), []);
    assert.match(messages({ rules: [rule({ path_prefixes: ["/api"] }), rule({ path_prefixes: ["/api/v2"], headers: [{ name: "X-Team", value: "a" }] })] }, "http")[0]!, /never reached/);
  });

  it("duplicate names, a hash over one cluster, a default no connection reaches", () => {
    assert.deepEqual(messages({ rules: [rule({ destination_ports: [1] }, { cluster: "a" }, "x"), rule({ destination_ports: [2] }, { cluster: "b" }, "x")] }),
      ["rules[1].name: duplicate rule name 'x' (also rules[0]): its counter and log lines cannot tell them apart"]);
    assert.deepEqual(messages({ rules: [rule({ destination_ports: [1] }, { hash: ["only"] })] }),
      ["rules[0].action.hash: a hash over one cluster always picks it: write it as a cluster action"]);
    assert.deepEqual(messages({ rules: [rule({}, { cluster: "all" }, "catch-all")], default: { reject: true } }),
      ["default: never reached: rules[0] ('catch-all') matches every connection"]);
    assert.deepEqual(messages({ rules: [rule({ source_parity: "even" }), rule({ source_parity: "odd" })], default: { reject: true } }),
      ["default: never reached: the even and odd source_parity rules together match every source"]);
    assert.deepEqual(messages({ rules: [rule({ source_parity: "even" }), rule({ source_parity: "odd" })] }), [], "no default written: nothing to warn about");
  });
});
