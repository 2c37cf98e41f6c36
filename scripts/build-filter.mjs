// Builds an AssemblyScript filter: asc (asconfig.json's release target), then one more Binaryen
// pass. Usage: node scripts/build-filter.mjs ENTRY.ts OUTPUT.wasm [--debug]
// (--debug keeps function names, for bench/instruction-profile.ts).
//
// Two things asc alone does not do:
// - The message table (filter/messages.ts). AssemblyScript lays every string literal out
//   as UTF-16 behind a 20-byte header, one data segment each; the configuration reader's field
//   names and error messages were a third of the module. Every `msg("…")` in filter/ is stored
//   once, as UTF-8, in one table, and the call becomes `msg<u32>(entry)`, which decodes it. asc
//   has no hook for this: its API lets the build serve the sources, so the build rewrites them as
//   asc reads them. Compiled by plain asc, `msg("…")` is the literal itself.
// - Inlining small functions. asc's size-first settings leave the standard library's array
//   accessors (`unchecked(a[i])`, `a.length`) as calls, and V8 does not inline Wasm calls: on the
//   per-connection path they were about 800 instructions of calls and returns.
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import asc from "assemblyscript/asc";
import binaryen from "binaryen";

const [entry, output, ...options] = process.argv.slice(2);
const debug = options.includes("--debug");
if (!entry || !output || options.some((option) => option !== "--debug")) {
  console.error("usage: build-filter.mjs ENTRY.ts OUTPUT.wasm [--debug]");
  process.exit(2);
}

const FILTER_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "../filter");
const TABLE_MODULE = join(FILTER_DIR, "message-table.ts");
// A double-quoted literal with the escapes AssemblyScript and JSON share, plus \'.
const MSG_CALL = /\bmsg\("((?:[^"\\\n]|\\["'\\nt])*)"\)/g;
// An entry is offset << 8 | length: one i32 constant per call site.
const MAX_LENGTH = 255;

function fail(message) {
  console.error(message);
  process.exit(1);
}

function sourcesUnder(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((item) => {
    const path = join(dir, item.name);
    if (item.isDirectory()) return sourcesUnder(path);
    return item.name.endsWith(".ts") ? [path] : [];
  });
}

function unescape(literal) {
  return JSON.parse(`"${literal.replace(/\\'/g, "'")}"`);
}

/** Every msg("…") text in filter/, each stored once: the table's bytes and each text's entry. */
function messageTable() {
  const entries = new Map();
  const chunks = [];
  let size = 0;
  for (const file of sourcesUnder(FILTER_DIR)) {
    const source = readFileSync(file, "utf8");
    const literals = [...source.matchAll(MSG_CALL)];
    // Any other call would build (msg is the identity on a string) but keep its text out of the table.
    const calls = source.match(/\bmsg\(/g)?.length ?? 0;
    if (calls !== literals.length) {
      fail(`${relative(process.cwd(), file)}: msg() takes one double-quoted string literal (${calls - literals.length} of its ${calls} calls pass something else)`);
    }
    for (const [, literal] of literals) {
      const text = unescape(literal);
      if (entries.has(text)) continue;
      const bytes = Buffer.from(text, "utf8");
      if (bytes.length > MAX_LENGTH) fail(`${relative(process.cwd(), file)}: msg("${text.slice(0, 40)}…") is longer than ${MAX_LENGTH} bytes`);
      entries.set(text, size * 256 + bytes.length);
      chunks.push(bytes);
      size += bytes.length;
    }
  }
  return { bytes: Buffer.concat(chunks), entries };
}

const table = messageTable();

function serve(filename, baseDir) {
  const path = resolve(baseDir, filename);
  let source;
  try {
    source = readFileSync(path, "utf8");
  } catch {
    return null;
  }
  if (path === TABLE_MODULE) {
    return `export const MESSAGE_TABLE: usize = memory.data<u8>([${[...table.bytes].join(",")}]);\n`;
  }
  if (!path.startsWith(FILTER_DIR)) return source;
  return source.replace(MSG_CALL, (_call, literal) => `msg<u32>(0x${table.entries.get(unescape(literal)).toString(16)})`);
}

const { error } = await asc.main([entry, "-o", output, "--target", "release", ...(debug ? ["--debug"] : [])], { readFile: serve, stdout: process.stdout, stderr: process.stderr });
if (error) fail(`${entry}: ${error.message}`);

const module = binaryen.readBinary(readFileSync(output));
// The features asc compiles for by default (AssemblyScript's `defaultFeatures`).
module.setFeatures(binaryen.Features.SignExt | binaryen.Features.MutableGlobals | binaryen.Features.NontrappingFPToInt
  | binaryen.Features.BulkMemory | binaryen.Features.BulkMemoryOpt);
// Binaryen's settings are process-wide and asc leaves its own behind: set each one this pass uses
// (Binaryen's defaults for -Oz, but for the inlining size).
binaryen.clearPassArguments();
binaryen.setOptimizeLevel(2);
binaryen.setShrinkLevel(2);
binaryen.setAlwaysInlineMaxSize(6);
binaryen.setFlexibleInlineMaxSize(20);
binaryen.setOneCallerInlineMaxSize(-1);
binaryen.setAllowInliningFunctionsWithLoops(false);
binaryen.setGenerateStackIR(true);
binaryen.setOptimizeStackIR(true);
binaryen.setClosedWorld(false);
binaryen.setFastMath(false);
binaryen.setZeroFilledMemory(false);
binaryen.setLowMemoryUnused(false);
binaryen.setTrapsNeverHappen(false);
binaryen.setDebugInfo(debug);
module.optimize();
if (!module.validate()) fail(`${output}: Binaryen produced an invalid module`);
writeFileSync(output, module.emitBinary());
module.dispose();
