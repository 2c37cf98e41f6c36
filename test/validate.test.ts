// `wasmerang validate` beyond Envoy's per-message rules: the filter's judgement (each Wasm module
// configured as Envoy would), references across the bootstrap and the traps, Istio manifests, and
// the command's output and exit status. Configs are small ones written for each check.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { Problem } from "../src/envoy/errors.js";
import { checkFile } from "../src/validate/files.js";
import { FILTER_WASM, REPO } from "./helpers.js";
import { captureLogger, staticCluster, startRunner, tcpProxy, wasmFilter } from "./net-helpers.js";

const dir = mkdtempSync(join(tmpdir(), "wasmerang-validate-"));
let fileCount = 0;

function file(text: string, extension = "yaml"): string {
  const path = join(dir, `config-${fileCount++}.${extension}`);
  writeFileSync(path, text);
  return path;
}

async function problems(text: string, options: { module?: string } = {}): Promise<Problem[]> {
  return (await checkFile(file(text), options, false)).problems;
}

function lines(found: Problem[], severity: "error" | "warning" = "error"): string[] {
  return found.filter((problem) => problem.severity === severity).map((problem) => `${problem.path}: ${problem.message}`);
}

const WASM = "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm";
const TCP_PROXY = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
const FILTER = "static_resources.listeners[0].filter_chains[0].filters";

interface BootstrapParts {
  configuration?: string;
  code?: string;
  tcpProxy?: string;
  clusters?: string[];
  listenerFilters?: string;
  afterTcpProxy?: boolean;
  extra?: string;
}

/** A listener with Wasmerang before tcp_proxy; clusters by name. */
function bootstrap(parts: BootstrapParts = {}): string {
  const wasm = `      - name: wasmerang
        typed_config:
          "@type": ${WASM}
          config:
            vm_config:
              runtime: envoy.wasm.runtime.v8
              code: {local: ${parts.code ?? `{filename: ${FILTER_WASM}}`}}
            configuration:
              "@type": type.googleapis.com/google.protobuf.StringValue
              value: ${JSON.stringify(parts.configuration ?? "standalone")}`;
  const tcp = `      - name: tcp
        typed_config:
          "@type": ${TCP_PROXY}
          stat_prefix: s
          ${parts.tcpProxy ?? "cluster: egress-router1"}`;
  const clusters = (parts.clusters ?? ["egress-router1", "egress-router2"]).map((name) =>
    `  - name: ${name}\n    connect_timeout: 1s\n    load_assignment: {cluster_name: ${name}, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 9001}}}}]}]}`);
  return `static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}
${parts.listenerFilters ?? ""}    filter_chains:
    - filters:
${parts.afterTcpProxy === true ? `${tcp}\n${wasm}` : `${wasm}\n${tcp}`}
  clusters:
${clusters.join("\n")}
${parts.extra ?? ""}`;
}

const CONFIGURATION = `${FILTER}[0].typed_config.config.configuration.value`;

