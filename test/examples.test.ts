// Every file under examples/ passes `wasmerang validate` (Envoy configs against Envoy's API as Envoy
// parses them, manifests against @kubernetes-models and Envoy's API, each Wasm filter configured
// with the module we build), so a broken field in any example fails here with the file and path.
import assert from "node:assert/strict";
import { readdirSync, readFileSync, writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { describe, it } from "node:test";
import { parseYaml, toRunnerConfig } from "../src/envoy/load.js";
import { checkFile } from "../src/validate/files.js";
import { FILTER_WASM, REPO } from "./helpers.js";

function configFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return configFiles(path);
    return /\.(ya?ml|json)$/.test(entry.name) ? [path] : [];
  });
}

describe("examples validate", () => {
  for (const file of configFiles(join(REPO, "examples"))) {
    const name = relative(REPO, file);
    it(name, async () => {
      const report = await checkFile(file, { module: FILTER_WASM }, true);
      assert.deepEqual(report.problems.filter((problem) => problem.severity === "error"), []);
    });
  }

  it("a broken field in an example is caught with the path", async () => {
    const dir = mkdtempSync(join(tmpdir(), "wasmerang-examples-"));
    const envoy = join(dir, "envoy.yaml");
    writeFileSync(envoy, readFileSync(join(REPO, "examples/envoy-docker/envoy.yaml"), "utf8").replace(/connect_timeout: [^\n]+/, "connect_timeout: two seconds"));
    const broken = await checkFile(envoy, { module: FILTER_WASM }, false);
    assert.match(broken.problems.map((problem) => `${problem.path}: ${problem.message}`).join("\n"), /static_resources\.clusters\[0\]\.connect_timeout: expected a duration/);
    const plugin = join(dir, "wasmplugin.yaml");
    writeFileSync(plugin, readFileSync(join(REPO, "examples/istio-k8s/wasmplugin.yaml"), "utf8").replace("mode: CLIENT", "mode: SIDEWAYS"));
    const refused = await checkFile(plugin, { module: FILTER_WASM }, false);
    assert.match(refused.problems.map((problem) => `${problem.path}: ${problem.message}`).join("\n"), /spec\.match\[0\]\.mode: must be equal to one of the allowed values/);
  });

  it("the local and Docker Envoy configs are within what the runner implements", () => {
    for (const file of ["examples/local/envoy.yaml", "examples/envoy-docker/envoy.yaml"]) {
      toRunnerConfig(parseYaml(readFileSync(join(REPO, file), "utf8"), file), file);
    }
  });
});
