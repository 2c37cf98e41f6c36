// The package's root directory and version, from its package.json (found upward from this module,
// so it works from the sources, the compiled build and an installed package alike).
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

function findPackage(): { root: string; version: string } {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, "package.json");
    if (existsSync(candidate)) {
      const manifest = JSON.parse(readFileSync(candidate, "utf8")) as { name?: string; version?: string };
      if (manifest.name === "wasmerang" && manifest.version !== undefined) return { root: dir, version: manifest.version };
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error("the wasmerang package.json was not found above its modules");
    dir = parent;
  }
}

const found = findPackage();

/** Where package.json, dist/, templates/ and examples/ are. */
export const PACKAGE_ROOT = found.root;
export const VERSION = found.version;
