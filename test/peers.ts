// Real peers (HAProxy, network namespaces) are required in CI (WASMERANG_REQUIRE_PEERS=1): a
// missing one fails there. Elsewhere the test says so loudly and is skipped.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import type { TestContext } from "node:test";

export const REQUIRE_PEERS = process.env.WASMERANG_REQUIRE_PEERS === "1";

export function commandWorks(command: string, args: string[]): boolean {
  const result = spawnSync(command, args, { stdio: "ignore" });
  return result.status === 0;
}

/** Returns true when the peer is there; otherwise fails (CI) or skips loudly (elsewhere). */
export function needPeer(t: TestContext, peer: string, available: boolean, install: string): boolean {
  if (available) return true;
  const message = `${peer} is not available on this machine (${install})`;
  assert.ok(!REQUIRE_PEERS, `WASMERANG_REQUIRE_PEERS=1 and ${message}`);
  process.stderr.write(`\n!!! SKIPPED: ${message}. CI installs it and runs this test. !!!\n\n`);
  t.skip(message);
  return false;
}
