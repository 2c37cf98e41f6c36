// Kubernetes and Istio manifests, recognised by apiVersion and kind: each is checked against the
// schema of @kubernetes-models (kubernetes-models, @kubernetes-models/istio). Beyond the schema:
// - WasmPlugin: the module is configured with pluginConfig as istiod delivers it (JSON in a
//   StringValue); the Passthrough trap of `type: NETWORK` is explained;
// - EnvoyFilter: each patch value is read as the Envoy message its applyTo names (a MERGE patch as
//   a fragment), and Wasm filters in it are configured;
// - ConfigMap: entries that hold an Envoy bootstrap are checked as one;
// - VirtualService: a TCP route split over several destinations (the weighted_clusters trap).
import { isJsonObject, type JsonObject, type Problem } from "../envoy/errors.js";
import { parseEnvoyYaml } from "../envoy/envoy-yaml.js";
import { ProtoValidator } from "../envoy/proto-json.js";
import { envoyApi } from "../envoy/protos.js";
import { checkBootstrapDocument, looksLikeBootstrap, type BootstrapCheckOptions } from "./bootstrap.js";
import { checkWasmFilters, configureModule, lintConfiguration, remoteModule, wasmerangPolicy } from "./wasm-filters.js";

type Model = new (data: never) => { validate(): void };

/** Istio's EnvoyFilter applyTo → the Envoy message a patch value is (networking/v1alpha3/envoy_filter.proto). */
const APPLY_TO: Record<string, string> = {
  LISTENER: "envoy.config.listener.v3.Listener",
  FILTER_CHAIN: "envoy.config.listener.v3.FilterChain",
  NETWORK_FILTER: "envoy.config.listener.v3.Filter",
  HTTP_FILTER: "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter",
  ROUTE_CONFIGURATION: "envoy.config.route.v3.RouteConfiguration",
  VIRTUAL_HOST: "envoy.config.route.v3.VirtualHost",
  HTTP_ROUTE: "envoy.config.route.v3.Route",
  CLUSTER: "envoy.config.cluster.v3.Cluster",
  EXTENSION_CONFIG: "envoy.config.core.v3.TypedExtensionConfig",
  BOOTSTRAP: "envoy.config.bootstrap.v3.Bootstrap",
  LISTENER_FILTER: "envoy.config.listener.v3.ListenerFilter",
};


export function isManifest(document: unknown): document is JsonObject {
  return isJsonObject(document) && typeof document.apiVersion === "string" && typeof document.kind === "string";
}

/** The model class for apiVersion/kind, or undefined when neither package has one. */
async function modelFor(apiVersion: string, kind: string): Promise<Model | undefined> {
  const group = apiVersion.includes("/") ? apiVersion : `v1`;
  const candidates = apiVersion.includes(".istio.io/") ? [`@kubernetes-models/istio/${group}`] : [`kubernetes-models/${group}`];
  for (const specifier of candidates) {
    try {
      const module = await import(specifier) as Record<string, unknown>;
      if (typeof module[kind] === "function") return module[kind] as Model;
    } catch {
      // No such group/version in the package.
    }
  }
  return undefined;
}

export interface ManifestResult {
  /** `apiVersion/kind name`, for the report. */
  label: string;
  /** Set when the kind was not checked beyond being recognised. */
  skipped?: string;
}

export async function checkManifest(document: JsonObject, options: BootstrapCheckOptions, problems: Problem[]): Promise<ManifestResult> {
  const apiVersion = String(document.apiVersion), kind = String(document.kind);
  const name = isJsonObject(document.metadata) ? String(document.metadata.name ?? "") : "";
  const label = `${apiVersion}/${kind} ${name}`.trim();
  const Model = await modelFor(apiVersion, kind);
  if (Model === undefined) return { label, skipped: `no schema for ${apiVersion}/${kind}; not checked` };
  try {
    new Model(document as never).validate();
  } catch (error) {
    problems.push(...schemaProblems((error as Error).message));
    return { label };
  }
  const spec = isJsonObject(document.spec) ? document.spec : {};
  const manifestOptions = { ...options, localPathsAreRemote: true };
  if (kind === "WasmPlugin") await checkWasmPlugin(spec, name, manifestOptions, problems);
  if (kind === "EnvoyFilter") await checkEnvoyFilter(spec, manifestOptions, problems);
  if (kind === "ConfigMap" && isJsonObject(document.data)) await checkConfigMapData(document.data, options, problems);
  if (kind === "VirtualService") checkVirtualService(spec, problems);
  return { label };
}

