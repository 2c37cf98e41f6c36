// `npm run bench`: the filter's cost and memory, then the runner as a TCP proxy on loopback next
// to a direct connection and HAProxy (one thread, like the runner), all measured in one run.
// Writes bench/results/latest.json and bench/results/latest.svg.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { filterCosts, filterMemory, variants } from "./filter-cost.js";
import { filterInstructions, valgrindAvailable, type InstructionResult } from "./instructions.js";
import { renderChart } from "./chart.js";
import { freePort } from "../test/net-helpers.js";

const dir = mkdtempSync(join(tmpdir(), "wasmerang-bench-"));
const children: ChildProcess[] = [];
process.on("exit", () => children.forEach((child) => child.kill("SIGKILL")));

/**
 * With two or more cores, each proxy gets core 0 to itself and the load generator and backend
 * share core 1, so that HAProxy (one thread) and the runner (one event loop) are measured alike
 * and the runs are steadier. Without taskset, processes run where the scheduler puts them.
 */
const PINNING = cpus().length >= 2 && spawnSync("taskset", ["-c", "0", "true"]).status === 0;
const PROXY_CORE = "0";
const LOAD_CORE = "1";

function pinned(core: string, command: string, args: string[]): [string, string[]] {
  return PINNING ? ["taskset", ["-c", core, command, ...args]] : [command, args];
}

function start(core: string, command: string, args: string[]): { child: ChildProcess; output: () => string } {
  const child = spawn(...pinned(core, command, args), { stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  return { child, output: () => output };
}

async function waitFor<T>(probe: () => T | undefined, what: string): Promise<T> {
  for (let i = 0; i < 400; i++) {
    const value = probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const TSX = ["--import", "tsx"];

function loadgen(mode: string, port: number, options: object): Record<string, number> {
  const result = spawnSync(...pinned(LOAD_CORE, process.execPath, [...TSX, "bench/loadgen.ts", mode, String(port), JSON.stringify(options)]), { encoding: "utf8", timeout: 120_000 });
  if (result.status !== 0) throw new Error(`loadgen ${mode} :${port} failed: ${result.stderr}`);
  return JSON.parse(result.stdout.trim().split("\n").pop()!) as Record<string, number>;
}

const ROUNDS = 3;

/** CPU seconds (user + system) a process has used, from /proc; undefined where there is none. */
function cpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    // utime and stime, in clock ticks of 1/100 s (USER_HZ on Linux).
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

/** One loadgen run per mode, target and round (the latency run gives both p50 and p99), with the proxy's CPU time. */
const runs = new Map<string, Record<string, number>>();

function measured(mode: string, port: number, options: object, round: number, pid: number | undefined): Record<string, number> {
  const key = `${mode} ${port} ${JSON.stringify(options)} ${round}`;
  let result = runs.get(key);
  if (result === undefined) {
    const before = cpuSeconds(pid);
    result = loadgen(mode, port, options);
    const after = cpuSeconds(pid);
    if (before !== undefined && after !== undefined) result.proxyCpuSeconds = after - before;
    runs.set(key, result);
  }
  return result;
}

/** The proxy's CPU for one unit of the run's work: seconds per GiB relayed, or µs per connection. */
function cpuPerUnit(result: Record<string, number>): number | undefined {
  const cpu = result.proxyCpuSeconds;
  if (cpu === undefined) return undefined;
  if (result.bytes !== undefined) return cpu / (result.bytes / 2 ** 30);
  if (result.completed !== undefined) return (cpu * 1e6) / result.completed;
  return undefined;
}

type Backends = { sink: number; rr: number; echo: number };

function runnerConfig(backends: Backends): string {
  const listener = (name: keyof Backends) => ({
    name,
    address: { socket_address: { address: "127.0.0.1", port_value: 0 } },
    filter_chains: [{ filters: [
      { name: "envoy.filters.network.wasm", typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm",
        config: { name: "wasmerang", root_id: "wasmerang", vm_config: { runtime: "envoy.wasm.runtime.v8", code: { local: { filename: "dist/wasmerang.wasm" } } },
          configuration: { "@type": "type.googleapis.com/google.protobuf.StringValue", value: JSON.stringify({ default: { cluster: name } }) } } } },
      { name: "envoy.filters.network.tcp_proxy", typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        stat_prefix: name, cluster: "unused" } },
    ] }],
  });
  const cluster = (name: keyof Backends) => ({
    name, type: "STATIC", connect_timeout: "2s",
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: "127.0.0.1", port_value: backends[name] } } } }] }] },
  });
  const file = join(dir, "runner.yaml");
  writeFileSync(file, stringify({ static_resources: { listeners: (["sink", "rr", "echo"] as const).map(listener), clusters: (["sink", "rr", "echo"] as const).map(cluster) } }));
  return file;
}

