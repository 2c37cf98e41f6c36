// `npm start`: the whole system live on loopback. The local runner serves examples/local/envoy.yaml
// (the Wasmerang filter), two egress routers forward to a destination server standing in for the
// internet, and clients with different source addresses show where their connections went.
import { once } from "node:events";
import { mkdtemp, readFile } from "node:fs/promises";
import { createServer as createHttpServer, request as httpRequest, type Server as HttpServer } from "node:http";
import { connect, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { styleText } from "node:util";
import { Allowlist } from "./egress/allowlist.js";
import { encodeProxyHeader } from "./egress/proxy-protocol.js";
import { EgressRouter } from "./egress/router.js";
import { loadRunnerConfig } from "./envoy/load.js";
import type { RunnerConfig } from "./envoy/model.js";
import { byName } from "./server/admin-render.js";
import { silentLogger } from "./logging.js";
import { Runner } from "./runner/runner.js";

export const DEMO_CONFIG = "examples/local/envoy.yaml";
const PROXY_PORT = 10000;
const DESTINATION = { address: "127.0.0.100", port: 10080 };
const ROUTERS = [
  { name: "egress-router1", port: 10001, egressIp: "127.0.0.201" },
  { name: "egress-router2", port: 10002, egressIp: "127.0.0.202" },
];

interface Client {
  source: string;
  expected: string;
  /** Arrives through an AWS PrivateLink endpoint: a PROXY v2 header with this VPC endpoint id (TLV 0xEA). */
  vpce?: string;
}

const AWS_VPCE_TLV = 0xea;

const HTTP_PORT = 10008;
/** HTTP egress stand-ins: each answers with its own name, so the demo sees which one served. */
const WEB_EGRESS = [{ name: "web-egress1", port: 10011 }, { name: "web-egress2", port: 10012 }];

const CLIENTS: Client[] = [
  { source: "127.0.0.10", expected: "egress-router1" },
  { source: "127.0.0.11", expected: "egress-router2" },
  { source: "127.0.0.12", expected: "egress-router1" },
  { source: "127.0.0.13", expected: "egress-router2" },
  { source: "127.0.0.66", expected: "rejected" },
  // Even, but from the partner's endpoint: the policy's metadata matcher sends it to router 2.
  { source: "127.0.0.14", expected: "egress-router2", vpce: "vpce-0partner" },
];

interface Outcome {
  client: Client;
  rule: string;
  cluster: string;
  router: string;
  destination: string;
  intact: boolean;
  ok: boolean;
}

/** The destination answers with the address it saw the connection come from. */
async function startDestination(): Promise<Server> {
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    const chunks: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("end", () => socket.end(`from=${socket.remoteAddress} data=${Buffer.concat(chunks).toString()}`));
    socket.on("error", () => undefined);
  });
  server.listen(DESTINATION.port, DESTINATION.address);
  await once(server, "listening");
  return server;
}

async function startWebEgress(): Promise<HttpServer[]> {
  return Promise.all(WEB_EGRESS.map(async ({ name, port }) => {
    const server = createHttpServer((request, response) => response.end(`${name} served ${request.url} (x-wasmerang-cluster: ${request.headers["x-wasmerang-cluster"]})`));
    server.listen(port, "127.0.0.1");
    await once(server, "listening");
    return server;
  }));
}

function httpGet(source: string, path: string, spoof?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    httpRequest({ host: "127.0.0.1", port: HTTP_PORT, path, localAddress: source, agent: false, headers: spoof ? { "x-wasmerang-cluster": spoof } : {} }, (response) => {
      let body = "";
      response.on("data", (chunk: Buffer) => (body += chunk.toString()));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
    }).on("error", reject).end();
  });
}

interface HttpCase {
  source: string;
  path: string;
  spoof?: string;
  expected: string;
}

const HTTP_CASES: HttpCase[] = [
  { source: "127.0.0.10", path: "/hello", expected: "web-egress1" },
  { source: "127.0.0.11", path: "/hello", expected: "web-egress2" },
  { source: "127.0.0.12", path: "/hello", spoof: "web-egress2", expected: "web-egress1" },
  { source: "127.0.0.13", path: "/admin", expected: "403" },
];

/**
 * The access logs go to files instead of stdout; the demo reads the TCP listener's back: the
 * rule and outcome each connection got, as the filter records them for Envoy's access log
 * (record_decision).
 */
