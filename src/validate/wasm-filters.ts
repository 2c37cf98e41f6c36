// The filter's judgement, as Envoy would load it: for every Wasm filter or service in a normalized
// bootstrap (or in a patch), read the module, check it would load (the ABI version export, the
// imports a proxy-wasm host provides), start a VM and call proxy_on_configure with the bytes Envoy
// would pass (wasm-config.ts). A refusal is reported at the configuration's path with the module's
// own log lines. What the module defined while configuring (its metrics) is kept for the
// cross-reference checks.
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { isJsonObject, type Json, type Problem, type JsonObject } from "../envoy/errors.js";
import { envoyApi } from "../envoy/protos.js";
import { configurationBytes } from "../envoy/wasm-config.js";
import { Plugin, PluginConfigError } from "../host/plugin.js";
import { lintPolicy } from "../policy-lint.js";


export const WASM_TYPES = {
  network: "envoy.extensions.filters.network.wasm.v3.Wasm",
  http: "envoy.extensions.filters.http.wasm.v3.Wasm",
  service: "envoy.extensions.wasm.v3.WasmService",
} as const;

export interface WasmCheckOptions {
  /** The module to use where the configuration fetches code remotely (vm_config.code.remote, oci://). */
  module?: string;
  /** Local filenames name files in a pod (Istio manifests), not on this machine. */
  localPathsAreRemote?: boolean;
}

/** A Wasm filter found in a document, and what configuring it showed. */
export interface CheckedWasmFilter {
  /** Path of the typed_config holding the filter's Wasm message. */
  path: string;
  kind: keyof typeof WASM_TYPES;
  /** Path of the plugin configuration (its `value` for a StringValue or BytesValue). */
  configurationPath: string;
  /** The configuration text the module received ("" when none). */
  configuration: string;
  /** Metrics the module defined while configuring; undefined when it was not configured. */
  metrics?: string[];
  /** Wasmerang's JSON policy, parsed once for the checks that read it (wasmerangPolicy). */
  policy?: JsonObject;
}


/** Every Wasm filter/service config (`{ "@type": ..., config }`) in a normalized document, with its path. */
export function findWasmConfigs(value: Json, path = ""): { path: string; kind: keyof typeof WASM_TYPES; config: JsonObject }[] {
  const found: { path: string; kind: keyof typeof WASM_TYPES; config: JsonObject }[] = [];
  const visit = (node: Json, at: string): void => {
    if (Array.isArray(node)) {
      node.forEach((item, i) => visit(item, `${at}[${i}]`));
      return;
    }
    if (!isJsonObject(node)) return;
    const kind = (Object.keys(WASM_TYPES) as (keyof typeof WASM_TYPES)[]).find((key) => WASM_TYPES[key] === node["@type"]);
    if (kind !== undefined) found.push({ path: at, kind, config: node });
    for (const [key, item] of Object.entries(node)) visit(item, at === "" ? key : `${at}.${key}`);
  };
  visit(value, path);
  return found;
}

