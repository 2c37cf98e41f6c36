// What `wasmerang validate` reads: files and folders (walked for .yaml, .yml and .json), each file
// one Envoy bootstrap or a stream of Kubernetes manifests, told apart by apiVersion and kind.
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Problem } from "../envoy/errors.js";
import { parseEnvoyYamlDocuments, type YamlDocument } from "../envoy/envoy-yaml.js";
import { readYamlFile } from "../envoy/load.js";
import { checkBootstrapDocument, looksLikeBootstrap, type BootstrapCheckOptions } from "./bootstrap.js";
import { checkManifest, isManifest } from "./manifests.js";

export interface FileReport {
  file: string;
  problems: Problem[];
  /** What was found and what was not checked, for the text report. */
  notes: string[];
}

const CONFIG_FILE = /\.(ya?ml|json)$/;

/** The files to check: each argument, or the config files under it if it is a folder. */
export async function expandPaths(paths: string[]): Promise<{ files: string[]; walked: Set<string> }> {
  const files: string[] = [];
  const walked = new Set<string>();
  for (const path of paths) {
    if (!(await stat(path)).isDirectory()) {
      files.push(path);
      continue;
    }
    const entries = await readdir(path, { recursive: true, withFileTypes: true });
    for (const entry of entries) {
      const file = join(entry.parentPath, entry.name);
      if (!entry.isFile() || !CONFIG_FILE.test(entry.name) || /(^|\/)(node_modules|\.[^/]+)\//.test(file)) continue;
      files.push(file);
      walked.add(file);
    }
  }
  return { files: files.sort(), walked };
}

/** Prefixes a document's problem paths when a file holds several documents. */
function inDocument(problems: Problem[], documents: YamlDocument[], index: number): Problem[] {
  if (documents.length === 1) return problems;
  const prefix = `document ${index + 1} (line ${documents[index]!.line})`;
  return problems.map((problem) => ({ ...problem, path: problem.path === "" ? prefix : `${prefix}: ${problem.path}` }));
}

/**
 * Checks one file. `walked`: found by walking a folder, where files that are neither bootstraps nor
 * manifests (a compose file, a policy) are noted and skipped instead of read as bootstraps.
 */
export async function checkFile(file: string, options: BootstrapCheckOptions, walked: boolean): Promise<FileReport> {
  const report: FileReport = { file, problems: [], notes: [] };
  let documents: YamlDocument[];
  try {
    documents = parseEnvoyYamlDocuments(await readYamlFile(file), file);
  } catch (error) {
    const problems = (error as { problems?: string[] }).problems ?? [(error as Error).message];
    report.problems.push(...problems.map((message) => ({ path: "", severity: "error" as const, message })));
    return report;
  }
  const isManifestStream = documents.some((document) => isManifest(document.value));
  if (!isManifestStream) {
    if (documents.length > 1) {
      report.problems.push({ path: "", severity: "error", message: `${documents.length} YAML documents without apiVersion/kind; an Envoy bootstrap is one document (Envoy reads only the first)` });
      return report;
    }
    const document = documents[0]?.value ?? {};
    if (walked && !looksLikeBootstrap(document)) {
      report.notes.push("skipped: neither an Envoy bootstrap nor a Kubernetes manifest");
      return report;
    }
    report.problems.push(...await checkBootstrapDocument(document, file, options));
    return report;
  }
  for (const [index, document] of documents.entries()) {
    if (document.value === null) continue;
    const problems: Problem[] = [];
    if (!isManifest(document.value)) {
      problems.push({ path: "", severity: "error", message: "a document without apiVersion and kind among Kubernetes manifests" });
    } else {
      const result = await checkManifest(document.value, options, problems);
      if (result.skipped !== undefined) report.notes.push(`${result.label}: ${result.skipped}`);
    }
    report.problems.push(...inDocument(problems, documents, index));
  }
  return report;
}
