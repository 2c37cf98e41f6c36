// Compiles an AssemblyScript filter (asconfig.json's release target), then optimizes it once more
// with Binaryen, inlining every function of up to six expressions. asc's size-first settings
// keep the standard library's array accessors (`unchecked(a[i])`, `a.length`) as calls, and V8
// does not inline Wasm calls: on the per-connection path that was about 1,000 instructions of
// calls and returns, a third of the filter's own work, for 300 bytes of module.
// Usage: node scripts/build-filter.mjs ENTRY.ts OUTPUT.wasm
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import binaryen from "binaryen";

const [entry, output] = process.argv.slice(2);
if (!entry || !output) {
  console.error("usage: build-filter.mjs ENTRY.ts OUTPUT.wasm");
  process.exit(2);
}

const asc = createRequire(import.meta.url).resolve("assemblyscript/bin/asc.js");
execFileSync(process.execPath, [asc, entry, "-o", output, "--target", "release"], { stdio: "inherit" });

const module = binaryen.readBinary(readFileSync(output));
// The features asc compiles for by default (AssemblyScript's `defaultFeatures`).
module.setFeatures(binaryen.Features.SignExt | binaryen.Features.MutableGlobals | binaryen.Features.NontrappingFPToInt
  | binaryen.Features.BulkMemory | binaryen.Features.BulkMemoryOpt);
binaryen.setOptimizeLevel(2);
binaryen.setShrinkLevel(2);
binaryen.setAlwaysInlineMaxSize(6);
module.optimize();
if (!module.validate()) throw new Error(`${output}: Binaryen produced an invalid module`);
writeFileSync(output, module.emitBinary());
module.dispose();
