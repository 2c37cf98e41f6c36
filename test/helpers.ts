// Shared test fixtures: paths of the built modules and a harness loader.
import { fileURLToPath } from "node:url";
import { FilterHarness, type HarnessOptions } from "../src/host/harness.js";

export const REPO = fileURLToPath(new URL("..", import.meta.url));
export const FILTER_WASM = `${REPO}dist/wasmerang.wasm`;
export const CUSTOM_FILTER_WASM = `${REPO}dist/custom-filter.wasm`;

export function loadFilter(configuration: string | object = "", options: Partial<HarnessOptions> = {}): Promise<FilterHarness> {
  return FilterHarness.load({
    module: FILTER_WASM,
    configuration: typeof configuration === "string" ? configuration : JSON.stringify(configuration),
    ...options,
  });
}

/** The cluster chosen for one connection from `source` (and optionally `destination`, SNI). */
export function routeOnce(filter: FilterHarness, source: string, destination?: string, serverName?: string): string | undefined {
  const connection = filter.connect({ source, destination, serverName });
  const cluster = connection.cluster;
  connection.close();
  return cluster;
}
