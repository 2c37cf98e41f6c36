// What a configuration check reports: problems by path, and the error that carries them.

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export type JsonObject = { [key: string]: Json };

/** A JSON object (not null, not a list). */
export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export type Severity = "error" | "warning";

export interface Problem {
  /** Dotted path of the field at fault, as Envoy's YAML spells it ("" for the document). */
  path: string;
  message: string;
  severity: Severity;
}

export function formatProblem(problem: Problem): string {
  return problem.path === "" ? problem.message : `${problem.path}: ${problem.message}`;
}

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[], source: string) {
    super(`${source}: ${problems.length === 1 ? problems[0] : `${problems.length} problems:\n  ${problems.join("\n  ")}`}`);
  }
}