interface Proxy {
  ports: Backends;
  /** The process (or, per backend, processes) whose CPU time is the proxy's. */
  pid: (backend: keyof Backends) => number | undefined;
}

async function startRunner(backends: Backends): Promise<Proxy> {
  const runner = start(PROXY_CORE, process.execPath, ["build/src/cli.js", "run", "-c", runnerConfig(backends), "--log-format", "json"]);
  const ports: Partial<Backends> = {};
  await waitFor(() => {
    for (const match of runner.output().matchAll(/listener '(\w+)' on 127\.0\.0\.1:(\d+)/g)) ports[match[1] as keyof Backends] = Number(match[2]);
    return ports.sink && ports.rr && ports.echo ? true : undefined;
  }, `the runner (${runner.output()})`);
  return { ports: ports as Backends, pid: () => runner.child.pid };
}

async function startHaproxy(backends: Backends): Promise<Proxy | undefined> {
  if (spawnSync("haproxy", ["-v"]).status !== 0) return undefined;
  const ports: Backends = { sink: await freePort(), rr: await freePort(), echo: await freePort() };
  const file = join(dir, "haproxy.cfg");
  writeFileSync(file, `global
  nbthread 1
  maxconn 8000
defaults
  mode tcp
  timeout connect 2s
  timeout client 60s
  timeout server 60s
${(["sink", "rr", "echo"] as const).map((name) => `listen ${name}
  bind 127.0.0.1:${ports[name]}
  server backend 127.0.0.1:${backends[name]}
`).join("")}`);
  const haproxy = start(PROXY_CORE, "haproxy", ["-db", "-f", file]);
  await new Promise((resolve) => setTimeout(resolve, 500));
  if (haproxy.child.exitCode !== null) throw new Error(`haproxy did not start: ${haproxy.output()}`);
  return { ports, pid: () => haproxy.child.pid };
}

/** One bare Node pipe relay per backend: the yardstick for what the runner adds. */
async function startNodePipes(backends: Backends): Promise<Proxy> {
  const ports: Partial<Backends> = {};
  const pids: Partial<Record<keyof Backends, number>> = {};
  for (const name of ["sink", "rr", "echo"] as const) {
    const pipe = start(PROXY_CORE, process.execPath, [...TSX, "bench/node-pipe.ts", String(backends[name])]);
    pids[name] = pipe.child.pid;
    ports[name] = await waitFor(() => {
      const line = pipe.output().split("\n").find((l) => l.startsWith("{"));
      return line === undefined ? undefined : (JSON.parse(line) as { port: number }).port;
    }, "the node pipe");
  }
  return { ports: ports as Backends, pid: (backend) => pids[backend] };
}

async function startEgress(): Promise<{ port: number; pid: number | undefined }> {
  const egress = start(PROXY_CORE, process.execPath, ["build/src/cli.js", "egress", "--listen", "127.0.0.1:0", "--allow", "127.0.0.1/32:*",
    "--max-connections", "100000", "--log-level", "info", "--log-format", "json"]);
  const port = await waitFor(() => {
    const match = /egress router on 127\.0\.0\.1:(\d+)/.exec(egress.output());
    return match ? Number(match[1]) : undefined;
  }, "the egress router").catch(() => {
    throw new Error("egress router did not report its port");
  });
  return { port, pid: egress.child.pid };
}

