// Builds the optional native addon (native/: SO_ORIGINAL_DST, the relaying processes' heap policy)
// when a C compiler is there. Without one the package still installs: each feature that needs the
// addon says so when it runs.
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const native = join(dirname(fileURLToPath(import.meta.url)), "..", "native");
const result = spawnSync("node-gyp", ["rebuild", "-C", native], { stdio: ["ignore", "ignore", "pipe"], encoding: "utf8", shell: process.platform === "win32" });
if (result.status !== 0) {
  const reason = result.error?.message ?? result.stderr.trim().split("\n").filter((line) => /error/i.test(line)).slice(-1)[0] ?? "node-gyp failed";
  console.warn(`wasmerang: the optional native addon was not built (${reason}); original_dst and the heap tuning of relaying processes are off`);
}