/** ajv's messages from kubernetes-models ("data/spec/url must be string") as path and message. */
function schemaProblems(message: string): Problem[] {
  return message.split(/,\s*(?=data[/.])/).map((part) => {
    const match = /^data((?:[/.][^\s]+)?)\s+(.*)$/s.exec(part.trim());
    if (match === null) return { path: "", severity: "error" as const, message: part.trim() };
    const path = match[1]!.replace(/^[/.]/, "").split(/[/.]/).map((segment) => (/^\d+$/.test(segment) ? `[${segment}]` : `.${segment}`)).join("").replace(/^\./, "");
    return { path, severity: "error" as const, message: match[2]! };
  });
}

async function checkWasmPlugin(spec: JsonObject, name: string, options: BootstrapCheckOptions, problems: Problem[]): Promise<void> {
  const url = String(spec.url ?? "");
  const code = await remoteModule("spec.url", options, url.startsWith("file://") ? `'${url}' is a path in the pod` : `'${url}' is fetched by the sidecar`);
  if ("severity" in code) problems.push(code);
  else {
    // istiod hands pluginConfig to the module as JSON in a StringValue.
    const configuration = Buffer.from(spec.pluginConfig === undefined ? "" : JSON.stringify(spec.pluginConfig));
    const metrics = await configureModule(code, configuration, { name, rootId: "", vmId: "", vmConfiguration: Buffer.alloc(0) },
      { code: "spec.url", configuration: "spec.pluginConfig" }, problems);
    lintConfiguration(wasmerangPolicy(metrics, configuration.toString()), spec.type === "NETWORK" ? "network" : "http", "spec.pluginConfig", problems);
  }
  if (spec.type === "NETWORK") {
    problems.push({ path: "spec.type", severity: "warning", message: "a NETWORK WasmPlugin is added to the listener chains of the mesh's services only: " +
      "connections to destinations outside the registry go through the catch-all PassthroughCluster chain, which it never reaches (patch that chain with an EnvoyFilter)" });
  }
}

/** A TCP route with several destinations becomes tcp_proxy weighted_clusters, which override a Wasm filter's choice. */
function checkVirtualService(spec: JsonObject, problems: Problem[]): void {
  const tcp = Array.isArray(spec.tcp) ? spec.tcp : [];
  tcp.forEach((route, i) => {
    if (isJsonObject(route) && Array.isArray(route.route) && route.route.length > 1) {
      problems.push({ path: `spec.tcp[${i}].route`, severity: "warning", message: "istiod turns a TCP route with several destinations into tcp_proxy " +
        "weighted_clusters, and tcp_proxy then ignores the cluster a Wasm filter (Wasmerang) chooses for these connections" });
    }
  });
}

async function checkEnvoyFilter(spec: JsonObject, options: BootstrapCheckOptions, problems: Problem[]): Promise<void> {
  const api = envoyApi();
  const patches = Array.isArray(spec.configPatches) ? spec.configPatches : [];
  for (const [i, entry] of patches.entries()) {
    if (!isJsonObject(entry) || !isJsonObject(entry.patch) || entry.patch.value === undefined) continue;
    const path = `spec.configPatches[${i}].patch.value`;
    const typeName = APPLY_TO[String(entry.applyTo)];
    const type = typeName === undefined ? undefined : api.message(typeName);
    if (type === undefined) continue;
    const validator = new ProtoValidator(api, entry.patch.operation === "MERGE");
    const normalized = validator.message(entry.patch.value, type, path);
    problems.push(...validator.problems);
    if (!validator.problems.some((problem) => problem.severity === "error")) await checkWasmFilters(normalized, options, problems, path);
  }
}

async function checkConfigMapData(data: JsonObject, options: BootstrapCheckOptions, problems: Problem[]): Promise<void> {
  for (const [key, text] of Object.entries(data)) {
    if (typeof text !== "string" || !/\.(ya?ml|json)$/.test(key)) continue;
    const path = `data.${key}`;
    let document: unknown;
    try {
      document = parseEnvoyYaml(text, path);
    } catch (error) {
      problems.push({ path, severity: "error", message: (error as Error).message });
      continue;
    }
    if (!looksLikeBootstrap(document)) continue;
    for (const problem of await checkBootstrapDocument(document, path, options)) {
      problems.push({ ...problem, path: problem.path === "" ? path : `${path}: ${problem.path}` });
    }
  }
}
