// The admin endpoint of both relaying processes, with Envoy's conventions where they overlap
// (docs: operations/admin; source/server/admin/admin.cc): every endpoint answers GET, those that
// change the server's state only POST (405 "Method GET not allowed, POST required."), an unknown
// path 404 with the list of endpoints. Binds where it is told; the defaults are loopback.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import type { LogLevelName } from "../host/abi.js";
import { VERSION } from "../version.js";
import {
  byName, NO_TAGS, renderClustersJson, renderClustersText, renderPrometheus, renderStatsJson, renderStatsText,
  type ClusterStatus, type StatSample, type TagNames,
} from "./admin-render.js";

export type { ClusterStatus, HostStatus, StatSample, TagNames } from "./admin-render.js";
export { WASM_CUSTOM_NAMESPACE } from "./admin-render.js";

export interface AdminSource {
  /** Every stat, in any order. */
  stats(): StatSample[];
  /** Known names, for Envoy's tag extraction in the Prometheus output. */
  tagNames?(): TagNames;
  /** Upstream clusters and their hosts, when the server has any (the egress router has none). */
  clusterStatuses?(): ClusterStatus[];
  /** The configuration in force; `resource` picks one part (Envoy's `?resource=`), undefined if unknown. */
  configDump(resource: string | undefined): object | undefined;
  /** False once the process drains (SIGTERM). */
  live(): boolean;
  /** Stops accepting new connections; open ones go on. */
  drainListeners(): void;
  /** Shuts the process down (Envoy's /quitquitquit). */
  quit(): void;
  /** Sets the level of the Wasm modules' logs. */
  setWasmLogLevel?(level: LogLevelName): void;
}

export interface AdminOptions {
  /** Called once per request answered (admin.access_log_path). */
  onRequest?: (request: IncomingMessage, status: number, bytes: number, durationMs: number) => void;
}

/** Envoy's /logging level names and what they are for pino and for the Wasm host. */
const LEVELS: Record<string, { pino: string; wasm: LogLevelName }> = {
  trace: { pino: "trace", wasm: "trace" }, debug: { pino: "debug", wasm: "debug" }, info: { pino: "info", wasm: "info" },
  warning: { pino: "warn", wasm: "warn" }, warn: { pino: "warn", wasm: "warn" }, error: { pino: "error", wasm: "error" },
  critical: { pino: "fatal", wasm: "critical" }, off: { pino: "silent", wasm: "critical" },
};

interface Reply {
  status: number;
  body: string;
  type?: string;
}

const text = (status: number, body: string): Reply => ({ status, body });
const json = (body: string): Reply => ({ status: 200, body, type: "application/json" });

type Handler = (query: URLSearchParams) => Reply | Promise<Reply>;

interface AdminEndpoint {
  /** Changes the server's state: POST only. */
  mutates: boolean;
  help: string;
  handle: Handler;
}

export class AdminServer {
  private healthCheckFailed = false;
  private readonly started = Date.now();
  private readonly handlers: Map<string, AdminEndpoint>;

  private constructor(private readonly server: Server, private readonly source: AdminSource, private readonly logger: Logger) {
    this.handlers = new Map<string, AdminEndpoint>([
      ["/stats", { mutates: false, help: "counters and gauges (?filter=REGEX, ?usedonly, ?format=json|prometheus)", handle: (q) => this.stats(q, q.get("format")) }],
      ["/stats/prometheus", { mutates: false, help: "stats in Prometheus text format (?filter=REGEX, ?usedonly)", handle: (q) => this.stats(q, "prometheus") }],
      ["/clusters", { mutates: false, help: "upstream clusters and their hosts (?format=json)", handle: (q) => this.clusters(q) }],
      ["/config_dump", { mutates: false, help: "the configuration in force (?resource=)", handle: (q) => this.configDump(q) }],
      ["/server_info", { mutates: false, help: "version, state and uptime", handle: () => this.serverInfo() }],
      ["/ready", { mutates: false, help: "LIVE (200) or DRAINING (503)", handle: () => (this.state() === "LIVE" ? text(200, "LIVE\n") : text(503, `${this.state()}\n`)) }],
      ["/healthcheck/fail", { mutates: true, help: "fail health checks (/ready answers DRAINING)", handle: () => this.setHealthCheck(true) }],
      ["/healthcheck/ok", { mutates: true, help: "pass health checks again", handle: () => this.setHealthCheck(false) }],
      ["/drain_listeners", { mutates: true, help: "stop accepting connections; open ones go on", handle: () => this.drainListeners() }],
      ["/logging", { mutates: true, help: "log levels (?level=LEVEL for all, ?wasm=LEVEL for Wasm modules)", handle: (q) => this.logging(q) }],
      ["/quitquitquit", { mutates: true, help: "exit the process", handle: () => this.quit() }],
    ]);
  }