async function accessLogsToFiles(config: RunnerConfig): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "wasmerang-demo-"));
  const tcpLog = join(dir, "tcp-access.log");
  for (const listener of config.listeners) {
    for (const log of listener.tcpProxy?.accessLogs ?? []) log.path = tcpLog;
    for (const log of listener.http?.accessLogs ?? []) log.path = join(dir, "http-access.log");
  }
  if (!config.listeners.some((listener) => listener.address.port === PROXY_PORT && (listener.tcpProxy?.accessLogs.length ?? 0) > 0)) {
    throw new Error(`${DEMO_CONFIG}: the listener on port ${PROXY_PORT} has no tcp_proxy access log to read the decisions from`);
  }
  return tcpLog;
}

/** The access log line of the connection from `source`: rule, and the cluster or the outcome. */
async function decisionOf(logPath: string, source: string): Promise<{ rule: string; cluster: string }> {
  const pattern = new RegExp(` ${source.replaceAll(".", "\\.")}:\\d+ rule=(\\S+) outcome=(\\S+) cluster=(\\S+)`);
  // The runner writes access logs asynchronously: give the line a moment to land.
  for (let attempt = 0; attempt < 50; attempt++) {
    const match = pattern.exec(await readFile(logPath, "utf8").catch(() => ""));
    if (match) return { rule: match[1]!, cluster: match[2] === "route" ? match[3]! : `(${match[2]!})` };
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return { rule: "-", cluster: "-" };
}

async function send(client: Client): Promise<{ reply: string; payload: string }> {
  const payload = `hello from ${client.source} #${Math.floor(Math.random() * 1e6)}`;
  const socket = connect({ host: "127.0.0.1", port: PROXY_PORT, localAddress: client.source, allowHalfOpen: true });
  const chunks: Buffer[] = [];
  socket.on("data", (chunk: Buffer) => chunks.push(chunk));
  socket.on("error", () => undefined);
  await once(socket, "connect");
  // Says where the client meant to go, as iptables REDIRECT + original_dst would in production.
  const source = { address: client.source, port: socket.localPort! };
  // The AWS TLV's value is a subtype byte (0x01: the VPC endpoint id), then the id.
  const header = client.vpce === undefined ? encodeProxyHeader(1, source, DESTINATION)
    : encodeProxyHeader(2, source, DESTINATION, [{ type: AWS_VPCE_TLV, value: Buffer.concat([Buffer.from([0x01]), Buffer.from(client.vpce)]) }]);
  socket.end(Buffer.concat([header, Buffer.from(payload)]));
  await new Promise((resolve) => socket.once("close", resolve));
  return { reply: Buffer.concat(chunks).toString(), payload };
}

function table(rows: string[][], color: boolean): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows.map((row, r) => {
    const line = row.map((cell, i) => cell.padEnd(widths[i]!)).join("  ");
    return r === 0 && color ? styleText("bold", line) : line;
  }).join("\n");
}

export interface DemoOptions {
  keepRunning: boolean;
  out?: NodeJS.WriteStream;
}

