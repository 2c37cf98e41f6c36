// The egress router: accepts connections that start with a PROXY v1/v2 header, and connects to
// the original destination the header names, only when the allowlist permits it. It never acts
// as an open relay. Every refused connection is closed with a counter and a log line naming the
// reason (and, for a bad header, the byte at fault), and every connection gets an access-log record.
import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import type { Logger } from "pino";
import { formatEndpoint, type Endpoint } from "../host/properties.js";
import { AdminServer, type AdminSource, type StatSample } from "../server/admin.js";
import { StatsStore, type Counter } from "../server/stats-store.js";
import { ConnectionLimit, connectionCapacity } from "../server/connection-limit.js";
import { watchIdle } from "../server/idle.js";
import { openEgressAccessLog, type Decision, type EgressAccessLog, type EgressRecord } from "./access-log.js";
import type { Allowlist } from "./allowlist.js";
import type { EgressSettings } from "./config.js";
import { decodeProxyHeader } from "./proxy-protocol.js";

export interface EgressOptions extends Omit<EgressSettings, "allow"> {
  allowlist: Allowlist;
  logger: Logger;
  /** What admin's /quitquitquit does once the router is closed (the command exits the process). */
  onQuit?: () => void;
}

interface EgressStats {
  cxTotal: Counter;
  cxActive: Counter;
  forwarded: Counter;
  denied: Counter;
  badHeader: Counter;
  headerTimeout: Counter;
  localCommand: Counter;
  overLimit: Counter;
  connectFail: Counter;
  connectTimeout: Counter;
  idleTimeout: Counter;
  bytesUp: Counter;
  bytesDown: Counter;
}

/** tcp_proxy's default idle_timeout. */
const DEFAULT_IDLE_TIMEOUT_MS = 3_600_000;

/** The counter each way of not forwarding a connection bumps. */
const DECISION_COUNTERS: Record<Exclude<Decision, "forwarded">, keyof EgressStats> = {
  denied: "denied", bad_header: "badHeader", header_timeout: "headerTimeout", local_command: "localCommand",
  over_limit: "overLimit", connect_fail: "connectFail", connect_timeout: "connectTimeout",
};

function egressStats(store: StatsStore): EgressStats {
  const c = (name: string) => store.counter(`egress.${name}`);
  return {
    cxTotal: c("cx_total"), cxActive: store.gauge("egress.cx_active"), forwarded: c("forwarded"), denied: c("denied"),
    badHeader: c("bad_header"), headerTimeout: c("header_timeout"), localCommand: c("local_command"), overLimit: c("over_limit"),
    connectFail: c("connect_fail"), connectTimeout: c("connect_timeout"), idleTimeout: c("idle_timeout"), bytesUp: c("bytes_up"), bytesDown: c("bytes_down"),
  };
}

export class EgressRouter implements AdminSource {
  readonly store = new StatsStore();
  private readonly counters: EgressStats;
  private readonly sockets = new Set<Socket>();
  private server!: Server;
  private admin: AdminServer | undefined;
  private accessLog: EgressAccessLog | undefined;
  private readonly limit: ConnectionLimit;
  private closing = false;

  private constructor(private readonly options: EgressOptions) {
    this.counters = egressStats(this.store);
    // A forwarded connection holds two descriptors (client and destination).
    const capacity = connectionCapacity(2);
    const max = Math.min(options.maxConnections, capacity);
    this.limit = new ConnectionLimit(max, options.logger, max < options.maxConnections
      ? `connection limit ${max} reached (the file descriptor limit, ulimit -n, leaves room for ${capacity} of max_connections ${options.maxConnections})`
      : `connection limit ${max} reached`);
  }

