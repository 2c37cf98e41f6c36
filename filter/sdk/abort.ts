// Replaces AssemblyScript's default abort, which would import `env.abort` (Envoy refuses modules
// with imports outside the ABI). Logs the reason, then traps: the host applies its failure policy.
import { formatNumber } from "./format";
import { log } from "./hostcalls";
import { LogLevel } from "./types";

export function abortWithLog(message: string | null, fileName: string | null, line: u32, column: u32): void {
  const what = message == null ? "abort" : message;
  const where = fileName == null ? "?" : fileName;
  log(LogLevel.Critical, "wasm abort: " + what + " at " + where + ":" + formatNumber(line) + ":" + formatNumber(column));
  unreachable();
}
