// `wasmerang test`: policy test files run on the real module; the examples' own test files pass.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { renderResults, runPolicyTests } from "../src/policy-test.js";
import { REPO } from "./helpers.js";

const dir = mkdtempSync(join(tmpdir(), "wasmerang-policy-test-"));
writeFileSync(join(dir, "policy.json"), JSON.stringify({
  rules: [{ name: "corp", match: { server_names: ["*.corp"] }, action: { cluster: "corp" } }],
  default: { reject: true },
}));

function testFile(cases: string): string {
  const file = join(dir, `test-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, `policy: policy.json\ncases:\n${cases}`);
  return file;
}

describe("wasmerang test", () => {
  it("passes cases the module decides as expected, and explains one it does not", async () => {
    const { results, warnings } = await runPolicyTests(testFile(`  - { name: corp, source: "10.0.0.1:1", sni: db.corp, expect: { outcome: routed, cluster: corp, rule: corp } }
  - { name: others, source: "10.0.0.1:1", sni: example.com, expect: { outcome: routed, cluster: corp } }
  - { name: default, source: "10.0.0.1:1", expect: { outcome: rejected, rule: default } }
`));
    assert.deepEqual(results.map((result) => result.failures), [[], ["outcome: expected routed, got rejected", "cluster: expected corp, got none"], []]);
    assert.deepEqual(warnings, []);
    const text = renderResults(results, "text");
    assert.match(text, /^FAILED {2}.*: others\n {2}outcome: expected routed, got rejected\n/m);
    assert.match(text, /^ {4}decision: wasmerang: source=10\.0\.0\.1:1 .* rule=default action=reject$/m);
    assert.match(text, /2 passed, 1 failed\n$/);
    assert.match(renderResults(results, "tap"), /^not ok 2 - .*: others\n {2}# outcome: expected routed, got rejected$/m);
    assert.match(renderResults(results, "junit"), /<testsuite name="wasmerang policy tests" tests="3" failures="1">/);
  });

  it("cases give dynamic metadata and filter state as facts", async () => {
    writeFileSync(join(dir, "facts.json"), JSON.stringify({
      rules: [{ name: "partner", match: { metadata: [{ namespace: "envoy.filters.listener.proxy_protocol", key: "vpce_id", exact: "vpce-1" }] }, action: { cluster: "partners" } },
        { name: "ops", match: { filter_state: [{ key: "wasm.team", exact: "ops" }] }, action: { cluster: "ops" } }],
      default: { reject: true },
    }));
    const file = join(dir, "facts-test.yaml");
    writeFileSync(file, `policy: facts.json
cases:
  - { name: partner, source: "10.0.0.1:1", metadata: { envoy.filters.listener.proxy_protocol: { vpce_id: vpce-1 } }, expect: { cluster: partners, rule: partner } }
  - { name: ops, source: "10.0.0.1:1", filter_state: { wasm.team: ops }, expect: { cluster: ops } }
  - { name: neither, source: "10.0.0.1:1", expect: { outcome: rejected } }
`);
    const { results } = await runPolicyTests(file);
    assert.deepEqual(results.map((result) => result.failures), [[], [], []]);
    writeFileSync(file, "policy: facts.json\ncases:\n  - { name: x, source: \"10.0.0.1:1\", filter_state: { wasm.team: 3 }, expect: {} }\n");
    await assert.rejects(runPolicyTests(file), /cases\[0\]\.filter_state\.wasm\.team: expected a string/);
  });

  it("names the field at fault in a test file", async () => {
    await assert.rejects(runPolicyTests(testFile(`  - { name: x, source: "10.0.0.1:1", expect: { clustr: corp } }\n`)), /cases\[0\]\.expect\.clustr: unknown field/);
    await assert.rejects(runPolicyTests(testFile(`  - { name: x, expect: {} }\n`)), /cases\[0\]\.source: expected a non-empty string/);
  });

  it("the examples' policy tests pass through the command (exit 0; 1 on a failing case)", () => {
    const cli = (...args: string[]) => spawnSync(process.execPath, [join(REPO, "build/src/cli.js"), "test", ...args], { encoding: "utf8", cwd: REPO });
    const examples = cli("examples/local/policy-test.yaml");
    assert.equal(examples.status, 0, examples.stdout + examples.stderr);
    assert.match(examples.stdout, /6 passed, 0 failed/);
    assert.equal(cli(testFile(`  - { name: wrong, source: "10.0.0.1:1", expect: { outcome: routed } }\n`)).status, 1);
  });

  it("lints the policy it tests: findings on stderr, which do not fail the run", () => {
    writeFileSync(join(dir, "shadowed.json"), JSON.stringify({
      rules: [{ name: "all-ten", match: { source_cidrs: ["10.0.0.0/8"] }, action: { cluster: "a" } },
        { name: "ten-one", match: { source_cidrs: ["10.1.0.0/16"] }, action: { cluster: "b" } }],
    }));
    const file = join(dir, "shadowed-test.yaml");
    writeFileSync(file, `policy: shadowed.json\ncases:\n  - { name: a, source: "10.1.2.3:1", expect: { cluster: a } }\n`);
    const run = spawnSync(process.execPath, [join(REPO, "build/src/cli.js"), "test", "--reporter", "tap", file], { encoding: "utf8", cwd: REPO });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /^warning: .*shadowed-test\.yaml: policy rules\[1\]: rules\[1\] \('ten-one'\) is never reached: rules\[0\] \('all-ten'\) before it matches everything it matches$/m);
    assert.doesNotMatch(run.stdout, /warning/);
  });
});
