// The HTTP/1.1 subset of Envoy's HTTP connection manager: Node's own HTTP server parses requests
// (keep-alive, pipelining, chunked bodies), envoy.filters.http.wasm filters see the headers, and
// the router picks a virtual host (domains) and a route (prefix, path, headers), whose action is
// a `cluster` or a `cluster_header`. Upstream failures answer as Envoy does, with its response
// flags in the access log (docs: configuration/http/http_conn_man/local_reply, and
// api-v3 route.RouteAction.cluster_header: "If the header is not found or the referenced cluster
// does not exist, Envoy will return a 404 response").
import { Agent, createServer, request as httpRequest, type ClientRequestArgs, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { randomUUID } from "node:crypto";
import { connect, type NetConnectOpts, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import type { HttpConfig, HttpRoute, VirtualHost } from "../envoy/model.js";
import type { HeaderPairs } from "../host/context.js";
import { HttpFilterSession, type LocalResponse } from "../host/http-filter.js";
import type { Plugin } from "../host/plugin.js";
import { formatEndpoint, type ConnectionInfo } from "../host/properties.js";
import { encodeProxyHeader } from "../egress/proxy-protocol.js";
import type { AccessLog } from "./access-log.js";
import type { Cluster } from "./cluster.js";
import type { Counter, StatsStore } from "../server/stats-store.js";
import { BodyPipeline, pipeWithTrailers, relayBody } from "./http-body.js";
import { armRequestTimeouts } from "./http-timeouts.js";

/**
 * Headers of one HTTP/1 connection that Envoy's connection manager removes before any filter sees
 * a request or a response: connection, keep-alive, proxy-connection, transfer-encoding, upgrade
 * (no upgrades here). TE is handled apart (sanitizedTe).
 */
function isConnectionHeader(name: string): boolean {
  return name === "connection" || name === "keep-alive" || name === "proxy-connection" || name === "transfer-encoding" || name === "upgrade";
}

/**
 * A request's TE as Envoy's connection manager leaves it (ConnectionManagerUtility::
 * mutateRequestHeaders, envoy#32255): `trailers` when one of its codings is `trailers` (what gRPC
 * clients send), otherwise removed; the router then forwards it upstream.
 */
function sanitizedTe(value: string): string | undefined {
  return value.split(",").some((coding) => coding.split(";")[0]!.trim().toLowerCase() === "trailers") ? "trailers" : undefined;
}

/** Envoy's virtual host choice: exact domain, then the longest `*.suffix`, then `prefix*`, then `*`. */
export function pickVirtualHost(hosts: readonly VirtualHost[], authority: string): VirtualHost | undefined {
  const host = authority.toLowerCase();
  const bare = host.replace(/:\d+$/, "");
  let best: { host: VirtualHost; rank: number; length: number } | undefined;
  for (const candidate of hosts) {
    for (const domain of candidate.domains) {
      let rank = -1;
      if (domain === host || domain === bare) rank = 4;
      else if (domain.startsWith("*") && domain !== "*" && bare.endsWith(domain.slice(1))) rank = 3;
      else if (domain.endsWith("*") && domain !== "*" && bare.startsWith(domain.slice(0, -1))) rank = 2;
      else if (domain === "*") rank = 1;
      if (rank > 0 && (best === undefined || rank > best.rank || (rank === best.rank && domain.length > best.length))) {
        best = { host: candidate, rank, length: domain.length };
      }
    }
  }
  return best?.host;
}

function routeMatches(route: HttpRoute, path: string, headers: HeaderPairs): boolean {
  const pathOnly = path.split("?")[0] ?? path;
  if (route.path !== undefined && pathOnly !== route.path) return false;
  if (route.prefix !== undefined && !path.startsWith(route.prefix)) return false;
  return route.headers.every(({ name, exact, present }) => {
    const value = headers.find(([key]) => key === name)?.[1];
    if (present || exact === undefined) return value !== undefined;
    return value === exact;
  });
}

/** The body length a message's headers declare: content-length, unless the body is chunked. */
function contentLength(headers: Record<string, string | string[] | undefined>): number | undefined {
  const value = headers["content-length"];
  return typeof value !== "string" || headers["transfer-encoding"] !== undefined ? undefined : Number(value);
}

const BODY_LENGTH_MISMATCH = "a filter changed the body's length but left its content-length: the stream is failed"
  + " (Envoy would send the body as it is, breaking the message's framing); remove content-length in the headers callback";

interface HttpStats {
  requestsTotal: Counter;
  noRoute: Counter;
  noCluster: Counter;
  localReplies: Counter;
  upstreamFailures: Counter;
}

/** Keep-alive connections that each start with the same PROXY protocol header. */
class ProxyProtocolAgent extends Agent {
  constructor(private readonly header: Buffer) {
    super({ keepAlive: true });
  }

  override createConnection(options: ClientRequestArgs): Duplex {
    const socket = connect(options as NetConnectOpts);
    // Queued until the connection is up, and sent before the first request.
    socket.write(this.header);
    return socket;
  }
}

/**
 * :path and :authority of a request. An absolute-form target (`GET http://host/path`, as clients
 * talking to a proxy send) gives both, as Envoy's HTTP/1 codec does (allow_absolute_url); the
 * Host header is used otherwise.
 */
function requestTarget(request: IncomingMessage): { path: string; authority: string } {
  const url = request.url ?? "/";
  if (/^https?:\/\//i.test(url)) {
    try {
      const parsed = new URL(url);
      return { path: `${parsed.pathname}${parsed.search}`, authority: parsed.host };
    } catch {
      // Not a URL after all: routed as written, which matches no prefix route.
    }
  }
  return { path: url, authority: request.headers.host ?? "" };
}

export class HttpProxy {
  private readonly server: Server;
  private readonly infos = new WeakMap<Socket, ConnectionInfo>();
  private readonly agents = new Map<string, Agent>();
  private readonly stats: HttpStats;

  constructor(
    private readonly config: HttpConfig,
    private readonly plugins: readonly Plugin[],
    private readonly clusters: ReadonlyMap<string, Cluster>,
    store: StatsStore,
    private readonly logger: Logger,
    /** The connection manager's access logs, opened. */
    private readonly accessLogs: readonly AccessLog[],
    /** What a filter may hold of a body (the listener's per_connection_buffer_limit_bytes). */
    private readonly bufferLimitBytes: number,
  ) {
    const prefix = `http.${config.statPrefix}.`;
    this.stats = {
      requestsTotal: store.counter(`${prefix}downstream_rq_total`),
      noRoute: store.counter(`${prefix}no_route`),
      noCluster: store.counter(`${prefix}no_cluster`),
      localReplies: store.counter(`${prefix}downstream_rq_local_reply`),
      upstreamFailures: store.counter(`${prefix}upstream_rq_failure`),
    };
    this.server = createServer({ keepAlive: true }, (request, response) => {
      this.handle(request, response).catch((error: Error) => this.failRequest(request, response, error));
    });
    // Envoy has no whole-request deadline by default (stream_idle_timeout covers a silent one), and
    // keeps an idle connection for common_http_protocol_options.idle_timeout (Node: 5 s).
    this.server.requestTimeout = 0;
    this.server.keepAliveTimeout = config.idleTimeoutMs;
  }

  /**
   * What a peer or a filter sent made a request fail in a way no check above foresaw (a header
   * value Node refuses to write, say): that request ends, never the process.
   */
  private failRequest(request: IncomingMessage, response: ServerResponse, error: Error): void {
    this.logger.warn({ path: request.url, error: error.message }, "request failed");
    if (response.headersSent) {
      response.destroy();
      return;
    }
    this.stats.localReplies.value++;
    response.writeHead(500, { "content-type": "text/plain" });
    response.end("internal error\n");
  }

  accept(socket: Socket, info: ConnectionInfo): void {
    this.infos.set(socket, info);
    this.server.emit("connection", socket);
  }

  close(): Promise<void[]> {
    for (const agent of this.agents.values()) agent.destroy();
    return Promise.all(this.accessLogs.map((log) => log.close()));
  }

  /**
   * The connection pool for a request. A cluster whose transport socket sends the PROXY header
   * gets a pool per downstream connection: the header carries that connection's addresses, and
   * Envoy likewise keys upstream pools by the transport socket options the header comes from
   * (envoy/network/transport_socket.h, TransportSocketOptions::hashKey). Those pools close with
   * their downstream connection.
   */
  private agent(cluster: Cluster, downstream: Socket, info: ConnectionInfo): Agent {
    const version = cluster.config.upstreamProxyProtocol;
    const key = version === undefined ? cluster.config.name : `${cluster.config.name} ${info.connectionId}`;
    let agent = this.agents.get(key);
    if (agent === undefined) {
      const created = version === undefined ? new Agent({ keepAlive: true })
        : new ProxyProtocolAgent(encodeProxyHeader(version === "V1" ? 1 : 2, info.source, info.destination));
      this.agents.set(key, created);
      if (version !== undefined) {
        downstream.once("close", () => {
          this.agents.delete(key);
          created.destroy();
        });
      }
      agent = created;
    }
    return agent;
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    this.stats.requestsTotal.value++;
    const started = new Date();
    const info = this.infos.get(request.socket)!;
    const target = requestTarget(request);
    const headers: HeaderPairs = [[":method", request.method ?? "GET"], [":path", target.path],
      [":authority", target.authority], [":scheme", "http"]];
    for (let i = 0; i < request.rawHeaders.length; i += 2) {
      const name = request.rawHeaders[i]!.toLowerCase();
      const value = request.rawHeaders[i + 1]!;
      if (name === "te") {
        const te = sanitizedTe(value);
        if (te !== undefined) headers.push([name, te]);
      } else if (name !== "host" && !isConnectionHeader(name)) {
        headers.push([name, value]);
      }
    }
    const get = (name: string) => headers.find(([key]) => key === name)?.[1];
    // What the connection manager adds before the filters (ConnectionManagerUtility::mutateRequestHeaders):
    // x-forwarded-proto when absent, and a request id (generate_request_id defaults to true).
    if (get("x-forwarded-proto") === undefined) headers.push(["x-forwarded-proto", "http"]);
    if (get("x-request-id") === undefined) headers.push(["x-request-id", randomUUID()]);
    const flags: string[] = [];
    let upstreamHost: string | undefined;
    let clusterName: string | undefined;
    let local: LocalResponse | undefined;
    let resume: (() => void) | undefined;
    const resumeBodies: (() => void)[] = [];
    /** After the request headers: how a local response (or a failure) ends the stream. */
    let answerLocally: ((reply: LocalResponse) => void) | undefined;
    const control = {
      respond: (reply: LocalResponse) => {
        if (local !== undefined) return;
        local = reply;
        resume?.();
        answerLocally?.(reply);
      },
      continueRequest: () => {
        resume?.();
        for (const resumeBody of resumeBodies) resumeBody();
      },
    };
    const filterState = new Map<string, string>();
    const sessions = this.plugins.map((plugin) => new HttpFilterSession(plugin, info, headers, control, filterState));
    const finish = () => {
      for (const session of sessions) session.finish();
      for (const log of this.accessLogs) {
        log.write({
          startTime: started, upstreamCluster: clusterName, downstreamRemote: formatEndpoint(info.source),
          downstreamLocal: formatEndpoint(info.destination), upstreamHost, bytesSent: response.socket?.bytesWritten ?? 0,
          bytesReceived: request.socket.bytesRead, durationMs: Date.now() - started.getTime(), responseFlags: flags,
          http: { method: get(":method") ?? "-", path: get(":path") ?? "-", protocol: `HTTP/${request.httpVersion}`, status: response.statusCode, header: get },
          filterState,
        });
      }
    };
    response.once("close", finish);
    const reply = (status: number, body: string, flag?: string, extra: HeaderPairs = []) => {
      if (flag !== undefined) flags.push(flag);
      this.stats.localReplies.value++;
      response.writeHead(status, [["content-type", "text/plain"], ...extra].flat());
      response.end(body);
    };

    const endOfStream = request.headers["content-length"] === undefined ? request.headers["transfer-encoding"] === undefined
      : request.headers["content-length"] === "0";
    for (const session of sessions) {
      if (session.onRequestHeaders(endOfStream) === "pause" && local === undefined) {
        await new Promise<void>((resolve) => (resume = resolve));
      }
      if (local !== undefined) {
        request.resume();
        return reply(local.status, local.body.toString(), undefined, local.headers);
      }
    }

    const virtualHost = pickVirtualHost(this.config.virtualHosts, get(":authority") ?? "");
    const route = virtualHost?.routes.find((r) => routeMatches(r, get(":path") ?? "/", headers));
    if (route === undefined) {
      this.stats.noRoute.value++;
      request.resume();
      return reply(404, "", "NR");
    }
    clusterName = route.cluster ?? (route.clusterHeader !== undefined ? get(route.clusterHeader) : undefined);
    const cluster = clusterName === undefined ? undefined : this.clusters.get(clusterName);
    if (cluster === undefined) {
      this.stats.noCluster.value++;
      request.resume();
      return route.clusterHeader !== undefined ? reply(404, "", "NC") : reply(503, "no healthy upstream", "NC");
    }
    const host = cluster.pickHost(info.destination);
    if (host === undefined) {
      request.resume();
      return reply(503, "no healthy upstream", "UH");
    }
    upstreamHost = formatEndpoint(host);
    const bodyFilters = sessions.filter((session) => session.wantsBodies);
    // Not forwarded: pseudo-headers, host (made from :authority here), trailer, and the connection's own headers.
    const dropped = (name: string) => name.startsWith(":") || name === "host" || name === "trailer" || isConnectionHeader(name);
    const outgoing: Record<string, string | string[]> = { host: get(":authority") ?? "" };
    for (const [name, value] of headers) {
      if (dropped(name)) continue;
      const previous = outgoing[name];
      outgoing[name] = previous === undefined ? value : [...(Array.isArray(previous) ? previous : [previous]), value];
    }
    // A body without a declared length goes chunked, as Envoy's HTTP/1 codec sends it (Node would
    // compute a content-length for a body that a filter held and sends in one piece).
    if (!endOfStream && outgoing["content-length"] === undefined) outgoing["transfer-encoding"] = "chunked";
    cluster.stats.upstreamCxTotal.value++;
    const sentAt = Date.now();
    const upstream = httpRequest({
      host: host.address, port: host.port, method: get(":method"), path: get(":path"), headers: outgoing,
      agent: this.agent(cluster, request.socket, info),
    });
    // Ended on purpose (timeout, local response): its errors are not upstream failures.
    let abandoned = false;
    answerLocally = (answer) => {
      abandoned = true;
      upstream.destroy();
      // Envoy answers while the response has not started; past that it can only reset the stream.
      if (response.headersSent) response.destroy();
      else reply(answer.status, answer.body.toString(), undefined, answer.headers);
    };
    armRequestTimeouts(request, response, upstream,
      { connectMs: cluster.config.connectTimeoutMs, routeMs: route.timeoutMs, streamIdleMs: this.config.streamIdleTimeoutMs }, (which) => {
        if (which === "connect") return void upstream.destroy(new Error("connect timeout"));
        abandoned = true;
        upstream.destroy();
        if (which === "route") cluster.stats.upstreamRqTimeout.value++;
        if (response.headersSent) return void response.destroy();
        // Envoy's local replies: 504 with UT for the route timeout, 408 with SI for stream idle.
        if (which === "route") reply(504, "upstream request timeout", "UT");
        else reply(408, "stream timeout", "SI");
      });
    upstream.on("error", (error: NodeJS.ErrnoException) => {
      if (abandoned) return;
      this.stats.upstreamFailures.value++;
      this.logger.debug({ cluster: cluster.config.name, host: upstreamHost, error: error.message }, "upstream request failed");
      if (response.headersSent) return void response.destroy();
      const connectFailure = error.code === "ECONNREFUSED" || error.message === "connect timeout";
      if (connectFailure) cluster.stats.upstreamCxConnectFail.value++;
      reply(503, `upstream connect error or disconnect/reset before headers. reset reason: ${connectFailure ? "connection failure" : "connection termination"}`,
        connectFailure ? "UF" : "UC");
    });
    const stopped = () => local !== undefined || response.destroyed;
    upstream.on("response", (upstreamResponse) => {
      if (stopped()) return void upstreamResponse.destroy();
      try {
        const resumeBody = this.respond(upstreamResponse, response, sessions, bodyFilters, dropped, reply, stopped, sentAt);
        if (resumeBody !== undefined) resumeBodies.push(resumeBody);
      } catch (error) {
        upstreamResponse.destroy();
        this.failRequest(request, response, error as Error);
      }
    });
    if (bodyFilters.length === 0) return void pipeWithTrailers(request, upstream);
    const pipeline = new BodyPipeline(bodyFilters.map((session) => ({
      body: (data, end) => session.onRequestBody(data, end), trailers: (pairs) => session.onRequestTrailers(pairs),
    })), this.bufferLimitBytes);
    resumeBodies.push(relayBody(request, upstream, pipeline, { received: contentLength(request.headers), declared: contentLength(outgoing) }, {
      stopped,
      // Envoy's answer when a filter holds more of the request than the buffer limit.
      overLimit: () => control.respond({ status: 413, details: "request_payload_too_large", body: Buffer.from("Payload Too Large"), headers: [] }),
      lengthMismatch: (sent, declared) => {
        this.logger.warn({ path: get(":path"), sent, declared }, BODY_LENGTH_MISMATCH);
        control.respond({ status: 500, details: "filter_changed_body_length", body: Buffer.from("Internal Server Error"), headers: [] });
      },
    }));
  }

  /**
   * The upstream's response, through the filters in reverse order, to the client. A local response
   * or a failure during the response headers replaces the response (answerLocally, above).
   * Returns what resumes a response body held at its end, if filters see it.
   */
  private respond(upstreamResponse: IncomingMessage, response: ServerResponse, sessions: HttpFilterSession[], bodyFilters: HttpFilterSession[],
    dropped: (name: string) => boolean, reply: (status: number, body: string, flag?: string) => void, stopped: () => boolean,
    sentAt: number): (() => void) | undefined {
    const responseHeaders: HeaderPairs = [[":status", String(upstreamResponse.statusCode ?? 502)]];
    for (let i = 0; i < upstreamResponse.rawHeaders.length; i += 2) {
      const name = upstreamResponse.rawHeaders[i]!.toLowerCase();
      const value = upstreamResponse.rawHeaders[i + 1]!;
      if (!isConnectionHeader(name)) responseHeaders.push([name, value]);
    }
    // The router's timing header, which filters see (router.proto: suppress_envoy_headers is off by default).
    responseHeaders.push(["x-envoy-upstream-service-time", String(Date.now() - sentAt)]);
    for (const session of [...sessions].reverse()) {
      session.onResponseHeaders(responseHeaders, false);
      if (stopped()) return void upstreamResponse.destroy();
    }
    const status = Number(responseHeaders.find(([name]) => name === ":status")?.[1] ?? 502);
    if (!Number.isInteger(status) || status < 100 || status > 999) {
      // Envoy's codec refuses such a response: 502 with UPE (upstream protocol error).
      this.stats.upstreamFailures.value++;
      upstreamResponse.destroy();
      return void reply(502, `upstream sent an invalid status '${status}'`, "UPE");
    }
    // The connection manager's server header (server_header_transformation OVERWRITE, the default).
    const sentHeaders = [...responseHeaders.filter(([name]) => !dropped(name) && name !== "server"), ["server", "envoy"]];
    response.writeHead(status, sentHeaders.flat());
    if (bodyFilters.length === 0) return void pipeWithTrailers(upstreamResponse, response);
    const pipeline = new BodyPipeline([...bodyFilters].reverse().map((session) => ({
      body: (data, end) => session.onResponseBody(data, end), trailers: (pairs) => session.onResponseTrailers(pairs),
    })), this.bufferLimitBytes);
    const declared = contentLength(Object.fromEntries(sentHeaders));
    // Past the limit Envoy answers 500 while it can; the headers are out here, so the stream is reset.
    return relayBody(upstreamResponse, response, pipeline, { received: contentLength(upstreamResponse.headers), declared }, {
      stopped,
      overLimit: () => response.destroy(),
      lengthMismatch: (sent, length) => {
        this.logger.warn({ status, sent, declared: length }, BODY_LENGTH_MISMATCH);
        response.destroy();
      },
    });
  }
}
