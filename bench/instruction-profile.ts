// Where a module's instructions per connection go, function by function. The same runs as the
// bench's instruction counts (bench/instructions.ts: the driver under callgrind, 10,000 and
// 20,000 connections, the difference divided by 10,000), with callgrind counting each machine
// instruction (--dump-instr=yes) and V8 writing the map of its generated code (--perf-basic-prof,
// /tmp/perf-PID.map): every count is charged to the Wasm function, JS function or V8 builtin whose
// code holds it. Wasm functions go by their name-section names (build with names:
// `node scripts/build-filter.mjs filter/wasmerang.ts /tmp/named.wasm --debug`), else wasm-function[N].
//
// Usage: node --import tsx bench/instruction-profile.ts MODULE.wasm [CONFIGURATION_FILE]
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { callgrind, LARGE, SMALL } from "./instructions.js";

interface CodeRange {
  start: number;
  end: number;
  name: string;
}

function readCodeMap(file: string): CodeRange[] {
  return readFileSync(file, "utf8").split("\n").filter((line) => line !== "").map((line) => {
    const [start, size, ...name] = line.split(" ");
    const from = parseInt(start!, 16);
    return { start: from, end: from + parseInt(size!, 16), name: name.join(" ") };
  }).sort((a, b) => a.start - b.start);
}

function codeAt(ranges: CodeRange[], address: number): string | undefined {
  let low = 0;
  let high = ranges.length - 1;
  while (low <= high) {
    const middle = (low + high) >>> 1;
    const range = ranges[middle]!;
    if (address < range.start) high = middle - 1;
    else if (address >= range.end) low = middle + 1;
    else return range.name;
  }
  return undefined;
}

/**
 * Instructions by code range from callgrind's output (its format: valgrind's docs, "Callgrind
 * Format Specification"). With `positions: instr line`, a cost line is an address (absolute
 * `0x…`, relative `+n`/`-n`, or `*` for the same), a line number and the count; the line after a
 * `calls=` line is the call's inclusive cost, already counted where it was spent.
 */
function instructionsByCode(output: string, ranges: CodeRange[]): Map<string, number> {
  const totals = new Map<string, number>();
  let address = 0;
  let callCost = false;
  for (const line of output.split("\n")) {
    if (line.startsWith("calls=")) {
      callCost = true;
      continue;
    }
    const position = /^(?:(0x[0-9a-f]+)|([+-])(0x[0-9a-f]+|\d+)|\*)\s+\S+\s+(\d+)/.exec(line);
    if (position === null) continue;
    const [, absolute, sign, offset, count] = position;
    if (absolute !== undefined) address = parseInt(absolute, 16);
    else if (offset !== undefined) address += (sign === "-" ? -1 : 1) * Number(offset);
    if (callCost) {
      callCost = false;
      continue;
    }
    const name = codeAt(ranges, address) ?? "(outside generated code: Node, V8, libc)";
    totals.set(name, (totals.get(name) ?? 0) + Number(count));
  }
  return totals;
}

async function profile(module: string, configurationFile: string, connections: number, dir: string): Promise<Map<string, number>> {
  const output = join(dir, `callgrind-${connections}.out`);
  const run = await callgrind(module, configurationFile, connections,
    // --perf-basic-prof also has V8 write a log per isolate; into the scratch directory, not the working one.
    { callgrind: ["--dump-instr=yes", `--callgrind-out-file=${output}`], node: ["--perf-basic-prof", `--logfile=${join(dir, "v8-%p.log")}`] });
  const codeMap = `/tmp/perf-${run.pid}.map`;
  try {
    return instructionsByCode(readFileSync(output, "utf8"), readCodeMap(codeMap));
  } finally {
    rmSync(codeMap, { force: true });
  }
}

/** V8 names a Wasm function's code `NAME-INDEX-TIER` (`JS:` before it), a JS function's `*name file:…`. */
function isWasm(name: string): boolean {
  return /^JS:[^*].*-\d+-(turbofan|liftoff)$/.test(name);
}

const [module, configurationArgument] = process.argv.slice(2);
if (module === undefined) {
  console.error("usage: instruction-profile.ts MODULE.wasm [CONFIGURATION_FILE]");
  process.exit(2);
}
const dir = mkdtempSync(join(tmpdir(), "wasmerang-profile-"));
const configurationFile = configurationArgument ?? join(dir, "configuration.txt");
if (configurationArgument === undefined) writeFileSync(configurationFile, "");
const [small, large] = await Promise.all([profile(module, configurationFile, SMALL, dir), profile(module, configurationFile, LARGE, dir)]);
rmSync(dir, { recursive: true, force: true });

const perConnection = [...new Set([...small.keys(), ...large.keys()])]
  .map((name) => ({ name, instructions: ((large.get(name) ?? 0) - (small.get(name) ?? 0)) / (LARGE - SMALL) }));
const sum = (rows: typeof perConnection) => rows.reduce((total, row) => total + row.instructions, 0);
const wasm = perConnection.filter((row) => isWasm(row.name)).sort((a, b) => b.instructions - a.instructions);
console.log(`Instructions per connection: ${Math.round(sum(perConnection)).toLocaleString("en-US")} in all, ${Math.round(sum(wasm)).toLocaleString("en-US")} in the module`);
for (const row of wasm.filter((row) => row.instructions >= 1)) {
  console.log(`${row.instructions.toFixed(0).padStart(8)}  ${row.name.replace(/^JS:/, "").replace(/-\d+-(turbofan|liftoff)$/, "")}`);
}
console.log("The host's side (JS and V8 builtins; the rest is Node's and V8's own code, where run-to-run noise lands):");
for (const row of perConnection.filter((row) => !isWasm(row.name)).sort((a, b) => b.instructions - a.instructions).slice(0, 15)) {
  console.log(`${row.instructions.toFixed(0).padStart(8)}  ${row.name.replace(/^JS:\*?/, "")}`);
}
