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
const SMALL = 10_000;
const LARGE = 20_000;

export interface InstructionResult {
  name: string;
  instructionsPerConnection: number;
}

export function valgrindAvailable(): boolean {
  return spawnSync("valgrind", ["--version"]).status === 0;
}

async function instructions(module: string, configuration: string, connections: number): Promise<number> {
  const { stderr } = await promisify(execFile)("valgrind", ["--tool=callgrind", "--callgrind-out-file=/dev/null",
    process.execPath, "--predictable", "--predictable-gc-schedule", "--import", "tsx", "bench/filter-driver.ts", module, configuration, String(connections)],
  { encoding: "utf8", timeout: 600_000, maxBuffer: 16 * 1024 * 1024 });
  const collected = /Collected : (\d+)/.exec(stderr);
  if (collected === null) throw new Error(`callgrind printed no count: ${stderr.slice(-2000)}`);
  return Number(collected[1]);
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
  const counts = await onEveryCore(compared.flatMap((variant, index) =>
    [SMALL, LARGE].map((connections) => () => instructions(files[index]!, variant.configuration, connections))));
  return compared.map((variant, index) => ({
    name: variant.name,
    instructionsPerConnection: (counts[2 * index + 1]! - counts[2 * index]!) / (LARGE - SMALL),
  }));
}