interface Target {
  name: string;
  address: (s: Scenario) => [number, object];
  pid: (s: Scenario) => number | undefined;
}

interface Scenario {
  name: string;
  mode: string;
  backend: keyof Backends;
  options: object;
  metric: string;
  /** Whether more is better (throughput) or less (latency). */
  higherIsBetter: boolean;
}

const SCENARIOS: Scenario[] = [
  { name: "bulk, 1 stream (MB/s)", mode: "bulk", backend: "sink", options: { streams: 1, bytes: 1024 * 1024 * 1024 }, metric: "bytesPerSecond", higherIsBetter: true },
  { name: "bulk, 32 streams (MB/s)", mode: "bulk", backend: "sink", options: { streams: 32, bytes: 1024 * 1024 * 1024 }, metric: "bytesPerSecond", higherIsBetter: true },
  { name: "connections/s (64 concurrent)", mode: "connrate", backend: "rr", options: { concurrency: 64, durationMs: 3000 }, metric: "connectionsPerSecond", higherIsBetter: true },
  { name: "latency p50 (µs)", mode: "latency", backend: "echo", options: { roundTrips: 20000 }, metric: "p50Micros", higherIsBetter: false },
  { name: "latency p99 (µs)", mode: "latency", backend: "echo", options: { roundTrips: 20000 }, metric: "p99Micros", higherIsBetter: false },
];

function pretty(metric: string, value: number): string {
  return metric === "bytesPerSecond" ? (value / 1e6).toFixed(0) : value.toFixed(metric.includes("Micros") ? 1 : 0);
}