/** Runs the demo; resolves true when every connection went where the policy says. */
export async function runDemo(options: DemoOptions): Promise<boolean> {
  const out = options.out ?? process.stdout;
  const color = out.isTTY === true;
  const paint = (style: Parameters<typeof styleText>[0], text: string) => (color ? styleText(style, text) : text);
  const destination = await startDestination();
  const routers = await Promise.all(ROUTERS.map((router) => EgressRouter.start({
    listen: { address: "127.0.0.1", port: router.port },
    allowlist: Allowlist.parse([`${DESTINATION.address}/32:${DESTINATION.port}`]),
    headerTimeoutMs: 5000, connectTimeoutMs: 5000, maxConnections: 1024, bindAddress: router.egressIp, logger: silentLogger,
  })));
  const webEgress = await startWebEgress();
  const config = await loadRunnerConfig(DEMO_CONFIG);
  const accessLog = await accessLogsToFiles(config);
  const runner = await Runner.start(config, { logger: silentLogger });
  try {
    out.write(`${paint("bold", "Wasmerang demo")}: ${DEMO_CONFIG} in the local runner on 127.0.0.1:${PROXY_PORT}, ` +
      `egress routers on :${ROUTERS.map((r) => r.port).join(" and :")}, destination ${DESTINATION.address}:${DESTINATION.port}\n\n`);
    const outcomes: Outcome[] = [];
    for (const client of CLIENTS) {
      const { reply, payload } = await send(client);
      const decision = await decisionOf(accessLog, client.source);
      const seenFrom = /^from=(\S+) data=(.*)$/s.exec(reply);
      const router = ROUTERS.find((r) => r.egressIp === seenFrom?.[1])?.name ?? "-";
      const intact = seenFrom?.[2] === payload;
      const actual = reply === "" ? "rejected" : router;
      outcomes.push({
        client, rule: decision.rule, cluster: decision.cluster, router, intact,
        destination: reply === "" ? "-" : `${DESTINATION.address}:${DESTINATION.port}`,
        ok: actual === client.expected && (actual === "rejected" || (intact && decision.cluster === router)),
      });
    }
    const rows = [["source", "rule", "cluster", "egress router", "destination", "bytes back intact", "result"],
      ...outcomes.map((o) => [o.client.source, o.rule, o.cluster, o.router, o.destination,
        o.destination === "-" ? "-" : o.intact ? "yes" : "NO", o.ok ? "ok" : `WRONG (expected ${o.client.expected})`])];
    out.write(`${table(rows, color)}\n(rule and cluster: as the filter recorded them in the listener's access log)\n\n`);
    out.write(`${paint("bold", "HTTP")} on 127.0.0.1:${HTTP_PORT}: the same module as an HTTP filter sets x-wasmerang-cluster for the route\n\n`);
    const httpRows = [["source", "request", "client's own header", "answered by", "result"]];
    let httpOk = true;
    for (const testCase of HTTP_CASES) {
      const { status, body } = await httpGet(testCase.source, testCase.path, testCase.spoof);
      const answeredBy = status === 200 ? body.split(" ")[0]! : String(status);
      const ok = answeredBy === testCase.expected;
      httpOk &&= ok;
      httpRows.push([testCase.source, `GET ${testCase.path}`, testCase.spoof ?? "-", answeredBy, ok ? "ok" : `WRONG (expected ${testCase.expected})`]);
    }
    out.write(`${table(httpRows, color)}\n\n`);
    const stats = runner.stats().filter((s) => s.name.startsWith("wasmcustom.wasmerang.cluster.") || s.name === "wasmcustom.wasmerang.rejected"
      || /^cluster\.egress-router\d\.upstream_cx_total$/.test(s.name)).sort(byName);
    out.write(`${paint("bold", "Proxy counters")} (admin: http://127.0.0.1:${runner.adminPort}/stats)\n`);
    for (const stat of stats) out.write(`  ${stat.name}: ${stat.value}\n`);
    routers.forEach((router, i) => out.write(`  ${ROUTERS[i]!.name} forwarded: ${router.counter("forwarded")}\n`));
    const allOk = outcomes.every((o) => o.ok) && httpOk;
    out.write(`\n${allOk ? paint("green", "Every connection went where the policy says.") : paint("red", "Some connections went the wrong way.")}\n`);
    if (options.keepRunning) {
      out.write(`\nStill running. Try by hand (PROXY header = where the client meant to go):\n` +
        `  printf 'PROXY TCP4 127.0.0.14 ${DESTINATION.address} 5000 ${DESTINATION.port}\\r\\nhi\\n' | nc -N -s 127.0.0.14 127.0.0.1 ${PROXY_PORT}\n` +
        `  printf 'PROXY TCP4 127.0.0.15 ${DESTINATION.address} 5000 ${DESTINATION.port}\\r\\nhi\\n' | nc -N -s 127.0.0.15 127.0.0.1 ${PROXY_PORT}\n` +
        `  curl --interface 127.0.0.14 -s http://127.0.0.1:${HTTP_PORT}/hello; curl --interface 127.0.0.15 -s http://127.0.0.1:${HTTP_PORT}/hello\n` +
        `  curl -s http://127.0.0.1:${runner.adminPort}/stats/prometheus\n` +
        `Ctrl-C stops.\n`);
      await new Promise((resolve) => process.once("SIGINT", resolve));
    }
    return allOk;
  } finally {
    await runner.close();
    await Promise.all(routers.map((router) => router.close()));
    for (const server of webEgress) server.close();
    destination.close();
  }
}
