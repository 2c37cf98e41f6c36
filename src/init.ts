// `wasmerang init [dir]`: a filter project of one's own, from templates/filter: a StreamContext
// filter on the SDK, its asconfig.json, a harness test and an envoy.yaml, ready for
// `npm install && npm test && npx wasmerang run -c envoy.yaml`.
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative, resolve } from "node:path";
import { PACKAGE_ROOT } from "./version.js";

function files(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)));
}

export interface InitOptions {
  /** The project's dependency on wasmerang (default: this installation, as a file: dependency). */
  dependency?: string;
}

/** Writes the project; returns the files written. Refuses a directory that is not empty. */
export function initProject(target: string, options: InitOptions = {}): string[] {
  const root = PACKAGE_ROOT;
  const templates = join(root, "templates", "filter");
  const dir = resolve(target);
  if (existsSync(dir) && readdirSync(dir).length > 0) throw new Error(`${target} is not empty; init writes a new project`);
  const manifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { dependencies: Record<string, string> };
  const values: Record<string, string> = {
    __NAME__: basename(dir).toLowerCase().replace(/[^a-z0-9._-]/g, "-"),
    __WASMERANG__: options.dependency ?? `file:${realpathSync(root)}`,
    __ASSEMBLYSCRIPT__: manifest.dependencies.assemblyscript!,
  };
  const written: string[] = [];
  for (const file of files(templates)) {
    // npm leaves .gitignore files out of packages, so the template has it without the dot.
    const name = file === "gitignore" ? ".gitignore" : file;
    const text = readFileSync(join(templates, file), "utf8").replace(/__[A-Z]+__/g, (key) => values[key] ?? key);
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), text);
    written.push(name);
  }
  return written;
}
