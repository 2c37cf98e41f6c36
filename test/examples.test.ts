// Every YAML under examples/ is checked: Envoy configs against Envoy's API protos, Kubernetes and
// Istio manifests against @kubernetes-models (Envoy configs inside ConfigMaps too), so a broken
// field in any example fails here with the file and the path.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, it } from "node:test";
import { parseAllDocuments, parse } from "yaml";
import { validateBootstrap, toRunnerConfig } from "../src/envoy/load.js";
import { REPO } from "./helpers.js";
import { Deployment } from "kubernetes-models/apps/v1";
import { ConfigMap, Namespace, Service } from "kubernetes-models/v1";
import { WasmPlugin } from "@kubernetes-models/istio/extensions.istio.io/v1alpha1";
import { EnvoyFilter } from "@kubernetes-models/istio/networking.istio.io/v1alpha3";

const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  "apps/v1/Deployment": Deployment,
  "v1/ConfigMap": ConfigMap,
  "v1/Namespace": Namespace,
  "v1/Service": Service,
  "extensions.istio.io/v1alpha1/WasmPlugin": WasmPlugin,
  "networking.istio.io/v1alpha3/EnvoyFilter": EnvoyFilter,
};

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return yamlFiles(path);
    return /\.ya?ml$/.test(entry.name) ? [path] : [];
  });
}

type Document = Record<string, unknown>;

/** Validates one document; returns what kind of thing it was. */
export function checkDocument(document: Document, where: string): string {
  if (typeof document.apiVersion === "string" && typeof document.kind === "string") {
    const key = `${document.apiVersion}/${document.kind}`;
    const Model = MODELS[key];
    assert.ok(Model, `${where}: no schema known for ${key}`);
    try {
      new Model(document as never).validate();
    } catch (error) {
      throw new Error(`${where} (${key} ${String((document.metadata as Document | undefined)?.name)}): ${(error as Error).message}`);
    }
    if (key === "v1/ConfigMap") {
      for (const [name, text] of Object.entries((document.data ?? {}) as Record<string, string>)) {
        if (/\.ya?ml$/.test(name)) validateBootstrap(parse(text), `${where} ConfigMap data ${name}`);
      }
    }
    if (key === "networking.istio.io/v1alpha3/EnvoyFilter") {
      // The patch value is Envoy config: check it against Envoy's protos too, placed where it goes.
      for (const [i, patch] of ((document.spec as { configPatches: { applyTo: string; patch: { value: Document } }[] }).configPatches).entries()) {
        const value = patch.patch.value;
        const route = { match: { prefix: "/" }, ...value };
        const hcm = { name: "hcm", typed_config: {
          "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
          stat_prefix: "x", route_config: { virtual_hosts: [{ name: "x", domains: ["*"], routes: [route] }] } } };
        const filter = patch.applyTo === "HTTP_ROUTE" ? hcm : value;
        validateBootstrap({ static_resources: { listeners: [{ name: "x", filter_chains: [{ filters: [filter] }] }] } },
          `${where} configPatches[${i}].patch.value`);
      }
    }
    return key;
  }
  if ("static_resources" in document || "admin" in document) {
    validateBootstrap(document, where);
    return "envoy";
  }
  if ("services" in document) return "compose";
  throw new Error(`${where}: not an Envoy config, a Kubernetes manifest or a compose file`);
}

describe("examples validate", () => {
  for (const file of yamlFiles(join(REPO, "examples"))) {
    const name = relative(REPO, file);
    it(name, () => {
      const documents = parseAllDocuments(readFileSync(file, "utf8"));
      assert.ok(documents.length > 0);
      documents.forEach((document, i) => {
        assert.deepEqual(document.errors, [], `${name}: YAML errors`);
        checkDocument(document.toJS() as Document, documents.length > 1 ? `${name}#${i}` : name);
      });
    });
  }

  it("a broken field in an example is caught with the file and the path", () => {
    const document = parse(readFileSync(join(REPO, "examples/envoy-docker/envoy.yaml"), "utf8")) as Document;
    ((document.static_resources as { clusters: Document[] }).clusters[0]!).connect_timeout = "two seconds";
    assert.throws(() => checkDocument(document, "examples/envoy-docker/envoy.yaml"),
      /examples\/envoy-docker\/envoy\.yaml: static_resources\.clusters\[0\]\.connect_timeout: expected a duration/);
    const plugin = parse(readFileSync(join(REPO, "examples/istio-k8s/wasmplugin.yaml"), "utf8")) as Document;
    ((plugin.spec as { match: Document[] }).match[0]!).mode = "SIDEWAYS";
    assert.throws(() => checkDocument(plugin, "wasmplugin.yaml"),
      /wasmplugin\.yaml \(extensions\.istio\.io\/v1alpha1\/WasmPlugin wasmerang\): .*spec\/match\/0\/mode must be equal to one of the allowed values/);
  });

  it("the local and Docker Envoy configs are within what the runner implements", () => {
    for (const file of ["examples/local/envoy.yaml", "examples/envoy-docker/envoy.yaml"]) {
      toRunnerConfig(parse(readFileSync(join(REPO, file), "utf8")), file);
    }
  });
});