describe("validate: the filter's judgement", () => {
  it("accepts the reference configuration with its clusters defined", async () => {
    assert.deepEqual(await problems(bootstrap()), []);
  });

  for (const [name, policy, message] of [
    ["an invalid CIDR", `{"rules":[{"match":{"source_cidrs":["10.0.0.0/33"]},"action":{"cluster":"egress-router1"}}]}`,
      "rules[0].match.source_cidrs[0]: invalid CIDR '10.0.0.0/33'"],
    ["a missing comma", `{"rules":[{"action":{"cluster":"egress-router1"}} {"action":{"reject":true}}]}`, "invalid JSON at offset"],
    ["a misspelt matcher", `{"rules":[{"match":{"source_cidr":["10.0.0.0/8"]},"action":{"cluster":"egress-router1"}}]}`,
      "rules[0].match.source_cidr: unknown field"],
    ["a weight given as a string", `{"rules":[{"action":{"hash":["egress-router1",{"cluster":"egress-router2","weight":"3"}]}}]}`,
      "rules[0].action.hash[1].weight: must be a whole number from 1 to 10000"],
  ] as const) {
    it(`refuses ${name} at the configuration's path, in the filter's own words`, async () => {
      const found = lines(await problems(bootstrap({ configuration: policy })));
      assert.equal(found.length, 1, found.join("\n"));
      assert.ok(found[0]!.startsWith(`${CONFIGURATION}: proxy_on_configure rejected the configuration: wasmerang: invalid plugin configuration: `), found[0]);
      assert.ok(found[0]!.includes(message), found[0]);
    });
  }

  it("hands a Struct configuration to the module as JSON, as Envoy does", async () => {
    const structured = (rules: string) => bootstrap().replace(/            configuration:\n.*\n.*\n/, `            configuration:
              "@type": type.googleapis.com/google.protobuf.Struct
              value: {rules: ${rules}, default: {cluster: egress-router1}}
`);
    assert.deepEqual(await problems(structured("[{match: {source_cidrs: [10.0.0.0/8]}, action: {cluster: egress-router2}}]")), []);
    const refused = lines(await problems(structured("[{match: {source_cidrs: [10.0.0.0/33]}, action: {reject: true}}]")));
    assert.equal(refused.length, 1);
    assert.match(refused[0]!, /configuration\.value: proxy_on_configure rejected the configuration: .*invalid CIDR '10\.0\.0\.0\/33'/);
  });

  it("refuses a module Envoy would not load, at the code's path", async () => {
    const found = lines(await problems(bootstrap({ code: `{inline_bytes: ${Buffer.from("not wasm").toString("base64")}}` })));
    assert.equal(found.length, 1);
    assert.match(found[0]!, /vm_config\.code: .*not a WebAssembly module/);
  });

  it("warns when the module is not on this machine, and checks it with --module", async () => {
    const missing = bootstrap({ code: "{filename: /nonexistent/wasmerang.wasm}", configuration: `{"rules":[{"match":{"source_cidrs":["300.0.0.0/8"]},"action":{"reject":true}}]}` });
    const without = await problems(missing);
    assert.deepEqual(lines(without), []);
    assert.match(lines(without, "warning").join("\n"), /code\.local\.filename: '\/nonexistent\/wasmerang\.wasm' is not on this machine \(ENOENT\); the filter was not checked \(pass --module FILE/);
    const withModule = lines(await problems(missing, { module: FILTER_WASM }));
    assert.equal(withModule.length, 1);
    assert.match(withModule[0]!, /source_cidrs\[0\]: invalid CIDR '300\.0\.0\.0\/8'/);
  });
});

describe("validate: cross-references and traps", () => {
  it("a cluster tcp_proxy names that is not defined is an error without CDS, a warning with it", async () => {
    const missing = bootstrap({ tcpProxy: "cluster: nowhere" });
    assert.deepEqual(lines(await problems(missing)), [`${FILTER}[1].typed_config.cluster: cluster 'nowhere' is not defined (static_resources.clusters, and no CDS source): Envoy closes every connection routed to it`]);
    const withCds = await problems(bootstrap({ tcpProxy: "cluster: nowhere", extra: "dynamic_resources: {cds_config: {ads: {}}}\n" }));
    assert.deepEqual(lines(withCds), []);
    assert.match(lines(withCds, "warning").join("\n"), /cluster 'nowhere' is not among the static clusters; it must come from CDS/);
  });

  it("a cluster the policy routes to that is not defined, hash members included", async () => {
    const policy = `{"rules":[{"match":{"source_parity":"even"},"action":{"hash":["egress-router1","gone"]}}],"default":{"cluster":"egress-router2"}}`;
    assert.deepEqual(lines(await problems(bootstrap({ configuration: policy }))),
      [`${CONFIGURATION}: the policy routes to cluster 'gone', which is not defined (static_resources.clusters, and no CDS source): Envoy closes every connection routed to it`]);
  });

  it("a {dst_port} template no defined cluster matches", async () => {
    const policy = `{"rules":[{"action":{"cluster":"egress-{dst_port}"}}],"default":{"reject":true}}`;
    assert.deepEqual(lines(await problems(bootstrap({ configuration: policy, clusters: ["egress-router1", "egress-443"] }))), []);
    assert.deepEqual(lines(await problems(bootstrap({ configuration: policy, clusters: ["egress-router1", "egress-https"] }))),
      [`${CONFIGURATION}: no defined cluster matches the policy's template 'egress-{dst_port}': Envoy closes every connection it routes`]);
  });

  it("clusters only the reference default names are warnings (a catch-all rule may make the default unreachable)", async () => {
    const found = await problems(bootstrap({ configuration: `{"rules":[{"action":{"cluster":"egress-router1"}}]}`, clusters: ["egress-router1"] }));
    assert.deepEqual(lines(found), []);
    assert.match(lines(found, "warning").join("\n"), /the policy's default \(reference routing\) routes to cluster 'egress-router2'/);
  });

  it("lints the policy: a shadowed rule and an unreachable default are warnings at the policy's paths", async () => {
    const policy = `{"rules":[{"name":"ten","match":{"source_cidrs":["10.0.0.0/8"]},"action":{"cluster":"egress-router1"}},` +
      `{"name":"ten-one","match":{"source_cidrs":["10.1.0.0/16"]},"action":{"cluster":"egress-router2"}},{"action":{"cluster":"egress-router2"}}],"default":{"reject":true}}`;
    const found = await problems(bootstrap({ configuration: policy }));
    assert.deepEqual(lines(found), []);
    assert.deepEqual(lines(found, "warning"), [
      `${CONFIGURATION}.rules[1]: rules[1] ('ten-one') is never reached: rules[0] ('ten') before it matches everything it matches`,
      `${CONFIGURATION}.default: never reached: rules[2] matches every connection`,
    ]);
  });

  it("an original_dst action whose cluster is not ORIGINAL_DST", async () => {
    const policy = `{"rules":[{"match":{"destination_cidrs":["10.0.0.0/8"]},"action":{"original_dst":"egress-router2"}}],"default":{"cluster":"egress-router1"}}`;
    assert.deepEqual(lines(await problems(bootstrap({ configuration: policy })), "warning"),
      [`${CONFIGURATION}.rules[0].action.original_dst: cluster 'egress-router2' is STATIC, not ORIGINAL_DST: tcp_proxy connects to its endpoints, never to the connection's destination`]);
  });

  it("weighted_clusters on a tcp_proxy behind Wasmerang", async () => {
    const found = await problems(bootstrap({ tcpProxy: "weighted_clusters: {clusters: [{name: egress-router1, weight: 1}, {name: egress-router2, weight: 1}]}" }));
    assert.deepEqual(lines(found), []);
    assert.match(lines(found, "warning").join("\n"), /tcp_proxy ignores the cluster Wasmerang chooses .* when it has weighted_clusters/);
  });

  it("the Wasm filter after tcp_proxy, as Envoy refuses it", async () => {
    const found = lines(await problems(bootstrap({ afterTcpProxy: true })));
    assert.deepEqual(found, [
      `${FILTER}[0]: envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy is a terminal filter and must be the last in its network filter chain (Envoy refuses the configuration)`,
      `${FILTER}[1]: the last filter of a network filter chain must be terminal; envoy.extensions.filters.network.wasm.v3.Wasm is not (Envoy refuses the configuration)`,
    ]);
  });

  it("server_names in the policy without tls_inspector on the listener", async () => {
    const policy = `{"rules":[{"match":{"server_names":["api.example.com"]},"action":{"cluster":"egress-router1"}}],"default":{"cluster":"egress-router2"}}`;
    assert.match(lines(await problems(bootstrap({ configuration: policy })), "warning").join("\n"), /matches server_names, but this listener has no tls_inspector/);
    const inspected = bootstrap({ configuration: policy,
      listenerFilters: "    listener_filters:\n    - name: tls\n      typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector}\n" });
    assert.deepEqual(await problems(inspected), []);
  });

  it("the filter's PROXY header on a port where the server speaks first is refused by the filter itself", async () => {
    const policy = `{"proxy_protocol":{"version":1,"destination_ports":[25]},"default":{"cluster":"egress-router1"}}`;
    assert.match(lines(await problems(bootstrap({ configuration: policy }))).join("\n"), /proxy_protocol\.destination_ports\[0\]: .*speak/);
  });
});

describe("the runner reports the same cross-references when it starts", () => {
  it("warns about a cluster tcp_proxy names and one the policy routes to, neither defined, and still starts", async () => {
    const { logger, lines } = captureLogger();
    const policy = `{"rules":[{"action":{"cluster":"gone"}}],"default":{"reject":true}}`;
    const runner = await startRunner({
      static_resources: {
        listeners: [{ name: "main", address: { socket_address: { address: "127.0.0.1", port_value: 0 } },
          filter_chains: [{ filters: [wasmFilter(FILTER_WASM, policy), tcpProxy("nowhere")] }] }],
        clusters: [staticCluster("egress-router1", 9)],
      },
    }, logger);
    try {
      const warnings = lines().map((line) => line.msg).join("\n");
      assert.match(warnings, /test\.yaml: static_resources\.listeners\[0\]\.filter_chains\[0\]\.filters\[1\]\.typed_config\.cluster: cluster 'nowhere' is not defined/);
      assert.match(warnings, /the policy routes to cluster 'gone', which is not defined/);
    } finally {
      await runner.close();
    }
  });
});

describe("validate: Istio and Kubernetes manifests", () => {
  const wasmPlugin = (pluginConfig: string, type = "HTTP") => `apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: wasmerang, namespace: default}
spec:
  selector: {matchLabels: {app: client}}
  type: ${type}
  url: oci://registry.example/wasmerang:0.1.0
  pluginConfig: ${pluginConfig}
`;

  it("runs a WasmPlugin's pluginConfig through the module (as JSON, as istiod passes it) with --module", async () => {
    assert.deepEqual(await problems(wasmPlugin("{mode: istio}"), { module: FILTER_WASM }), []);
    const found = lines(await problems(wasmPlugin("{rules: [{match: {source_cidrs: [10.0.0.0/33]}, action: {reject: true}}]}"), { module: FILTER_WASM }));
    assert.equal(found.length, 1);
    assert.match(found[0]!, /^spec\.pluginConfig: proxy_on_configure rejected the configuration: .*invalid CIDR '10\.0\.0\.0\/33'/);
    assert.match(lines(await problems(wasmPlugin("{mode: istio}")), "warning").join("\n"), /spec\.url: 'oci:\/\/registry\.example\/wasmerang:0\.1\.0' is fetched by the sidecar; the filter was not checked/);
  });

  it("lints a WasmPlugin's policy as the filter kind its type makes it", async () => {
    const httpOnly = "{rules: [{match: {path_prefixes: [/api]}, action: {cluster: a}}], default: {cluster: b}}";
    assert.deepEqual(lines(await problems(wasmPlugin(httpOnly), { module: FILTER_WASM }), "warning"), []);
    assert.match(lines(await problems(wasmPlugin(httpOnly, "NETWORK"), { module: FILTER_WASM }), "warning").join("\n"),
      /spec\.pluginConfig\.rules\[0\]: rules\[0\] can never match: it has HTTP matchers/);
  });

  it("explains the Passthrough trap of a NETWORK WasmPlugin", async () => {
    assert.match(lines(await problems(wasmPlugin("{mode: istio}", "NETWORK"), { module: FILTER_WASM }), "warning").join("\n"),
      /spec\.type: a NETWORK WasmPlugin .* PassthroughCluster chain/);
  });

  it("reports schema problems with their path", async () => {
    const found = lines(await problems(wasmPlugin("{mode: istio}").replace("url: oci://registry.example/wasmerang:0.1.0", "url: 42"), { module: FILTER_WASM }));
    assert.deepEqual(found, ["spec.url: must be string"]);
  });

  it("reads an EnvoyFilter patch value as the Envoy message its applyTo names", async () => {
    const envoyFilter = (value: string, operation = "INSERT_BEFORE") => `apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: f}
spec:
  configPatches:
  - applyTo: NETWORK_FILTER
    match: {listener: {filterChain: {filter: {name: envoy.filters.network.tcp_proxy}}}}
    patch:
      operation: ${operation}
      value:
${value}
`;
    const good = `        name: wasmerang
        typed_config:
          "@type": ${WASM}
          config:
            vm_config: {runtime: envoy.wasm.runtime.v8, code: {local: {filename: /var/local/wasmerang.wasm}}}
            configuration: {"@type": type.googleapis.com/google.protobuf.StringValue, value: istio}`;
    assert.deepEqual(lines(await problems(envoyFilter(good), { module: FILTER_WASM })), []);
    assert.deepEqual(lines(await problems(envoyFilter(good.replace("vm_config:", "vm_confg:")), { module: FILTER_WASM })),
      ["spec.configPatches[0].patch.value.typed_config.config.vm_confg: unknown field (not in envoy.extensions.wasm.v3.PluginConfig)"]);
    const refused = lines(await problems(envoyFilter(good.replace("value: istio}", "value: isto}")), { module: FILTER_WASM }));
    assert.equal(refused.length, 1);
    assert.match(refused[0]!, /^spec\.configPatches\[0\]\.patch\.value\.typed_config\.config\.configuration\.value: proxy_on_configure rejected/);
    // A MERGE patch is a fragment: what it leaves out is not required.
    assert.deepEqual(lines(await problems(envoyFilter("        typed_config: {\"@type\": \"" + TCP_PROXY + "\", idle_timeout: 10s}", "MERGE"))), []);
  });

  it("warns about a TCP route split over several destinations (weighted_clusters override the filter)", async () => {
    const found = await problems(`apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: split}
spec:
  hosts: [db.example]
  tcp:
  - route:
    - {destination: {host: a.example}, weight: 50}
    - {destination: {host: b.example}, weight: 50}
`);
    assert.deepEqual(lines(found), []);
    assert.match(lines(found, "warning").join("\n"), /^spec\.tcp\[0\]\.route: istiod turns a TCP route with several destinations into tcp_proxy weighted_clusters/);
  });

  it("checks every document of a stream, naming the document, and notes kinds it has no schema for", async () => {
    const report = await checkFile(file(`apiVersion: v1
kind: Namespace
metadata: {name: ok}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {ports: [{port: "eighty"}]}
---
apiVersion: example.com/v1
kind: Gadget
metadata: {name: g}
`), {}, false);
    assert.equal(report.problems.length, 1, JSON.stringify(report.problems));
    assert.match(`${report.problems[0]!.path}: ${report.problems[0]!.message}`, /^document 2 \(line 5\): spec\.ports\[0\]\.port: /);
    assert.deepEqual(report.notes, ["example.com/v1/Gadget g: no schema for example.com/v1/Gadget; not checked"]);
  });
});

describe("wasmerang validate (the command)", () => {
  const cli = (...args: string[]) => spawnSync(process.execPath, [join(REPO, "build/src/cli.js"), "validate", ...args], { encoding: "utf8", cwd: REPO });

  it("exits 0 on a clean file, 1 on problems, 2 on a usage error", () => {
    const clean = cli(file(bootstrap()));
    assert.equal(clean.status, 0, clean.stdout + clean.stderr);
    assert.match(clean.stdout, /: OK$/m);
    const broken = file(bootstrap({ tcpProxy: "cluster: nowhere" }));
    const result = cli(broken);
    assert.equal(result.status, 1);
    assert.equal(result.stdout, `${broken}: ${FILTER}[1].typed_config.cluster: cluster 'nowhere' is not defined (static_resources.clusters, and no CDS source): Envoy closes every connection routed to it\n`);
    assert.equal(cli("/nonexistent/envoy.yaml").status, 2);
    assert.equal(cli("--output", "xml", broken).status, 2);
  });

  it("fails on warnings only with --strict", () => {
    const warned = file(bootstrap({ tcpProxy: "weighted_clusters: {clusters: [{name: egress-router1, weight: 1}]}" }));
    const plain = cli(warned);
    assert.equal(plain.status, 0);
    assert.match(plain.stdout, /weighted_clusters: warning: tcp_proxy ignores/);
    assert.equal(cli("--strict", warned).status, 1);
  });

  it("writes JSON for tools", () => {
    const broken = file(bootstrap({ tcpProxy: "cluster: nowhere" }));
    const result = cli("--output", "json", broken);
    assert.equal(result.status, 1);
    assert.deepEqual(JSON.parse(result.stdout), [{ file: broken, path: `${FILTER}[1].typed_config.cluster`, severity: "error",
      message: "cluster 'nowhere' is not defined (static_resources.clusters, and no CDS source): Envoy closes every connection routed to it" }]);
  });

  it("walks a folder, skipping files that are neither bootstraps nor manifests", () => {
    const folder = mkdtempSync(join(dir, "folder-"));
    writeFileSync(join(folder, "envoy.yaml"), bootstrap());
    writeFileSync(join(folder, "compose.yaml"), "services: {envoy: {image: envoy}}\n");
    writeFileSync(join(folder, "policy.json"), "{\"rules\": []}");
    const result = cli(folder);
    assert.equal(result.status, 0, result.stdout);
    assert.match(result.stdout, /compose\.yaml: skipped: neither an Envoy bootstrap nor a Kubernetes manifest/);
    assert.match(result.stdout, /policy\.json: skipped/);
    assert.match(result.stdout, /envoy\.yaml: OK/);
  });

  it("passes every example the project ships (their modules checked with --module)", () => {
    const result = cli("--module", FILTER_WASM, "examples");
    assert.equal(result.status, 0, result.stdout + result.stderr);
    assert.doesNotMatch(result.stdout, /not checked/);
  });
});
