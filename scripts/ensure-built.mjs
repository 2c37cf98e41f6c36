// Runs `npm run build` when an output is missing or older than its sources, so `npm start` and
// `npm test` work on a fresh clone with nothing else to do.
import { execSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

function newest(path) {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return Math.max(0, ...readdirSync(path).map((entry) => newest(join(path, entry))));
}

function mtime(path) {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return -1;
  }
}

const targets = [
  { output: "dist/wasmerang.wasm", sources: ["filter", "asconfig.json", "scripts/build-filter.mjs"] },
  { output: "dist/custom-filter.wasm", sources: ["filter/sdk", "examples/custom-filter", "asconfig.json", "scripts/build-filter.mjs"] },
  { output: "dist/policy-service.wasm", sources: ["filter/sdk", "examples/policy-service", "asconfig.json", "scripts/build-filter.mjs"] },
  { output: "native/build/Release/wasmerang_native.node", sources: ["native/addon.c", "native/addon.h", "native/original_dst.c", "native/allocator.c", "native/binding.gyp"] },
  { output: "build/src/cli.js", sources: ["src", "tsconfig.json", "tsconfig.build.json"] },
];

// An installed package ships its outputs and not all their sources (prepare runs for a file:
// dependency too): nothing to build there.
if (!existsSync("src")) process.exit(0);

const stale = targets.filter(({ output, sources }) => mtime(output) < Math.max(...sources.map(newest)));
if (stale.length > 0) {
  console.error(`building (${stale.map((t) => t.output).join(", ")} out of date)`);
  execSync("npm run build", { stdio: "inherit" });
}
