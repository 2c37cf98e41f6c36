// `wasmerang test FILE...`: policy tests. A YAML file names a filter (a policy file, or a bootstrap
// and listener) and cases: facts in, expected outcome, cluster and rule out. Each case runs on the
// real module (explain.ts); a failure prints what the module did instead.
import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { parse } from "yaml";
import { lintPolicy } from "./policy-lint.js";
import { explain, filterFromBootstrap, renderExplanation, WASMERANG_MODULE, type Explanation, type FilterUnderTest } from "./explain.js";

export interface PolicyCase {
  name: string;
  source: string;
  destination?: string;
  sni?: string;
  metadata?: Record<string, Record<string, string>>;
  filterState?: Record<string, string>;
  request?: { method?: string; path?: string; authority?: string; headers?: Record<string, string> };
  expect: { outcome?: string; cluster?: string; rule?: string };
}

export interface CaseResult {
  file: string;
  name: string;
  failures: string[];
  explanation: Explanation;
}

type Fields = Record<string, unknown>;

function fields(value: unknown, where: string): Fields {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error(`${where}: expected a mapping`);
  return value as Fields;
}

function text(value: unknown, where: string, required: boolean): string | undefined {
  if (value === undefined && !required) return undefined;
  if (typeof value !== "string" || value === "") throw new Error(`${where}: expected a non-empty string`);
  return value;
}

const FILE_FIELDS = ["policy", "bootstrap", "listener", "module", "cases"];
const CASE_FIELDS = ["name", "source", "destination", "sni", "metadata", "filter_state", "request", "expect"];
const REQUEST_FIELDS = ["method", "path", "authority", "headers"];
const EXPECT_FIELDS = ["outcome", "cluster", "rule"];

/** A mapping of strings (`depth` 2: of mappings of strings), or undefined when absent. */
function stringMap(value: unknown, where: string): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  const out: Record<string, string> = {};
  for (const [key, item] of Object.entries(fields(value, where))) {
    if (typeof item !== "string") throw new Error(`${where}.${key}: expected a string`);
    out[key] = item;
  }
  return out;
}

function metadataMap(value: unknown, where: string): Record<string, Record<string, string>> | undefined {
  if (value === undefined) return undefined;
  return Object.fromEntries(Object.entries(fields(value, where)).map(([namespace, entries]) => [namespace, stringMap(entries, `${where}.${namespace}`)!]));
}

/** An HTTP request's facts: the case runs the module as an HTTP filter. */
function requestOf(value: unknown, where: string): PolicyCase["request"] {
  if (value === undefined) return undefined;
  const request = fields(value, where);
  only(request, REQUEST_FIELDS, where);
  return { method: text(request.method, `${where}.method`, false), path: text(request.path, `${where}.path`, false),
    authority: text(request.authority, `${where}.authority`, false), headers: stringMap(request.headers, `${where}.headers`) };
}

function only(object: Fields, allowed: string[], where: string): void {
  const unknown = Object.keys(object).find((key) => !allowed.includes(key));
  if (unknown !== undefined) throw new Error(`${where}.${unknown}: unknown field (expected one of ${allowed.join(", ")})`);
}

/**
 * The filter a test file names: `policy` (a file, relative to the test file) or `bootstrap` (+
 * `listener`: its network filter, or for `kind` http its HTTP filter).
 */
async function filterOf(spec: Fields, file: string, moduleOverride: string | undefined, kind: "network" | "http"): Promise<FilterUnderTest> {
  const here = dirname(file);
  const module = moduleOverride ?? (spec.module === undefined ? undefined : resolve(here, text(spec.module, `${file}: module`, true)!));
  if ((spec.policy === undefined) === (spec.bootstrap === undefined)) throw new Error(`${file}: give one of policy and bootstrap`);
  if (spec.bootstrap !== undefined) {
    return filterFromBootstrap(resolve(here, text(spec.bootstrap, `${file}: bootstrap`, true)!), text(spec.listener, `${file}: listener`, false), module, kind);
  }
  const policy = await readFile(resolve(here, text(spec.policy, `${file}: policy`, true)!), "utf8");
  return { module: module ?? WASMERANG_MODULE, configuration: policy };
}

export interface PolicyTestRun {
  results: CaseResult[];
  /** Policy lint findings (policy-lint.ts), `FILE: PATH: MESSAGE`: they do not fail the run. */
  warnings: string[];
}

/** Lint for a JSON policy the Wasmerang module ran (it bumped Wasmerang's counters). */
function lintWarnings(file: string, filter: FilterUnderTest, kind: "network" | "http", results: CaseResult[]): string[] {
  if (!results.some((result) => Object.keys(result.explanation.counters).some((name) => name.startsWith("wasmerang.")))) return [];
  let policy: unknown;
  try {
    policy = JSON.parse(filter.configuration);
  } catch {
    return [];
  }
  if (typeof policy !== "object" || policy === null || Array.isArray(policy)) return [];
  return lintPolicy(policy as Record<string, unknown>, kind).map((finding) => `${file}: policy ${finding.path}: ${finding.message}`);
}