async function main(): Promise<void> {
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? "?"}, Node ${process.version}`;
  console.log(`Wasmerang benchmarks on ${machine}${PINNING ? "; proxies pinned to core 0, load generator and backend to core 1" : ""}\n`);

  console.log("Filter cost per connection (in-process host on V8: context create, new connection, close, done, delete)");
  const costs = await filterCosts(50_000);
  const baseline = costs[0]!.nsPerConnection;
  for (const cost of costs) console.log(`  ${cost.name.padEnd(40)} ${(cost.nsPerConnection / 1000).toFixed(2).padStart(7)} µs  ${(cost.nsPerConnection / baseline).toFixed(2)}× baseline`);
  let instructions: InstructionResult[] | undefined;
  if (valgrindAvailable()) {
    console.log("\nInstructions per connection (callgrind, the same path; takes about 2 minutes)");
    instructions = await filterInstructions(await variants());
    const base = instructions[0]!.instructionsPerConnection;
    for (const count of instructions) {
      console.log(`  ${count.name.padEnd(40)} ${Math.round(count.instructionsPerConnection).toLocaleString("en").padStart(9)}  ${(count.instructionsPerConnection / base).toFixed(2)}× baseline`);
    }
  } else {
    console.log("\n!!! valgrind is not installed: no instruction counts (apt-get install valgrind) !!!");
  }
  const memory = await filterMemory();
  console.log(`\nModule size: ${memory.moduleBytes} bytes (target ≤ 21504)`);
  console.log(`Linear memory after 10^4 / 10^5 / 10^6 connections: ${Object.values(memory.memoryAfter).map((b) => `${b / 1024} KiB`).join(" / ")}`);
  for (const policy of memory.configure) {
    console.log(`  ${policy.name.padEnd(40)} configures in ${policy.milliseconds.toFixed(0)} ms, linear memory then ${(policy.memoryBytes / 1048576).toFixed(1)} MiB`);
  }
  console.log("");

  const backend = start(LOAD_CORE, process.execPath, [...TSX, "bench/backend.ts"]);
  const backends = await waitFor(() => {
    const line = backend.output().split("\n").find((l) => l.startsWith("{"));
    return line === undefined ? undefined : (JSON.parse(line) as Backends);
  }, "the backend");
  const runner = await startRunner(backends);
  const haproxy = await startHaproxy(backends);
  const egress = await startEgress();
  const nodePipe = await startNodePipes(backends);
  const proxied = (name: string, proxy: Proxy): Target => ({ name, address: (s) => [proxy.ports[s.backend], {}], pid: (s) => proxy.pid(s.backend) });
  const targets: Target[] = [
    { name: "direct", address: (s) => [backends[s.backend], {}], pid: () => undefined },
    ...(haproxy ? [proxied("haproxy", haproxy)] : []),
    proxied("node pipe", nodePipe),
    proxied("runner", runner),
    { name: "egress router", address: (s) => [egress.port, { proxyTo: backends[s.backend] }], pid: () => egress.pid },
  ];
  if (!haproxy) console.log("!!! haproxy is not installed: the runner is compared with a direct connection only (apt-get install haproxy) !!!\n");

  // Node needs its code compiled and its heap grown before it runs at speed, as any long-running
  // proxy has: one unrecorded pass of every load over every target first.
  console.log("Warming up every target with every load once (not recorded)");
  const run = (scenario: Scenario, target: Target, round: number) => {
    const [port, extra] = target.address(scenario);
    return measured(scenario.mode, port, { ...scenario.options, ...extra }, round, target.pid(scenario));
  };
  for (const scenario of SCENARIOS) for (const target of targets) run(scenario, target, -1);
  const proxyResults: Record<string, Record<string, number>> = {};
  const cpuResults: Record<string, Record<string, number>> = {};
  console.log(`Proxies on loopback${haproxy ? " (HAProxy: nbthread 1)" : ""}`);
  console.log(`  ${"scenario".padEnd(32)}${targets.map((t) => t.name.padStart(15)).join("")}   runner/haproxy   runner/pipe`);
  for (const scenario of SCENARIOS) {
    const values: Record<string, number> = {};
    const cpu: Record<string, number> = {};
    // Rounds with the targets interleaved, keeping each target's best: this machine's throughput
    // swings by 2x for minutes at a time, and a swing then hits every target alike.
    for (let round = 0; round < ROUNDS; round++) {
      for (const target of targets) {
        const result = run(scenario, target, round);
        const value = result[scenario.metric]!;
        const best = values[target.name];
        if (best === undefined || (scenario.higherIsBetter ? value > best : value < best)) {
          values[target.name] = value;
          const perUnit = cpuPerUnit(result);
          if (perUnit !== undefined) cpu[target.name] = perUnit;
        }
      }
    }
    proxyResults[scenario.name] = values;
    if (Object.keys(cpu).length > 0) cpuResults[scenario.name] = cpu;
    const ratio = values.haproxy === undefined ? "-" : (values.runner! / values.haproxy).toFixed(2);
    const pipeRatio = (values.runner! / values["node pipe"]!).toFixed(2);
    console.log(`  ${scenario.name.padEnd(32)}${targets.map((t) => pretty(scenario.metric, values[t.name]!).padStart(15)).join("")}   ${ratio.padStart(14)}   ${pipeRatio.padStart(11)}`);
  }
  console.log("\nThe proxy's own CPU in those runs (CPU seconds per GiB relayed; CPU µs per connection)");
  for (const [name, cpu] of Object.entries(cpuResults)) {
    console.log(`  ${name.padEnd(32)}${targets.map((t) => (cpu[t.name] === undefined ? "-" : cpu[t.name]!.toFixed(name.startsWith("bulk") ? 2 : 0)).padStart(15)).join("")}`);
  }

  const results = { date: new Date().toISOString(), machine, pinning: PINNING, filter: { costs, instructions, memory }, proxies: proxyResults, proxyCpu: cpuResults };
  writeFileSync("bench/results/latest.json", `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync("bench/results/latest.svg", renderChart(proxyResults, SCENARIOS.map((s) => ({ name: s.name, higherIsBetter: s.higherIsBetter }))));
  console.log("\nWrote bench/results/latest.json and bench/results/latest.svg");
}

await main();
process.exit(0);
