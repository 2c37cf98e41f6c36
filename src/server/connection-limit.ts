// How many connections a relaying process may hold before it runs out of file descriptors, and
// the refusal of the ones past that. Without a limit, accept() hits EMFILE and the process can no
// longer open anything, its admin endpoint included; with one, excess connections are closed at
// once and counted, and the descriptors kept in reserve serve admin, logs, DNS and listeners.
// (Envoy's equivalent is the global downstream connection limit of the overload manager,
// counted as listener.<address>.downstream_global_cx_overflow.)
import { readFileSync } from "node:fs";
import type { Logger } from "pino";

/** Descriptors kept for everything that is not a proxied connection. */
export const RESERVED_FDS = 64;

/** The soft limit on open files (Linux /proc/self/limits), or undefined when unknown or unlimited. */
export function openFileLimit(limits = "/proc/self/limits"): number | undefined {
  try {
    const line = /^Max open files\s+(\d+)/m.exec(readFileSync(limits, "utf8"));
    return line === null ? undefined : Number(line[1]);
  } catch {
    return undefined;
  }
}

/** Connections that fit in the descriptor limit when each costs `fdsPerConnection`. */
export function connectionCapacity(fdsPerConnection: number, fileLimit = openFileLimit()): number {
  if (fileLimit === undefined) return Infinity;
  return Math.max(1, Math.floor((fileLimit - RESERVED_FDS) / fdsPerConnection));
}

/** Refusal log lines at most once a second, with how many were refused since the last one. */
const LOG_INTERVAL_MS = 1000;

export class ConnectionLimit {
  private refusedSinceLog = 0;
  private lastLog = -Infinity;

  constructor(readonly max: number, private readonly logger: Logger, private readonly what: string) {}

  /** Whether one more connection fits beside `active`; a refusal is logged (rate-limited). */
  admits(active: number): boolean {
    if (active < this.max) return true;
    this.refusedSinceLog++;
    const now = performance.now();
    if (now - this.lastLog >= LOG_INTERVAL_MS) {
      this.logger.warn({ refused: this.refusedSinceLog, limit: this.max }, `connection refused: ${this.what}`);
      this.refusedSinceLog = 0;
      this.lastLog = now;
    }
    return false;
  }
}
