// The body of loadRunnerConfigOffThread: reads, parses and validates one bootstrap in a worker
// thread and posts the result (or the configuration error) back.
import { parentPort, workerData } from "node:worker_threads";
import { loadRunnerConfig } from "./load.js";
import { ConfigError } from "./errors.js";

try {
  parentPort!.postMessage({ config: await loadRunnerConfig(workerData as string) });
} catch (error) {
  parentPort!.postMessage(error instanceof ConfigError
    ? { problems: error.problems }
    : { failure: (error as Error).message });
}
