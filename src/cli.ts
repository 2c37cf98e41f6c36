#!/usr/bin/env node
// The `wasmerang` command: thin wrappers over the library (runner, validator, egress router, demo).
import { readFileSync } from "node:fs";
import { Command, InvalidArgumentError, Option } from "commander";
import { loadRunnerConfig, ConfigError } from "./envoy/load.js";
import { explain, filterFromBootstrap, renderExplanation, WASMERANG_MODULE } from "./explain.js";
import { renderResults, runPolicyTests, type Reporter } from "./policy-test.js";
import { initProject } from "./init.js";
import { checkFile, expandPaths } from "./validate/files.js";
import { exitStatus, renderReports, type OutputFormat } from "./validate/report.js";
import { LOG_LEVEL_NAMES, type LogLevelName } from "./host/abi.js";
import { createLogger, type LogFormat } from "./logging.js";
import { Runner } from "./runner/runner.js";
import { allowlistOf, parseAccessLogFormat, parseAdminAddress, parseDuration, readEgressFile, type EgressSettings } from "./egress/config.js";
import type { AccessLogFormat } from "./egress/access-log.js";
import { watchConfig } from "./runner/config-watch.js";
import { loadRunnerConfigOffThread } from "./envoy/load-off-thread.js";
import { PACKAGE_ROOT, VERSION } from "./version.js";
import { EgressRouter } from "./egress/router.js";
import { DEMO_CONFIG, runDemo } from "./demo.js";
import { packageFilter } from "./package/oci.js";
import { parseEndpoint } from "./host/properties.js";
import { retainFreedHeap, tuneCollectorForRelaying } from "./native/heap.js";
import type { Logger } from "pino";

/** The relaying commands own their process, so they set its heap policy (src/native/heap.ts). */
function tuneHeapForRelaying(logger: Logger): void {
  if (!retainFreedHeap()) logger.debug("allocator addon unavailable or not glibc: freed read buffers go back to the kernel (slower bulk relaying)");
  tuneCollectorForRelaying();
}

/** A settings parser as a command-line argument parser: its error becomes commander's usage error. */
function argument<T>(parse: (value: string, field: string) => T, field: string): (value: string) => T {
  return (value) => {
    try {
      return parse(value, field);
    } catch (error) {
      throw new InvalidArgumentError((error as Error).message);
    }
  };
}

const duration = argument(parseDuration, "duration");
const accessLogFormat = argument(parseAccessLogFormat, "access log format");

function positiveInteger(value: string): number {
  if (!/^[1-9]\d*$/.test(value)) throw new InvalidArgumentError(`'${value}' is not a whole number of 1 or more`);
  return Number(value);
}

/** `KEY=VALUE`, split at the first '='. */
function keyValue(text: string, what: string): [string, string] {
  const at = text.indexOf("=");
  if (at <= 0) throw new InvalidArgumentError(`'${text}' is not ${what}=VALUE`);
  return [text.slice(0, at), text.slice(at + 1)];
}

/** `--metadata NAMESPACE:KEY=VALUE`: the namespace has dots, so the key is after its last ':'. */
function collectMetadata(text: string, into: Record<string, Record<string, string>>): Record<string, Record<string, string>> {
  const [path, value] = keyValue(text, "NAMESPACE:KEY");
  const colon = path.lastIndexOf(":");
  if (colon <= 0 || colon === path.length - 1) throw new InvalidArgumentError(`'${text}' is not NAMESPACE:KEY=VALUE`);
  (into[path.slice(0, colon)] ??= {})[path.slice(colon + 1)] = value;
  return into;
}

function collectFilterState(text: string, into: Record<string, string>): Record<string, string> {
  const [key, value] = keyValue(text, "KEY");
  into[key] = value;
  return into;
}

const logOptions = (command: Command): Command => command
  .addOption(new Option("--log-level <level>", "process log level").choices(["trace", "debug", "info", "warn", "error", "fatal"]).default("info"))
  .addOption(new Option("--log-format <format>", "text, or JSON lines").choices(["text", "json"]).default("text"));

