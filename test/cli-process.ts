// The `wasmerang` command as its own process, as an operator runs it: its log lines collected,
// optionally under a lower open-file limit (ulimit -n) to exhaust its descriptors.
import assert from "node:assert/strict";
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO } from "./helpers.js";

export interface CliProcess {
  child: ChildProcessWithoutNullStreams;
  /** Everything it logged so far. */
  output(): string;
  /** Waits (up to 15 s: a loaded machine starts slowly) until the log matches. */
  waitFor(pattern: RegExp): Promise<RegExpExecArray>;
  /** Resident memory in bytes (Linux /proc/PID/status). */
  rss(): number;
}

export function spawnCli(args: string[], options: { fileLimit?: number } = {}): CliProcess {
  const command = [process.execPath, join(REPO, "build/src/cli.js"), ...args, "--log-format", "json"];
  const child = options.fileLimit === undefined
    ? spawn(command[0]!, command.slice(1))
    : spawn("bash", ["-c", `ulimit -n ${options.fileLimit} && exec "$@"`, "bash", ...command]);
  let text = "";
  child.stdout.on("data", (chunk: Buffer) => (text += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (text += chunk.toString()));
  return {
    child,
    output: () => text,
    waitFor: async (pattern) => {
      for (let i = 0; i < 600 && !pattern.test(text); i++) await new Promise((resolve) => setTimeout(resolve, 25));
      assert.match(text, pattern);
      return pattern.exec(text)!;
    },
    rss: () => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"))![1]) * 1024,
  };
}

/** `wasmerang run -c FILE`, with Wasm logs from warn up. */
export function spawnRunner(file: string, ...extra: string[]): CliProcess {
  return spawnCli(["run", "-c", file, ...extra, "--wasm-log-level", "warn"]);
}
