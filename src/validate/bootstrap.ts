// A bootstrap document judged three ways: Envoy's (its API protos, as Envoy parses), the filters'
// (each Wasm module configured as Envoy would), and across the document (references.ts); with
// `runner`, also against what the local runner implements.
import type { Json, Problem } from "../envoy/errors.js";
import { checkBootstrap } from "../envoy/load.js";
import { envoyApi } from "../envoy/protos.js";
import { SubsetReader } from "../envoy/subset.js";
import { ReferenceChecker } from "./references.js";
import { checkWasmFilters, type WasmCheckOptions } from "./wasm-filters.js";

export interface BootstrapCheckOptions extends WasmCheckOptions {
  /** Also refuse what the local runner does not implement. */
  runner?: boolean;
}

export async function checkBootstrapDocument(document: unknown, source: string, options: BootstrapCheckOptions): Promise<Problem[]> {
  const { normalized, problems } = checkBootstrap(document);
  if (problems.some((problem) => problem.severity === "error")) return problems;
  const bootstrap = normalized as { [key: string]: Json };
  const wasm = await checkWasmFilters(bootstrap, options, problems);
  new ReferenceChecker(bootstrap, wasm, problems).check();
  if (options.runner === true) {
    const reader = new SubsetReader(source, envoyApi());
    reader.read(bootstrap);
    problems.push(...reader.problems);
  }
  return problems;
}

const BOOTSTRAP_FIELDS = new Set(["node", "node_context_params", "static_resources", "dynamic_resources", "cluster_manager", "hds_config",
  "flags_path", "stats_sinks", "stats_config", "stats_flush_interval", "watchdog", "watchdogs", "tracing", "layered_runtime", "admin",
  "overload_manager", "enable_dispatcher_stats", "header_prefix", "stats_server_version_override", "use_tcp_for_dns_lookups",
  "dns_resolution_config", "typed_dns_resolver_config", "bootstrap_extensions", "fatal_actions", "config_sources",
  "default_config_source", "default_socket_interface", "certificate_provider_instances", "inline_headers", "perf_tracing_file_path",
  "default_regex_engine", "xds_delegate_extension", "xds_config_tracker_extension", "listener_manager", "application_log_config",
  "grpc_async_client_manager_config", "stats_flush_on_admin", "memory_allocator_manager"]);

/** Whether a document found while walking a folder is meant as a bootstrap (some top-level key is a Bootstrap field). */
export function looksLikeBootstrap(document: unknown): boolean {
  return typeof document === "object" && document !== null && !Array.isArray(document) &&
    Object.keys(document).some((key) => BOOTSTRAP_FIELDS.has(key));
}
