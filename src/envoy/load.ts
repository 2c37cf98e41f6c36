// Reads an Envoy v3 bootstrap YAML file: parse, validate against Envoy's protos, then keep the
// subset the runner implements. Errors name the file and the path of every field at fault.
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { parseDocument } from "yaml";
import type { RunnerConfig } from "./model.js";
import { envoyProtos } from "./protos.js";
import { SubsetReader } from "./subset.js";
import { ConfigError, ProtoValidator, type Json } from "./validate.js";

const BOOTSTRAP = "envoy.config.bootstrap.v3.Bootstrap";

/** Parses YAML text; YAML syntax errors carry their line and column. */
export function parseYaml(text: string, source: string): unknown {
  const document = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (document.errors.length > 0) throw new ConfigError(document.errors.map((e) => e.message.split("\n")[0]!), source);
  return document.toJS({ maxAliasCount: 100 });
}

/** Validates against Envoy's Bootstrap message only (what `wasmerang validate` checks). */
export function validateBootstrap(document: unknown, source: string): Json {
  const validator = new ProtoValidator(envoyProtos());
  const normalized = validator.message(document ?? {}, envoyProtos().lookupType(BOOTSTRAP), "");
  if (validator.problems.length > 0) throw new ConfigError(validator.problems, source);
  return normalized;
}

/** Valid Envoy, then only what the runner implements. */
export function toRunnerConfig(document: unknown, source: string): RunnerConfig {
  const normalized = validateBootstrap(document, source) as { [key: string]: Json };
  const reader = new SubsetReader(source);
  const config = reader.read(normalized);
  if (reader.problems.length > 0) throw new ConfigError(reader.problems, source);
  const version = createHash("sha256").update(JSON.stringify(normalized)).digest("hex").slice(0, 16);
  return { ...config, document: normalized, version };
}

export async function loadRunnerConfig(file: string): Promise<RunnerConfig> {
  const text = await readFile(file, "utf8");
  return toRunnerConfig(parseYaml(text, file), file);
}

export async function validateFile(file: string): Promise<void> {
  validateBootstrap(parseYaml(await readFile(file, "utf8"), file), file);
}

export { ConfigError };
