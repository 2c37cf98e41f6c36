// The egress router: accepts connections that start with a PROXY v1/v2 header, and connects to
// the original destination the header names, only when the allowlist permits it. It never acts
// as an open relay. Every refused connection is closed with a counter and a log line naming the
// reason (and, for a bad header, the byte at fault).
import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { createWriteStream, type WriteStream } from "node:fs";
import type { Logger } from "pino";
import { formatEndpoint, type Endpoint } from "../host/properties.js";
import { AdminServer, type AdminSource, type StatSample } from "../runner/admin.js";
import { StatsStore, type Counter } from "../runner/stats.js";
import type { Allowlist } from "./allowlist.js";
import type { EgressSettings } from "./config.js";
import { ConnectionLimit, connectionCapacity } from "../server/connection-limit.js";
import { decodeProxyHeader, TLV } from "./proxy-protocol.js";

export interface EgressOptions extends Omit<EgressSettings, "allow"> {
  allowlist: Allowlist;
  logger: Logger;
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
  bytesUp: Counter;
  bytesDown: Counter;
}

function egressStats(store: StatsStore): EgressStats {
  const c = (name: string) => store.counter(`egress.${name}`);
  return {
    cxTotal: c("cx_total"), cxActive: store.gauge("egress.cx_active"), forwarded: c("forwarded"), denied: c("denied"),
    badHeader: c("bad_header"), headerTimeout: c("header_timeout"), localCommand: c("local_command"), overLimit: c("over_limit"),
    connectFail: c("connect_fail"), connectTimeout: c("connect_timeout"), bytesUp: c("bytes_up"), bytesDown: c("bytes_down"),
  };
}

export class EgressRouter implements AdminSource {
  readonly store = new StatsStore();
  private readonly counters: EgressStats;
  private readonly sockets = new Set<Socket>();
  private server!: Server;
  private admin: AdminServer | undefined;
  private readonly accessLog: WriteStream | NodeJS.WriteStream | undefined;
  private readonly limit: ConnectionLimit;

  private constructor(private readonly options: EgressOptions) {
    this.counters = egressStats(this.store);
    // A forwarded connection holds two descriptors (client and destination).
    const capacity = connectionCapacity(2);
    const max = Math.min(options.maxConnections, capacity);
    this.limit = new ConnectionLimit(max, options.logger, max < options.maxConnections
      ? `connection limit ${max} reached (the file descriptor limit, ulimit -n, leaves room for ${capacity} of max_connections ${options.maxConnections})`
      : `connection limit ${max} reached`);
    this.accessLog = options.accessLog === undefined ? undefined
      : options.accessLog === "-" ? process.stdout : createWriteStream(options.accessLog, { flags: "a" });
  }

