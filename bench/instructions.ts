// Instructions per connection, counted by valgrind's callgrind: the same on every run of the same
// program, whatever else the machine is doing, where wall time on these machines swings by 2x.
// V8 runs with --predictable and --predictable-gc-schedule (no concurrent compilation or GC
// threads, heap growth not driven by the clock), without which the moment code tiers up, and so
// the count, varies by up to 3x from run to run; what remains varies by about 1 %. Each variant runs with SMALL
// and with LARGE connections; the difference divided by the extra connections is the cost of one
// connection, without start-up, compilation and warm-up.
import { execFile, spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { Variant } from "./filter-cost.js";

// V8 is still compiling hot code at 3,000 connections (the difference 1,000 → 3,000 is four
// times the steady state); from 10,000 on the count per connection no longer moves (±1 %).
export const SMALL = 10_000;
export const LARGE = 20_000;

// --predictable and --predictable-gc-schedule: see above. Fixed hash and random seeds: without
// them two runs of the same program still differ by up to 4 %. --no-liftoff: V8 first runs Wasm
// from its baseline compiler (Liftoff) and moves a function to its optimizing one (TurboFan) once
// it has run enough; in a 20,000-connection run the per-connection functions have not all moved,
// while in a long-running Envoy they all have. Compiling with TurboFan from the start measures
// that steady state, for the baseline module and the filter alike.
const V8_FLAGS = ["--predictable", "--predictable-gc-schedule", "--hash-seed=1", "--random-seed=1", "--no-liftoff"];

export interface InstructionResult {
  name: string;
  instructionsPerConnection: number;
}

export function valgrindAvailable(): boolean {
  return spawnSync("valgrind", ["--version"]).status === 0;
}

export interface CallgrindRun {
  /** Instructions of the whole program. */
  total: number;
  /** The Node process's pid (names V8's perf map, /tmp/perf-PID.map). */
  pid: number;
}

/** The driver under callgrind; `extra` adds callgrind's and Node's own options (bench/instruction-profile.ts). */
export async function callgrind(module: string, configurationFile: string, connections: number,
  extra: { callgrind: string[]; node: string[] } = { callgrind: ["--callgrind-out-file=/dev/null"], node: [] }): Promise<CallgrindRun> {
  const { stderr } = await promisify(execFile)("valgrind", ["--tool=callgrind", ...extra.callgrind,
    process.execPath, ...V8_FLAGS, ...extra.node, "--import", "tsx", "bench/filter-driver.ts", module, configurationFile, String(connections)],
  { encoding: "utf8", timeout: 600_000, maxBuffer: 16 * 1024 * 1024 });
  const collected = /Collected : (\d+)/.exec(stderr);
  const pid = /^==(\d+)==/m.exec(stderr);
  if (collected === null || pid === null) throw new Error(`callgrind printed no count: ${stderr.slice(-2000)}`);
  return { total: Number(collected[1]), pid: Number(pid[1]) };
}


/** Runs `jobs` with at most one per core at a time, keeping their order. */
async function onEveryCore<T>(jobs: (() => Promise<T>)[]): Promise<T[]> {
  const results: T[] = new Array(jobs.length);
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const index = next++;
      results[index] = await jobs[index]!();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, cpus().length) }, worker));
  return results;
}

export async function filterInstructions(compared: readonly Variant[]): Promise<InstructionResult[]> {
  const dir = mkdtempSync(join(tmpdir(), "wasmerang-callgrind-"));
  const files = compared.map((variant, index) => {
    if (typeof variant.module === "string") return variant.module;
    const file = join(dir, `variant-${index}.wasm`);
    writeFileSync(file, variant.module);
    return file;
  });
  // A file, not an argument: a 100,000-CIDR policy is beyond the kernel's limit for one argument.
  const configurations = compared.map((variant, index) => {
    const file = join(dir, `configuration-${index}.txt`);
    writeFileSync(file, variant.configuration);
    return file;
  });
  const counts = await onEveryCore(compared.flatMap((_variant, index) =>
    [SMALL, LARGE].map((connections) => async () => (await callgrind(files[index]!, configurations[index]!, connections)).total)));
  return compared.map((variant, index) => ({
    name: variant.name,
    instructionsPerConnection: (counts[2 * index + 1]! - counts[2 * index]!) / (LARGE - SMALL),
  }));
}