  static async start(options: EgressOptions): Promise<EgressRouter> {
    const router = new EgressRouter(options);
    if (options.accessLog !== undefined) router.accessLog = await openEgressAccessLog(options.accessLog, options.accessLogFormat ?? "text",
      (error) => options.logger.error({ error: error.message }, "access log write failed"));
    router.server = createServer({ allowHalfOpen: true }, (socket) => router.accept(socket));
    router.server.maxConnections = Number.MAX_SAFE_INTEGER;
    await new Promise<void>((resolve, reject) => {
      router.server.once("error", reject);
      router.server.listen(options.listen.port, options.listen.address, () => {
        router.server.off("error", reject);
        resolve();
      });
    });
    router.server.on("error", (error) => options.logger.warn({ error: error.message }, "accept failed"));
    if (options.admin !== undefined) router.admin = await AdminServer.listen(options.admin.address, options.admin.port, router, options.logger);
    options.logger.info(`egress router on ${options.listen.address}:${router.port}, allowing ${options.allowlist.rules.map((r) => r.text).join(" ") || "nothing"}`);
    return router;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get adminPort(): number | undefined {
    return this.admin?.port;
  }

  /** Client connections open now. */
  get activeConnections(): number {
    return this.counters.cxActive.value;
  }

  private get idleTimeoutMs(): number {
    return this.options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  }

  counter(name: keyof EgressStats): number {
    return this.counters[name].value;
  }

  /** Ends a connection that is not forwarded: counted by reason, logged, closed (its record is written on close). */
  private refuse(socket: Socket, record: EgressRecord, decision: Exclude<Decision, "forwarded">, reason: string): void {
    this.counters[DECISION_COUNTERS[decision]].value++;
    record.decision = decision;
    record.reason = reason;
    this.options.logger.warn({ client: record.client, reason }, "egress connection refused");
    socket.destroy();
  }

  private accept(socket: Socket): void {
    const { counters, options } = this;
    counters.cxTotal.value++;
    socket.on("error", () => undefined);
    // Read now: once the socket is gone, Node no longer knows its peer.
    const record: EgressRecord = {
      start: new Date(), client: `${formatEndpoint({ address: socket.remoteAddress ?? "", port: socket.remotePort ?? 0 })}`, tlvs: [],
      decision: "over_limit", bytesUp: 0, bytesDown: 0, durationMs: 0,
    };
    if (!this.limit.admits(counters.cxActive.value)) {
      counters.overLimit.value++;
      record.reason = "connection limit reached";
      socket.destroy();
      this.accessLog?.write(record);
      return;
    }
    this.sockets.add(socket);
    counters.cxActive.value++;
    socket.once("close", () => {
      this.sockets.delete(socket);
      counters.cxActive.value--;
    });
    let buffered: Buffer = Buffer.alloc(0);
    let headerDone = false;
    let upstream: Socket | undefined;
    const timer = setTimeout(() => {
      socket.off("data", onData);
      headerDone = true;
      this.refuse(socket, record, "header_timeout", `no complete PROXY header within ${options.headerTimeoutMs} ms (${buffered.length} bytes received)`);
    }, options.headerTimeoutMs);
    const onData = (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      const decoded = decodeProxyHeader(buffered);
      if (decoded.kind === "incomplete") return;
      headerDone = true;
      clearTimeout(timer);
      socket.off("data", onData);
      socket.pause();
      if (decoded.kind === "error") return this.refuse(socket, record, "bad_header", `bad PROXY header: ${decoded.reason}`);
      const { header } = decoded;
      record.tlvs = header.tlvs;
      if (header.local || header.destination === undefined || header.source === undefined) {
        return this.refuse(socket, record, "local_command", "PROXY header without addresses (LOCAL/UNKNOWN): nothing to forward to");
      }
      record.source = header.source;
      record.destination = header.destination;
      const verdict = options.allowlist.check(header.destination.address, header.destination.port);
      if (!verdict.allowed) return this.refuse(socket, record, "denied", `destination denied: ${verdict.reason}`);
      upstream = this.forward(socket, header.destination, buffered.subarray(decoded.length), record);
    };
    socket.on("data", onData);
    socket.once("end", () => {
      if (!headerDone) {
        clearTimeout(timer);
        socket.off("data", onData);
        this.refuse(socket, record, "bad_header", `connection ended after ${buffered.length} bytes, before a complete PROXY header`);
      }
    });
    // One record per connection, once both sides are closed.
    const finish = () => {
      clearTimeout(timer);
      record.durationMs = Date.now() - record.start.getTime();
      if (upstream !== undefined) {
        record.bytesUp = upstream.bytesWritten;
        record.bytesDown = upstream.bytesRead;
        counters.bytesUp.value += upstream.bytesWritten;
        counters.bytesDown.value += upstream.bytesRead;
      }
      this.accessLog?.write(record);
    };
    socket.once("close", () => {
      if (upstream === undefined || upstream.destroyed) finish();
      else upstream.once("close", finish);
    });
  }

  /** Connects to the original destination and relays both ways; the connect's outcome goes into `record`. */
  private forward(client: Socket, destination: Endpoint, early: Buffer, record: EgressRecord): Socket {
    const { counters, options } = this;
    // noDelay given to connect: Node sets TCP_NODELAY once connected (a setNoDelay call here would set it twice).
    const upstream = connect({ host: destination.address, port: destination.port, allowHalfOpen: true, localAddress: options.bindAddress, noDelay: true });
    this.sockets.add(upstream);
    upstream.once("close", () => this.sockets.delete(upstream));
    let connected = false;
    const timer = setTimeout(() => {
      counters.connectTimeout.value++;
      record.decision = "connect_timeout";
      record.reason = `connect timeout after ${options.connectTimeoutMs} ms`;
      options.logger.warn({ destination: formatEndpoint(destination) }, record.reason);
      upstream.destroy();
      client.destroy();
    }, options.connectTimeoutMs);
    upstream.on("error", (error) => {
      if (!connected) {
        clearTimeout(timer);
        counters.connectFail.value++;
        record.decision = "connect_fail";
        record.reason = `connect to original destination failed: ${error.message}`;
        options.logger.warn({ destination: formatEndpoint(destination), error: error.message }, "connect to original destination failed");
      }
      client.destroy();
    });
    client.on("error", () => upstream.destroy());
    upstream.once("connect", () => {
      clearTimeout(timer);
      connected = true;
      counters.forwarded.value++;
      record.decision = "forwarded";
      options.logger.debug({ source: formatEndpoint(record.source!), destination: formatEndpoint(destination) }, "forwarding to original destination");
      if (early.length > 0) upstream.write(early);
      // pipe() carries backpressure and half-close (end) in both directions.
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
      if (this.idleTimeoutMs > 0) this.closeWhenIdle(client, upstream, record);
    });
    client.once("close", () => {
      if (!upstream.destroyed && !connected) upstream.destroy();
    });
    upstream.once("close", () => {
      if (!client.destroyed && !connected) client.destroy();
    });
    return upstream;
  }

  /** tcp_proxy's idle_timeout for a forwarded connection. */
  private closeWhenIdle(client: Socket, upstream: Socket, record: EgressRecord): void {
    const stop = watchIdle(this.idleTimeoutMs, () => upstream.bytesRead + upstream.bytesWritten, () => {
      this.counters.idleTimeout.value++;
      record.reason = `idle for ${this.idleTimeoutMs} ms`;
      this.options.logger.debug({ client: record.client }, record.reason);
      client.destroy();
      upstream.destroy();
    });
    upstream.once("close", stop);
  }

  /** Closes everything; what is still open is closed now, with its access-log record written first. */
  async close(): Promise<void> {
    this.closing = true;
    this.server.close();
    const closed = [...this.sockets].map((socket) => new Promise((resolve) => socket.once("close", resolve)));
    for (const socket of this.sockets) socket.destroy();
    await Promise.all(closed);
    await this.admin?.close();
    await this.accessLog?.close();
  }

  // ---- AdminSource ---------------------------------------------------------------------------

  stats(): StatSample[] {
    return this.store.samples();
  }

  /** The settings in force (the router has no Envoy configuration). */
  configDump(resource: string | undefined): object | undefined {
    if (resource !== undefined) return undefined;
    const { listen, admin, headerTimeoutMs, connectTimeoutMs, maxConnections, accessLog, accessLogFormat, bindAddress, allowlist } = this.options;
    return {
      listen: formatEndpoint(listen), allow: allowlist.rules.map((rule) => rule.text), admin: admin === undefined ? undefined : formatEndpoint(admin),
      header_timeout_ms: headerTimeoutMs, connect_timeout_ms: connectTimeoutMs, idle_timeout_ms: this.idleTimeoutMs, max_connections: maxConnections,
      effective_max_connections: this.limit.max, access_log: accessLog, access_log_format: accessLogFormat, bind_address: bindAddress,
    };
  }

  live(): boolean {
    return !this.closing;
  }

  drainListeners(): void {
    this.server.close();
  }

  quit(): void {
    void this.close().then(() => this.options.onQuit?.());
  }
}