export async function runPolicyTests(file: string, moduleOverride?: string): Promise<PolicyTestRun> {
  const spec = fields(parse(await readFile(file, "utf8")), file);
  only(spec, FILE_FIELDS, file);
  const filters = new Map<"network" | "http", FilterUnderTest>();
  const filterFor = async (kind: "network" | "http"): Promise<FilterUnderTest> => {
    if (!filters.has(kind)) filters.set(kind, await filterOf(spec, file, moduleOverride, kind));
    return filters.get(kind)!;
  };
  if (!Array.isArray(spec.cases) || spec.cases.length === 0) throw new Error(`${file}: cases: expected a non-empty list`);
  const results: CaseResult[] = [];
  for (const [i, entry] of spec.cases.entries()) {
    const where = `${file}: cases[${i}]`;
    const item = fields(entry, where);
    only(item, CASE_FIELDS, where);
    const expect = fields(item.expect, `${where}.expect`);
    only(expect, EXPECT_FIELDS, `${where}.expect`);
    const testCase: PolicyCase = {
      name: text(item.name, `${where}.name`, true)!, source: text(item.source, `${where}.source`, true)!,
      destination: text(item.destination, `${where}.destination`, false), sni: text(item.sni, `${where}.sni`, false),
      metadata: metadataMap(item.metadata, `${where}.metadata`), filterState: stringMap(item.filter_state, `${where}.filter_state`),
      request: requestOf(item.request, `${where}.request`),
      expect: { outcome: text(expect.outcome, `${where}.expect.outcome`, false), cluster: text(expect.cluster, `${where}.expect.cluster`, false),
        rule: text(expect.rule, `${where}.expect.rule`, false) },
    };
    const explanation = await explain(await filterFor(testCase.request === undefined ? "network" : "http"), { source: testCase.source, destination: testCase.destination, serverName: testCase.sni,
      metadata: testCase.metadata, filterState: testCase.filterState, request: testCase.request });
    // A rule without a name is `rules[i]`, as record_decision names it.
    const rule = explanation.rule === "default" ? "default" : explanation.rule.name ?? `rules[${explanation.rule.index}]`;
    const failures: string[] = [];
    const check = (what: string, expected: string | undefined, actual: string | undefined) => {
      if (expected !== undefined && expected !== actual) failures.push(`${what}: expected ${expected}, got ${actual ?? "none"}`);
    };
    check("outcome", testCase.expect.outcome, explanation.outcome);
    check("cluster", testCase.expect.cluster, explanation.cluster);
    check("rule", testCase.expect.rule, rule);
    results.push({ file, name: testCase.name, failures, explanation });
  }
  // A policy file serves both kinds: lint it once, as an HTTP filter sees every matcher.
  const linted = [...filters.entries()].filter(([kind, filter]) => kind === "http" || filters.get("http")?.configuration !== filter.configuration);
  return { results, warnings: linted.flatMap(([kind, filter]) => lintWarnings(file, filter, kind, results)) };
}

export type Reporter = "text" | "tap" | "junit";

function xml(value: string): string {
  return value.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

export function renderResults(results: CaseResult[], reporter: Reporter): string {
  if (reporter === "tap") {
    const lines = ["TAP version 13", `1..${results.length}`];
    results.forEach((result, i) => {
      lines.push(`${result.failures.length === 0 ? "ok" : "not ok"} ${i + 1} - ${result.file}: ${result.name}`);
      for (const failure of result.failures) lines.push(`  # ${failure}`);
    });
    return `${lines.join("\n")}\n`;
  }
  if (reporter === "junit") {
    const failed = results.filter((result) => result.failures.length > 0).length;
    const cases = results.map((result) => `  <testcase classname="${xml(result.file)}" name="${xml(result.name)}">` +
      (result.failures.length === 0 ? "" : `<failure message="${xml(result.failures.join("; "))}">${xml(renderExplanation(result.explanation))}</failure>`) + "</testcase>");
    return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="wasmerang policy tests" tests="${results.length}" failures="${failed}">\n${cases.join("\n")}\n</testsuite>\n`;
  }
  const lines: string[] = [];
  for (const result of results) {
    if (result.failures.length === 0) {
      lines.push(`ok      ${result.file}: ${result.name}`);
      continue;
    }
    lines.push(`FAILED  ${result.file}: ${result.name}`, ...result.failures.map((failure) => `  ${failure}`),
      ...renderExplanation(result.explanation).trimEnd().split("\n").map((line) => `    ${line}`));
  }
  const failed = results.filter((result) => result.failures.length > 0).length;
  lines.push(`${results.length - failed} passed, ${failed} failed`);
  return `${lines.join("\n")}\n`;
}
