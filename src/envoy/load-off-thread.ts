// Reloading a large bootstrap (YAML parsing and validation against Envoy's protos: about 3 s for
// 10,000 clusters) must not stall the traffic the running configuration serves on this thread.
// The same load runs in a worker thread; only building the new generation happens here.
import { Worker } from "node:worker_threads";
import type { RunnerConfig, WasmPluginConfig } from "./model.js";
import { ConfigError } from "./errors.js";

type Reply = { config: RunnerConfig } | { problems: string[] } | { failure: string };

/** Structured cloning turns Buffers into Uint8Arrays: make them Buffers again. */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function revive(config: RunnerConfig): RunnerConfig {
  const plugin = (filter: WasmPluginConfig) => {
    filter.configuration = asBuffer(filter.configuration);
    filter.vmConfiguration = asBuffer(filter.vmConfiguration);
    if (filter.inlineCode !== undefined) filter.inlineCode = asBuffer(filter.inlineCode);
  };
  for (const listener of config.listeners) {
    listener.wasmFilters.forEach(plugin);
    listener.http?.wasmFilters.forEach(plugin);
  }
  return config;
}

export function loadRunnerConfigOffThread(file: string): Promise<RunnerConfig> {
  // The compiled worker beside this module (the command runs from the compiled build).
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL("./load-worker.js", import.meta.url), { workerData: file });
    worker.once("message", (reply: Reply) => {
      if ("config" in reply) resolve(revive(reply.config));
      else if ("problems" in reply) reject(new ConfigError(reply.problems, file));
      else reject(new Error(reply.failure));
    });
    worker.once("error", reject);
    worker.once("exit", (code) => reject(new Error(`configuration loader stopped (exit ${code})`)));
  });
}