  static async listen(address: string, port: number, source: AdminSource, logger: Logger, options: AdminOptions = {}): Promise<AdminServer> {
    let admin: AdminServer | undefined;
    const server = createServer((request, response) => {
      admin!.serve(request, response, options).catch((error: Error) => {
        logger.warn({ path: request.url, error: error.message }, "admin request failed");
        response.destroy();
      });
    });
    admin = new AdminServer(server, source, logger);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, address, () => {
        server.off("error", reject);
        resolve();
      });
    });
    // Past the bind, the only errors are failed accepts (EMFILE): that client is dropped, admin stays up.
    server.on("error", (error) => logger.warn({ error: error.message }, "admin accept failed"));
    return admin;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** LIVE, or DRAINING when health checks are failed or the process drains (Envoy's server state). */
  state(): "LIVE" | "DRAINING" {
    return this.healthCheckFailed || !this.source.live() ? "DRAINING" : "LIVE";
  }

  private async serve(request: IncomingMessage, response: ServerResponse, options: AdminOptions): Promise<void> {
    const started = performance.now();
    const url = new URL(request.url ?? "/", "http://admin");
    const handler = this.handlers.get(url.pathname);
    const method = request.method ?? "GET";
    let reply: Reply;
    if (handler === undefined) {
      reply = text(404, `invalid path. admin commands are:\n${[...this.handlers].map(([path, h]) => `  ${path}: ${h.help}\n`).join("")}`);
    } else if (handler.mutates && method !== "POST") {
      this.logger.warn(`admin path "${url.pathname}" mutates state, method=${method} rather than POST`);
      reply = text(405, `Method ${method} not allowed, POST required.\n`);
    } else {
      reply = await handler.handle(url.searchParams);
    }
    response.writeHead(reply.status, { "content-type": reply.type ?? "text/plain; charset=UTF-8", "cache-control": "no-cache, max-age=0" });
    response.end(reply.body);
    options.onRequest?.(request, reply.status, Buffer.byteLength(reply.body), performance.now() - started);
  }

  /** Envoy's /stats query: `filter` a regular expression matched anywhere in the name, `usedonly` non-zero stats. */
  private async stats(query: URLSearchParams, format: string | null): Promise<Reply> {
    let samples = this.source.stats();
    const filter = query.get("filter");
    if (filter !== null && filter !== "") {
      let pattern: RegExp;
      try {
        pattern = new RegExp(filter);
      } catch (error) {
        return text(400, `Invalid regex: ${(error as Error).message}\n`);
      }
      samples = samples.filter((s) => pattern.test(s.name));
    }
    // Envoy's "used" means written at least once; here, a stat that is not zero.
    if (query.has("usedonly")) samples = samples.filter((s) => s.value !== 0 && s.value !== 0n);
    // Sorted once, after filtering: the sources hand their stats over in no particular order.
    samples.sort(byName);
    if (format === "json") return json(await renderStatsJson(samples));
    if (format === "prometheus") return { status: 200, body: await renderPrometheus(samples, this.source.tagNames?.() ?? NO_TAGS), type: "text/plain; version=0.0.4" };
    if (format !== null && format !== "text") return text(404, `usage: /stats?format=json or /stats?format=prometheus\n`);
    return text(200, await renderStatsText(samples));
  }

  private clusters(query: URLSearchParams): Reply {
    const statuses = this.source.clusterStatuses?.() ?? [];
    return query.get("format") === "json" ? json(renderClustersJson(statuses)) : text(200, renderClustersText(statuses));
  }

  private configDump(query: URLSearchParams): Reply {
    const dump = this.source.configDump(query.get("resource") ?? undefined);
    if (dump === undefined) return text(404, `no resource '${query.get("resource")}' in the configuration dump\n`);
    return json(JSON.stringify(dump, null, 1));
  }

  private serverInfo(): Reply {
    const uptime = `${Math.floor((Date.now() - this.started) / 1000)}s`;
    return json(JSON.stringify({ version: `wasmerang/${VERSION}`, state: this.state(), uptime_current_epoch: uptime, uptime_all_epochs: uptime }, null, 1));
  }

  private setHealthCheck(failed: boolean): Reply {
    this.healthCheckFailed = failed;
    this.logger.info(`admin: health checks ${failed ? "failing" : "passing"}`);
    return text(200, "OK\n");
  }

  private drainListeners(): Reply {
    this.logger.info("admin: draining listeners");
    this.source.drainListeners();
    return text(200, "OK\n");
  }

  private logging(query: URLSearchParams): Reply {
    const level = query.get("level");
    const wasm = query.get("wasm") ?? level;
    for (const [name, value] of [["level", level], ["wasm", wasm]] as const) {
      if (value !== null && LEVELS[value] === undefined) return text(400, `${name}: unknown level '${value}' (${Object.keys(LEVELS).join(", ")})\n`);
    }
    if (level !== null) this.logger.level = LEVELS[level]!.pino;
    if (wasm !== null) this.source.setWasmLogLevel?.(LEVELS[wasm]!.wasm);
    return text(200, `active loggers:\n  process: ${this.logger.level}\n${wasm !== null ? `  wasm: ${LEVELS[wasm]!.wasm}\n` : ""}`);
  }

  private quit(): Reply {
    this.logger.info("admin: quitquitquit");
    setImmediate(() => this.source.quit());
    return text(200, "OK\n");
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.closeAllConnections();
      this.server.close(() => resolve());
    });
  }
}
