// Reads an Envoy v3 bootstrap YAML file: parse, validate against Envoy's protos, then keep the
// subset the runner implements. Errors name the file and the path of every field at fault.
import { isUtf8 } from "node:buffer";
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { parseEnvoyYaml } from "./envoy-yaml.js";
import { ConfigError, formatProblem, type Json, type Problem } from "./errors.js";
import type { RunnerConfig } from "./model.js";
import { ProtoValidator } from "./proto-json.js";
import { envoyApi } from "./protos.js";
import { SubsetReader } from "./subset.js";

const BOOTSTRAP = "envoy.config.bootstrap.v3.Bootstrap";

/** Parses YAML text as Envoy does (envoy-yaml.ts); YAML syntax errors carry their line and column. */
export const parseYaml = parseEnvoyYaml;

/** Envoy's judgement of a document as a Bootstrap: the normalized document and every problem, warnings included. */
export function checkBootstrap(document: unknown): { normalized: Json; problems: Problem[] } {
  const api = envoyApi();
  const validator = new ProtoValidator(api);
  const normalized = validator.message(document ?? {}, api.message(BOOTSTRAP)!, "");
  return { normalized, problems: validator.problems };
}

/** Validates against Envoy's Bootstrap message only; throws on errors (warnings pass). */
export function validateBootstrap(document: unknown, source: string): Json {
  const { normalized, problems } = checkBootstrap(document);
  const errors = problems.filter((problem) => problem.severity === "error").map(formatProblem);
  if (errors.length > 0) throw new ConfigError(errors, source);
  return normalized;
}

/** Valid Envoy, then only what the runner implements. */
export function toRunnerConfig(document: unknown, source: string): RunnerConfig {
  const normalized = validateBootstrap(document, source) as { [key: string]: Json };
  const reader = new SubsetReader(source, envoyApi());
  const config = reader.read(normalized);
  if (reader.problems.length > 0) throw new ConfigError(reader.problems.map(formatProblem), source);
  const version = createHash("sha256").update(JSON.stringify(normalized)).digest("hex").slice(0, 16);
  return { ...config, document: normalized, version };
}

/**
 * The file as text. Bytes that are not UTF-8 are refused with their line: decoding them as U+FFFD
 * would silently change a cluster name or a policy. (A newline byte never occurs inside a UTF-8
 * sequence, so each line can be checked on its own.)
 */
export async function readYamlFile(file: string): Promise<string> {
  const bytes = await readFile(file);
  if (!isUtf8(bytes)) {
    let start = 0;
    for (let line = 1; ; line++) {
      const end = bytes.indexOf(0x0a, start);
      const text = bytes.subarray(start, end < 0 ? bytes.length : end);
      if (!isUtf8(text)) throw new ConfigError([`line ${line}: not UTF-8 (YAML files are UTF-8 text)`], file);
      start = end + 1;
    }
  }
  return bytes.toString("utf8");
}

export async function loadRunnerConfig(file: string): Promise<RunnerConfig> {
  return toRunnerConfig(parseYaml(await readYamlFile(file), file), file);
}


export { ConfigError };