  static async start(options: EgressOptions): Promise<EgressRouter> {
    const router = new EgressRouter(options);
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

  counter(name: keyof EgressStats): number {
    return this.counters[name].value;
  }

  private refuse(socket: Socket, counter: Counter, reason: string): void {
    counter.value++;
    this.options.logger.warn({ client: `${socket.remoteAddress}:${socket.remotePort}`, reason }, "egress connection refused");
    socket.destroy();
  }

  private accept(socket: Socket): void {
    const { counters, options } = this;
    counters.cxTotal.value++;
    socket.on("error", () => undefined);
    if (!this.limit.admits(counters.cxActive.value)) {
      counters.overLimit.value++;
      socket.destroy();
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
    const timer = setTimeout(() => {
      socket.off("data", onData);
      headerDone = true;
      this.refuse(socket, counters.headerTimeout, `no complete PROXY header within ${options.headerTimeoutMs} ms (${buffered.length} bytes received)`);
    }, options.headerTimeoutMs);
    const onData = (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      const decoded = decodeProxyHeader(buffered);
      if (decoded.kind === "incomplete") return;
      headerDone = true;
      clearTimeout(timer);
      socket.off("data", onData);
      socket.pause();
      if (decoded.kind === "error") return this.refuse(socket, counters.badHeader, `bad PROXY header: ${decoded.reason}`);
      const { header } = decoded;
      if (header.local || header.destination === undefined || header.source === undefined) {
        return this.refuse(socket, counters.localCommand, "PROXY header without addresses (LOCAL/UNKNOWN): nothing to forward to");
      }
      const verdict = options.allowlist.check(header.destination.address, header.destination.port);
      if (!verdict.allowed) return this.refuse(socket, counters.denied, `destination denied: ${verdict.reason}`);
      const rule = header.tlvs.find((t) => t.type === TLV.WASMERANG_RULE)?.value.toString("utf8");
      const sni = header.tlvs.find((t) => t.type === TLV.AUTHORITY)?.value.toString("utf8");
      this.forward(socket, header.source, header.destination, buffered.subarray(decoded.length), { rule, sni });
    };
    socket.on("data", onData);
    socket.once("end", () => {
      if (!headerDone) {
        clearTimeout(timer);
        socket.off("data", onData);
        this.refuse(socket, counters.badHeader, `connection ended after ${buffered.length} bytes, before a complete PROXY header`);
      }
    });
  }

  private forward(client: Socket, source: Endpoint, destination: Endpoint, early: Buffer, tags: { rule?: string; sni?: string }): void {
    const { counters, options } = this;
    const started = Date.now();
    const upstream = connect({ host: destination.address, port: destination.port, allowHalfOpen: true, localAddress: options.bindAddress });
    this.sockets.add(upstream);
    upstream.once("close", () => this.sockets.delete(upstream));
    upstream.setNoDelay(true);
    let connected = false;
    const timer = setTimeout(() => {
      counters.connectTimeout.value++;
      options.logger.warn({ destination: formatEndpoint(destination) }, `connect timeout after ${options.connectTimeoutMs} ms`);
      upstream.destroy();
      client.destroy();
    }, options.connectTimeoutMs);
    upstream.on("error", (error) => {
      if (!connected) {
        clearTimeout(timer);
        counters.connectFail.value++;
        options.logger.warn({ destination: formatEndpoint(destination), error: error.message }, "connect to original destination failed");
      }
      client.destroy();
    });
    client.on("error", () => upstream.destroy());
    upstream.once("connect", () => {
      clearTimeout(timer);
      connected = true;
      counters.forwarded.value++;
      options.logger.debug({ source: formatEndpoint(source), destination: formatEndpoint(destination), ...tags }, "forwarding to original destination");
      if (early.length > 0) upstream.write(early);
      // pipe() carries backpressure and half-close (end) in both directions.
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    let finished = false;
    const finish = () => {
      if (finished || !client.destroyed || !upstream.destroyed) return;
      finished = true;
      counters.bytesUp.value += upstream.bytesWritten;
      counters.bytesDown.value += upstream.bytesRead;
      this.accessLog?.write(`${new Date(started).toISOString()} ${client.remoteAddress}:${client.remotePort} ${formatEndpoint(source)} -> ` +
        `${formatEndpoint(destination)} rule=${tags.rule ?? "-"} sni=${tags.sni ?? "-"} up=${upstream.bytesWritten} down=${upstream.bytesRead} ` +
        `${Date.now() - started}ms ${connected ? "forwarded" : "failed"}\n`);
    };
    client.once("close", () => {
      if (!upstream.destroyed && !connected) upstream.destroy();
      finish();
    });
    upstream.once("close", () => {
      if (!client.destroyed && !connected) client.destroy();
      finish();
    });
  }

  async close(): Promise<void> {
    this.server.close();
    for (const socket of this.sockets) socket.destroy();
    await this.admin?.close();
    if (this.accessLog !== undefined && this.accessLog !== process.stdout) (this.accessLog as WriteStream).end();
  }

  // ---- AdminSource ---------------------------------------------------------------------------

  stats(): StatSample[] {
    return this.store.entries().map(([name, value, kind]) => ({ name, value, kind }));
  }

  ready(): boolean {
    return this.server.listening;
  }
}
