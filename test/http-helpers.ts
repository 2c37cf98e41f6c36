// HTTP tests' shared pieces: an upstream that echoes what it received, a bootstrap with one HTTP
// listener routing by x-wasmerang-cluster, and a client.
import { once } from "node:events";
import { Agent, createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Runner } from "../src/runner/runner.js";
import { bootstrap, fileAccessLog, httpConnectionManager, wasmFilter } from "./net-helpers.js";

/** An upstream that answers `<tag> <method> <path> cluster=<x-wasmerang-cluster> body=<body>`. */
export async function upstream(tag: string): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk: Buffer) => (body += chunk.toString()));
    req.on("end", () => res.end(`${tag} ${req.method} ${req.url} cluster=${req.headers["x-wasmerang-cluster"] ?? "-"} body=${body}`));
  }).listen(0, "127.0.0.1");
  await once(server, "listening");
  return { server, port: (server.address() as AddressInfo).port };
}

export function httpWasm(filename: string, configuration: string): object {
  return wasmFilter(filename, configuration, {}, "http");
}

/** One HTTP listener ("http") routing by x-wasmerang-cluster; `listenerExtra` adds listener fields. */
export function httpBootstrap(filters: object[], clusters: object[], logPath?: string, listenerExtra: object = {}): object {
  const accessLog = logPath === undefined ? {} : { access_log: [fileAccessLog(logPath, "%REQ(:METHOD)% %REQ(:PATH)% %PROTOCOL% %RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_CLUSTER%\n")] };
  const manager = httpConnectionManager({ cluster_header: "x-wasmerang-cluster" }, filters, { stat_prefix: "ingress_http", ...accessLog });
  return bootstrap([manager], clusters, { name: "http", ...listenerExtra });
}

export interface Reply {
  status: number;
  body: string;
}

export function get(runner: Runner, path: string, options: { source?: string; host?: string; headers?: Record<string, string>; agent?: Agent; body?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: "127.0.0.1", port: runner.listenerPort("http"), path, localAddress: options.source ?? "127.0.0.1", agent: options.agent,
      method: options.body === undefined ? "GET" : "POST", headers: { host: options.host ?? "a.test", ...options.headers },
    }, (res) => {
      let body = "";
      res.on("data", (chunk: Buffer) => (body += chunk.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    if (options.body !== undefined) {
      // Written in two pieces: a chunked request body.
      req.write(options.body.slice(0, 3));
      req.end(options.body.slice(3));
    } else {
      req.end();
    }
  });
}