export function buildProgram(): Command {
  const program = new Command("wasmerang")
    .description("Programmable L4 traffic steering for Envoy and Istio: run, validate and test proxy-wasm filters locally")
    .version(VERSION)
    .showHelpAfterError();

  logOptions(program.command("run")
    .description("serve an Envoy v3 bootstrap YAML on this machine (listeners, Wasm network filters, tcp_proxy, clusters, admin)")
    .requiredOption("-c, --config <file>", "Envoy bootstrap YAML")
    .addOption(new Option("--wasm-log-level <level>", "lowest level of Wasm module logs shown").choices([...LOG_LEVEL_NAMES]).default("info"))
    .addOption(new Option("--drain-time <duration>", "on SIGTERM, how long open connections may finish").argParser(duration).default(10_000, "10s"))
    .option("--wasm-memory-limit <mib>", "MiB of linear memory a Wasm VM may grow to before it is failed (default 1024)", positiveInteger)
    .addOption(new Option("--wasm-call-deadline <duration>", "a Wasm call running longer traps (the failure policy applies); 0s: none").argParser(duration).default(5000, "5s"))
    .option("--watch", "reload when the configuration file changes (as SIGHUP does)"))
    .action(async (options: { config: string; logLevel: string; logFormat: LogFormat; wasmLogLevel: LogLevelName; drainTime: number; watch?: boolean;
      wasmMemoryLimit?: number; wasmCallDeadline: number; }) => {
      const logger = createLogger(options.logLevel, options.logFormat);
      tuneHeapForRelaying(logger);
      const started = Runner.start(await loadRunnerConfig(options.config), {
        logger, wasmLogLevel: options.wasmLogLevel, onQuit: () => process.exit(0),
        wasmMemoryLimitBytes: options.wasmMemoryLimit === undefined ? undefined : options.wasmMemoryLimit * 2 ** 20,
        wasmCallDeadlineMs: options.wasmCallDeadline,
      });
      const reload = () => {
        loadRunnerConfigOffThread(options.config)
          .then(async (config) => (await started).reload(config))
          .catch((error: Error) => logger.error(`reload refused, the running configuration keeps serving: ${error.message}`));
      };
      // Watching starts from the content just loaded, before the listeners are announced: a change
      // made as soon as they are is never missed.
      if (options.watch) watchConfig(options.config, reload);
      const runner = await started;
      process.on("SIGHUP", reload);
      const stop = (signal: string) => {
        logger.info(`${signal}: draining for up to ${options.drainTime} ms`);
        void runner.drain(options.drainTime).then(() => process.exit(0));
      };
      process.once("SIGTERM", () => stop("SIGTERM"));
      process.once("SIGINT", () => stop("SIGINT"));
    });

  program.command("validate")
    .description("check Envoy bootstrap YAML and Istio/Kubernetes manifests as Envoy, the Wasm filters they configure and Istio would " +
      "(files or folders); exit 0 clean, 1 problems, 2 usage")
    .argument("<paths...>", "files, or folders walked for .yaml, .yml and .json")
    .option("--module <file>", "the Wasm module to check where the code is remote (vm_config.code.remote, oci://, a path in a pod)")
    .addOption(new Option("--output <format>", "text, or JSON for tools").choices(["text", "json"]).default("text"))
    .option("--strict", "warnings fail too")
    .option("--runner", "also refuse what the local runner does not implement")
    .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : 2))
    .action(async (paths: string[], options: { module?: string; output: OutputFormat; strict?: boolean; runner?: boolean }) => {
      let expanded;
      try {
        expanded = await expandPaths(paths);
      } catch (error) {
        console.error(`wasmerang validate: ${(error as Error).message}`);
        process.exit(2);
      }
      const reports = [];
      for (const file of expanded.files) reports.push(await checkFile(file, options, expanded.walked.has(file)));
      process.stdout.write(renderReports(reports, options.output));
      process.exitCode = exitStatus(reports, options.strict === true);
    });

  logOptions(program.command("egress")
    .description("run an egress router: accepts PROXY protocol v1/v2 and forwards to the original destination if the allowlist permits")
    .option("--listen <address>", "IP:PORT to listen on", "127.0.0.1:9001")
    .option("--allow <rule>", "CIDR:PORTS allowed as destination (repeatable; IPv6 as [CIDR]:PORTS); nothing is allowed by default",
      (value: string, previous: string[]) => [...previous, value], [] as string[])
    .option("--admin <address>", "admin endpoint for /stats: PORT (on loopback) or IP:PORT")
    .option("--config <file>", "YAML file with the same settings (listen, allow, admin, header_timeout, connect_timeout, idle_timeout, max_connections, access_log, access_log_format, bind_address)")
    .option("--header-timeout <duration>", "time allowed for the PROXY header", duration)
    .option("--connect-timeout <duration>", "time allowed to connect to the destination", duration)
    .option("--idle-timeout <duration>", "close a forwarded connection idle this long (default 1h; 0s: never)", duration)
    .option("--max-connections <n>", "connection limit (default 1024; never above what ulimit -n allows)", positiveInteger)
    .option("--access-log <file>", "access log file, - for stdout: one line per connection, forwarded or not")
    .option("--access-log-format <format>", "text or json", accessLogFormat)
    .option("--bind-address <ip>", "local address for connections to destinations (the router's egress IP)"))
    .action(async (options: { listen: string; allow: string[]; admin?: string; config?: string; headerTimeout?: number; connectTimeout?: number; idleTimeout?: number;
      maxConnections?: number; accessLog?: string; accessLogFormat?: AccessLogFormat; bindAddress?: string; logLevel: string; logFormat: LogFormat }) => {
      const logger = createLogger(options.logLevel, options.logFormat);
      tuneHeapForRelaying(logger);
      const file = options.config === undefined ? {} : await readEgressFile(options.config);
      const settings: EgressSettings = {
        listen: file.listen ?? parseEndpoint(options.listen),
        allow: [...(file.allow ?? []), ...options.allow],
        admin: options.admin !== undefined ? parseAdminAddress(options.admin) : file.admin,
        headerTimeoutMs: options.headerTimeout ?? file.headerTimeoutMs ?? 5000,
        connectTimeoutMs: options.connectTimeout ?? file.connectTimeoutMs ?? 5000,
        idleTimeoutMs: options.idleTimeout ?? file.idleTimeoutMs,
        maxConnections: options.maxConnections ?? file.maxConnections ?? 1024,
        accessLog: options.accessLog ?? file.accessLog,
        accessLogFormat: options.accessLogFormat ?? file.accessLogFormat ?? "text",
        bindAddress: options.bindAddress ?? file.bindAddress,
      };
      const router = await EgressRouter.start({ ...settings, allowlist: allowlistOf(settings), logger, onQuit: () => process.exit(0) });
      const stop = () => void router.close().then(() => process.exit(0));
      process.once("SIGTERM", stop);
      process.once("SIGINT", stop);
    });

  program.command("package")
    .description("write the filter as an OCI image (Istio WasmPlugin oci:// format) and its sha256 for vm_config.code.remote")
    .option("--wasm <file>", "module to package", "dist/wasmerang.wasm")
    .option("--out <dir>", "OCI image layout directory", "dist/oci")
    .option("--tag <tag>", "image tag", "0.1.0")
    .action(async (options: { wasm: string; out: string; tag: string }) => {
      const image = await packageFilter(options.wasm, options.out, options.tag);
      console.log(`OCI image layout: ${image.directory} (tag ${image.tag}, manifest ${image.manifestDigest})`);
      console.log(`module sha256: ${image.wasmSha256} (also in ${options.wasm}.sha256)`);
      console.log(`push: skopeo copy oci:${image.directory}:${image.tag} docker://REGISTRY/wasmerang:${image.tag}`);
    });

  program.command("explain")
    .description("drive one connection through the real filter and show what it decides: outcome, cluster, rule, filter state, counters, PROXY header, and what tcp_proxy then does")
    .option("-c, --config <file>", "an Envoy bootstrap: the filter (and tcp_proxy) of a listener")
    .option("--listener <name>", "the listener, with -c (default: the first with a Wasm filter)")
    .option("--policy <file>", "a policy file (- for standard input) for Wasmerang's own module")
    .option("--module <file>", "the module (default: the bootstrap's, or Wasmerang's with --policy)")
    .requiredOption("--source <ip:port>", "the client's address")
    .option("--destination <ip:port>", "the original destination")
    .option("--sni <name>", "the TLS server name")
    .option("--metadata <ns:key=value>", "dynamic metadata on the connection, as proxy_protocol TLV rules write it (repeatable)", collectMetadata, {})
    .option("--filter-state <key=value>", "filter state an earlier filter set (repeatable)", collectFilterState, {})
    .option("--authority <host>", "an HTTP request instead of a connection: its :authority (the module runs as the listener's HTTP filter)")
    .option("--path <path>", "the HTTP request's :path")
    .option("--method <method>", "the HTTP request's :method (default GET)")
    .option("--header <name=value>", "an HTTP request header (repeatable)", collectFilterState, {})
    .addOption(new Option("--output <format>", "text, or JSON for tools").choices(["text", "json"]).default("text"))
    .action(async (options: { config?: string; listener?: string; policy?: string; module?: string; source: string; destination?: string; sni?: string;
      metadata: Record<string, Record<string, string>>; filterState: Record<string, string>; authority?: string; path?: string; method?: string;
      header: Record<string, string>; output: string }) => {
      if ((options.config === undefined) === (options.policy === undefined)) throw new InvalidArgumentError("give one of -c/--config and --policy");
      const isRequest = options.authority !== undefined || options.path !== undefined || options.method !== undefined || Object.keys(options.header).length > 0;
      const request = isRequest ? { authority: options.authority, path: options.path, method: options.method,
        headers: Object.fromEntries(Object.entries(options.header).map(([name, value]) => [name.toLowerCase(), value])) } : undefined;
      const filter = options.config !== undefined ? await filterFromBootstrap(options.config, options.listener, options.module, isRequest ? "http" : "network")
        : { module: options.module ?? WASMERANG_MODULE, configuration: readFileSync(options.policy === "-" ? 0 : options.policy!, "utf8") };
      const explanation = await explain(filter, { source: options.source, destination: options.destination, serverName: options.sni,
        metadata: options.metadata, filterState: options.filterState, request });
      process.stdout.write(options.output === "json" ? `${JSON.stringify(explanation, null, 2)}\n` : renderExplanation(explanation));
    });

  program.command("test")
    .description("run policy tests: YAML files of cases (facts in, expected outcome, cluster and rule out), each on the real module")
    .argument("<files...>")
    .option("--module <file>", "the module to test (default: the one the file or its bootstrap names, else Wasmerang's)")
    .addOption(new Option("--reporter <format>", "text, TAP or JUnit XML").choices(["text", "tap", "junit"]).default("text"))
    .action(async (files: string[], options: { module?: string; reporter: Reporter }) => {
      const results = [];
      for (const file of files) {
        const run = await runPolicyTests(file, options.module);
        results.push(...run.results);
        // On stderr: TAP and JUnit on stdout stay what CI parses.
        for (const warning of run.warnings) process.stderr.write(`warning: ${warning}\n`);
      }
      process.stdout.write(renderResults(results, options.reporter));
      process.exitCode = results.some((result) => result.failures.length > 0) ? 1 : 0;
    });

  program.command("init")
    .description("write a filter project of your own: an AssemblyScript network filter on the SDK, its asconfig.json, a harness test and an envoy.yaml")
    .argument("[dir]", "where to write it (must be empty or new)", ".")
    .option("--dependency <spec>", "the project's dependency on wasmerang (a version, a tarball, a path; default: this installation)")
    .action((dir: string, options: { dependency?: string }) => {
      const written = initProject(dir, options);
      console.log(`wrote ${written.length} files in ${dir}: ${written.sort().join(", ")}`);
      console.log(`next: cd ${dir} && npm install && npm test && npx wasmerang run -c envoy.yaml`);
    });

  program.command("demo")
    .description(`run the whole system on loopback (${DEMO_CONFIG}, egress routers, a destination) and show where each client's connection went`)
    .option("--keep-running", "leave it running and print commands to try by hand")
    .action(async (options: { keepRunning?: boolean }) => {
      // The demo's bootstrap names its module relative to the working directory, as Envoy does.
      process.chdir(PACKAGE_ROOT);
      process.exitCode = (await runDemo({ keepRunning: options.keepRunning === true })) ? 0 : 1;
    });

  return program;
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith("/wasmerang")) {
  buildProgram().parseAsync(process.argv).catch((error: Error) => {
    console.error(error instanceof ConfigError ? error.message : `wasmerang: ${error.message}`);
    process.exit(1);
  });
}