/** The module's bytes and where they came from, or a problem saying why there are none. */
async function moduleCode(code: JsonObject, path: string, options: WasmCheckOptions): Promise<{ bytes: Uint8Array; source: string } | Problem> {
  const local = isJsonObject(code.local) ? code.local : undefined;
  if (local !== undefined) {
    if (typeof local.inline_bytes === "string") return { bytes: Buffer.from(local.inline_bytes, "base64"), source: "inline_bytes" };
    if (typeof local.inline_string === "string") return { bytes: Buffer.from(local.inline_string), source: "inline_string" };
    if (typeof local.filename === "string") {
      // As Envoy: relative to the working directory, not to the YAML file.
      const file = resolve(local.filename);
      try {
        return { bytes: await readFile(file), source: local.filename };
      } catch (error) {
        // Most likely a path inside a container or pod (as in most published examples): --module
        // stands in for it; without one the filter cannot be judged here, which is a warning.
        const where = options.localPathsAreRemote === true ? "is a path in the pod" : "is not on this machine";
        return remoteModule(`${path}.local.filename`, options,
          `'${local.filename}' ${where} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
      }
    }
  }
  return remoteModule(path, options, "the code is fetched remotely");
}

export async function remoteModule(path: string, options: WasmCheckOptions, why: string): Promise<{ bytes: Uint8Array; source: string } | Problem> {
  if (options.module === undefined) {
    return { path, severity: "warning", message: `${why}; the filter was not checked (pass --module FILE to check it with a local copy)` };
  }
  try {
    return { bytes: await readFile(options.module), source: options.module };
  } catch (error) {
    return { path, severity: "error", message: `--module ${options.module}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}` };
  }
}

/**
 * Loads and configures one module. A refusal is a problem at `configurationPath`, with the
 * module's own words; a module that will not load is one at `codePath`.
 */
export async function configureModule(code: { bytes: Uint8Array; source: string }, configuration: Buffer, identity: { name: string; rootId: string; vmId: string; vmConfiguration: Buffer },
  paths: { code: string; configuration: string }, problems: Problem[]): Promise<string[] | undefined> {
  let plugin: Plugin | undefined;
  try {
    plugin = await Plugin.load({ ...identity, source: code.source, code: code.bytes, configuration, failOpen: false },
      { log: () => undefined, logLevel: "critical" });
    return plugin.metrics.names();
  } catch (error) {
    if (!(error instanceof PluginConfigError)) throw error;
    const message = error.message.replace(/^plugin '[^']*'(?: \([^)]*\))?: /, "");
    const refusedConfiguration = /proxy_on_configure|proxy_on_vm_start|wasm trap/.test(message);
    problems.push({ path: refusedConfiguration ? paths.configuration : paths.code, severity: "error", message });
    return undefined;
  } finally {
    plugin?.close();
  }
}

/** Whether the configured module is Wasmerang: it defines Wasmerang's counters at configure. */
export function isWasmerang(metrics: readonly string[] | undefined): boolean {
  return (metrics ?? []).includes("wasmerang.routed");
}

/** The JSON policy of a configured Wasmerang filter; undefined for other modules and for `standalone` / `istio`. */
export function wasmerangPolicy(metrics: readonly string[] | undefined, configuration: string): JsonObject | undefined {
  if (!isWasmerang(metrics)) return undefined;
  try {
    const policy = JSON.parse(configuration) as Json;
    return isJsonObject(policy) ? policy : undefined;
  } catch {
    return undefined;
  }
}

/** Policy lint (policy-lint.ts) as warnings at the policy's paths. */
export function lintConfiguration(policy: JsonObject | undefined, kind: "network" | "http", configurationPath: string, problems: Problem[]): void {
  if (policy === undefined) return;
  for (const finding of lintPolicy(policy, kind)) {
    problems.push({ path: `${configurationPath}.${finding.path}`, severity: "warning", message: finding.message });
  }
}

/** Runs every Wasm filter of a normalized document through its module. */
export async function checkWasmFilters(document: Json, options: WasmCheckOptions, problems: Problem[], path = ""): Promise<CheckedWasmFilter[]> {
  const api = envoyApi();
  const checked: CheckedWasmFilter[] = [];
  for (const { path: filterPath, kind, config } of findWasmConfigs(document, path)) {
    const plugin = isJsonObject(config.config) ? config.config : {};
    const vm = isJsonObject(plugin.vm_config) ? plugin.vm_config : {};
    const pluginPath = `${filterPath}.config`;
    const configuration = configurationBytes(plugin.configuration, api);
    const configurationPath = isJsonObject(plugin.configuration) && "value" in plugin.configuration
      ? `${pluginPath}.configuration.value` : `${pluginPath}.configuration`;
    const result: CheckedWasmFilter = { path: filterPath, kind, configurationPath, configuration: configuration.toString() };
    checked.push(result);
    const code = await moduleCode(isJsonObject(vm.code) ? vm.code : {}, `${pluginPath}.vm_config.code`, options);
    if ("severity" in code) {
      problems.push(code);
      continue;
    }
    result.metrics = await configureModule(code, configuration, {
      name: String(plugin.name ?? ""), rootId: String(plugin.root_id ?? ""), vmId: String(vm.vm_id ?? ""),
      vmConfiguration: configurationBytes(vm.configuration, api),
    }, { code: `${pluginPath}.vm_config.code`, configuration: configurationPath }, problems);
    result.policy = wasmerangPolicy(result.metrics, result.configuration);
    if (kind !== "service") lintConfiguration(result.policy, kind, configurationPath, problems);
  }
  return checked;
}
