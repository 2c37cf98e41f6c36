// One downstream connection through a listener: listener filters, the network filter chain
// (Wasm filters, then tcp_proxy) with the iteration rules of Envoy's FilterManagerImpl
// (source/common/network/filter_manager_impl.cc, onContinueReading), the upstream connection,
// and teardown that always closes both sockets, logs and counts.
import { connect, type Socket } from "node:net";
import { NetworkFilterSession } from "../host/network-filter.js";
import { ORIGINAL_DST_ADDRESS_KEY, TCP_PROXY_CLUSTER_KEY } from "../host/filter-state.js";
import { formatEndpoint, parseEndpoint, type Endpoint } from "../host/properties.js";
import { decodeProxyHeader, encodeProxyHeader, startsLikeProxyHeader } from "../egress/proxy-protocol.js";
import type { Cluster } from "./cluster.js";
import type { HttpProxy } from "./http-proxy.js";
import type { ConnectionInfo, DynamicMetadata } from "../host/properties.js";
import { applyTlvRules } from "./proxy-protocol-metadata.js";
import type { HostStatus } from "../server/admin-render.js";
import type { TcpProxyStats } from "./stats.js";
import { LISTENER_FILTERS_TIMEOUT_MS, type ListenerRuntime } from "./listener-runtime.js";
import { originalDestination } from "./original-dst.js";
import { ReadBuffer } from "./read-buffer.js";
import { MAX_CLIENT_HELLO_BYTES, peekServerName } from "./tls-sni.js";

let nextConnectionId = 1;

const EMPTY: Buffer = Buffer.alloc(0);


/** One side went away: send what is queued to the other, then close it (Envoy's FlushWrite). */
function flushThenClose(socket: Socket): void {
  if (socket.writableFinished) {
    socket.destroy();
    return;
  }
  socket.once("finish", () => socket.destroy());
  if (!socket.writableEnded) socket.end();
}

/**
 * Why the downstream is not being read. Envoy's tcp_proxy read-disables the downstream until the
 * upstream connects (source/common/tcp_proxy/tcp_proxy.cc, Filter::establishUpstreamConnection
 * and onUpstreamConnection); a read buffer over per_connection_buffer_limit_bytes and an upstream
 * that cannot take more do the same (watermark buffers, source/common/network/connection_impl.cc).
 */
type ReadBlocker = "connecting" | "buffer-limit" | "upstream-full";

interface ReadFilter {
  initialized: boolean;
  onNewConnection(): "continue" | "pause";
  onData(data: Buffer, endOfStream: boolean): "continue" | "pause";
}

export class ProxyConnection {
  private readonly id = nextConnectionId++;
  private readonly startTime = Date.now();
  private source: Endpoint;
  private destination: Endpoint;
  private serverName = "";
  private readonly filterState = new Map<string, string>();
  private readonly dynamicMetadata: DynamicMetadata = new Map();
  private sessions: NetworkFilterSession[] = [];
  private readonly chain: ReadFilter[] = [];
  /** Downstream bytes read but not yet taken by tcp_proxy (Envoy's connection read buffer). */
  private readonly readBuffer = new ReadBuffer();
  private readonly readBlockers = new Set<ReadBlocker>();
  private downstreamEnded = false;
  private upstream: Socket | undefined;
  private upstreamConnected = false;
  private upstreamHost: Endpoint | undefined;
  private hostStats: HostStatus | undefined;
  private cluster: Cluster | undefined;
  /** Bytes tcp_proxy took before the upstream was connected. */
  private upstreamQueue: Buffer[] = [];
  private upstreamEndPending = false;
  private attempts = 0;
  private connectTimer: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  /** When bytes last moved (performance.now()); the idle timer compares against it when it fires. */
  private lastActivity = 0;
  private closing = false;
  private downstreamClosed = false;
  private upstreamClosed = true;
  private closedBy: "local" | "remote" = "remote";
  /** Why the connection ended: the first close reason, or which side closed first. */
  private endReason: string | undefined;
  private readonly responseFlags: string[] = [];
  private bytesReceived = 0;
  private bytesSent = 0;
  private finished = false;

  /**
   * @param local the listener's own address when it is not a wildcard (saves a getsockname).
   * @param onFinished called once both sides are closed and the connection is logged and counted.
   */
  constructor(private readonly runtime: ListenerRuntime, private readonly downstream: Socket, local: Endpoint | undefined,
    private readonly onFinished: () => void) {
    this.source = { address: downstream.remoteAddress ?? "", port: downstream.remotePort ?? 0 };
    this.destination = local ?? { address: downstream.localAddress ?? "", port: downstream.localPort ?? 0 };
    runtime.stats.downstreamCxTotal.value++;
    runtime.stats.downstreamCxActive.value++;
    if (runtime.tcpStats !== undefined) runtime.tcpStats.downstreamCxTotal.value++;
    // Listeners set TCP_NODELAY as they accept (noDelay); here it costs nothing then.
    downstream.setNoDelay(true);
    downstream.on("error", (error) => this.onSocketError("downstream", error));
    downstream.on("close", () => this.onDownstreamClose());
    this.runListenerFilters();
  }

  // ---- listener filters ----------------------------------------------------------------------

  private runListenerFilters(): void {
    if (this.runtime.restoresOriginalDestination) {
      const original = originalDestination(this.downstream);
      if (original !== undefined) this.destination = original;
    }
    const needsBytes = this.runtime.byteListenerFilters;
    if (needsBytes.length === 0) {
      this.startFilterChain();
      return;
    }
    let buffered: Buffer = EMPTY;
    let pending = [...needsBytes];
    const timer = setTimeout(() => this.failListenerFilter(`listener filter ${pending[0]} timed out after ${LISTENER_FILTERS_TIMEOUT_MS} ms`), LISTENER_FILTERS_TIMEOUT_MS);
    const onData = (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      while (pending.length > 0) {
        const outcome = this.runListenerFilterSafely(pending[0]!, buffered);
        if (outcome === "wait") return;
        if (outcome === "closed") {
          clearTimeout(timer);
          this.downstream.off("data", onData);
          return;
        }
        buffered = outcome;
        pending = pending.slice(1);
      }
      clearTimeout(timer);
      this.downstream.off("data", onData);
      // Envoy's listener filters peek: what they did not consume is still unread when the
      // connection starts, and reaches the filter chain as its first read, at once.
      this.downstream.pause();
      if (buffered.length > 0) this.downstream.unshift(buffered);
      this.startFilterChain();
    };
    this.downstream.on("data", onData);
    this.downstream.once("end", () => {
      if (pending.length === 0) return;
      clearTimeout(timer);
      this.failListenerFilter(`connection ended before listener filter ${pending[0]} finished`);
    });
  }

  /** A listener filter that throws on a peer's bytes closes that connection only. */
  private runListenerFilterSafely(name: string, data: Buffer): Buffer | "wait" | "closed" {
    try {
      return this.runListenerFilter(name, data);
    } catch (error) {
      this.failListenerFilter(`listener filter ${name} failed on the connection's first ${data.length} bytes: ${(error as Error).message}`);
      return "closed";
    }
  }

  /** Returns the bytes left for the next stage, "wait" for more, or "closed". */
  private runListenerFilter(name: string, data: Buffer): Buffer | "wait" | "closed" {
    if (name === "tls_inspector") {
      const peek = peekServerName(data);
      if (peek.kind === "incomplete" && data.length < MAX_CLIENT_HELLO_BYTES) return "wait";
      if (peek.kind === "tls") this.serverName = peek.serverName;
      return data;
    }
    const decoded = decodeProxyHeader(data);
    if (decoded.kind === "incomplete") return "wait";
    if (decoded.kind === "error") {
      if (this.runtime.config.allowWithoutProxyProtocol && !startsLikeProxyHeader(data)) return data;
      this.failListenerFilter(`bad PROXY protocol header: ${decoded.reason}`);
      return "closed";
    }
    const { header } = decoded;
    applyTlvRules(this.runtime.config.proxyProtocolRules, header.tlvs, this.dynamicMetadata);
    if (!header.local && header.source !== undefined && header.destination !== undefined) {
      this.source = header.source;
      this.destination = header.destination;
    }
    return data.subarray(decoded.length);
  }

  private failListenerFilter(reason: string): void {
    this.runtime.stats.downstreamListenerFilterError.value++;
    this.runtime.logger.warn({ connection: this.id, source: formatEndpoint(this.source), reason }, "listener filter closed the connection");
    this.close(reason, "local");
  }

  // ---- network filter chain ------------------------------------------------------------------

  private startFilterChain(): void {
    if (this.closing) return;
    const info: ConnectionInfo = { connectionId: this.id, source: this.source, destination: this.destination, serverName: this.serverName, mtls: false,
      dynamicMetadata: this.dynamicMetadata };
    this.sessions = this.runtime.plugins.map((plugin, index) => new NetworkFilterSession(plugin, info, {
      close: (reason) => {
        this.runtime.stats.downstreamCxFilterClosed.value++;
        this.close(reason, "local");
      },
      continueReading: () => setImmediate(() => this.continueReading(index + 1)),
    }, this.filterState));
    for (const session of this.sessions) {
      this.chain.push({
        initialized: false,
        onNewConnection: () => session.onNewConnection(),
        onData: (data, endOfStream) => {
          const result = session.onDownstreamData(data, endOfStream);
          if (result.data !== data) this.readBuffer.set(result.data);
          return result.status;
        },
      });
    }
    const http = this.runtime.http;
    if (http !== undefined) {
      // The HTTP connection manager takes the socket over when the chain reaches it.
      this.chain.push({ initialized: false, onNewConnection: () => this.handOver(http, info), onData: () => "pause" });
    } else {
      this.chain.push({ initialized: false, onNewConnection: () => this.tcpProxyNewConnection(), onData: (data, eos) => this.tcpProxyData(data, eos) });
    }
    const wantsDownstreamData = this.sessions.some((s) => s.wantsData);
    this.downstream.on("data", (chunk: Buffer) => {
      this.bytesReceived += chunk.length;
      this.lastActivity = performance.now();
      this.readBuffer.append(chunk);
      if (wantsDownstreamData || !this.chain[this.chain.length - 1]!.initialized) {
        this.continueReading(0);
      } else {
        this.tcpProxyData(this.readBuffer.take(), false);
      }
    });
    this.downstream.on("end", () => {
      this.downstreamEnded = true;
      this.continueReading(0);
    });
    // Envoy initializes the read filters before the first read (onNewConnection on each).
    this.continueReading(0);
    if (!this.closing && this.readBlockers.size === 0) this.downstream.resume();
  }

  /** Hands the socket, and what was read so far, to Node's HTTP/1.1 server (resumed by startFilterChain). */
  private handOver(http: HttpProxy, info: ConnectionInfo): "pause" {
    this.downstream.removeAllListeners("data");
    this.downstream.removeAllListeners("end");
    const pending = this.readBuffer.take();
    if (pending.length > 0) this.downstream.unshift(pending);
    http.accept(this.downstream, info);
    return "pause";
  }

  /** Envoy's onContinueReading: new filters get onNewConnection, initialized ones the buffered data. */
  private continueReading(from: number): void {
    this.runReadFilters(from);
    this.applyBufferLimit();
  }

  private runReadFilters(from: number): void {
    for (let i = from; i < this.chain.length; i++) {
      if (this.closing) return;
      const filter = this.chain[i]!;
      if (!filter.initialized) {
        filter.initialized = true;
        if (filter.onNewConnection() === "pause" || this.closing) return;
      }
      if (this.readBuffer.length > 0 || this.downstreamEnded) {
        if (filter.onData(this.readBuffer.bytes, this.downstreamEnded) === "pause" || this.closing) return;
      }
    }
  }

  /**
   * The read buffer (bytes a paused filter holds) stays under per_connection_buffer_limit_bytes:
   * over it reading stops, and resumes below half of it, as Envoy's watermark buffer does.
   */
  private applyBufferLimit(): void {
    const limit = this.runtime.bufferLimitBytes;
    if (this.readBuffer.length > limit) this.blockReading("buffer-limit");
    else if (this.readBuffer.length <= limit / 2) this.unblockReading("buffer-limit");
  }

  private blockReading(reason: ReadBlocker): void {
    if (this.readBlockers.size === 0) this.downstream.pause();
    this.readBlockers.add(reason);
  }

  private unblockReading(reason: ReadBlocker): void {
    if (!this.readBlockers.delete(reason) || this.readBlockers.size > 0 || this.closing) return;
    this.downstream.resume();
    // As Envoy's readDisable(false) raises a read event when bytes are buffered: what a filter
    // held goes on now, not when the peer next sends.
    if (this.readBuffer.length > 0) this.continueReading(0);
  }

  // ---- tcp_proxy -----------------------------------------------------------------------------

  /** Only tcp_proxy's own steps read these: they run on listeners that end with tcp_proxy. */
  private get tcpProxyStats(): TcpProxyStats {
    return this.runtime.tcpStats!;
  }

  private tcpProxyNewConnection(): "pause" {
    const clusterName = this.runtime.routeCluster(this.filterState.get(TCP_PROXY_CLUSTER_KEY));
    const cluster = clusterName === undefined ? undefined : this.runtime.clusters.get(clusterName);
    if (cluster === undefined) {
      this.tcpProxyStats.downstreamCxNoRoute.value++;
      this.responseFlags.push("NC");
      this.close(`no cluster '${clusterName ?? ""}' (tcp_proxy NoClusterFound)`, "local");
      return "pause";
    }
    this.cluster = cluster;
    this.blockReading("connecting");
    if (this.runtime.idleTimeoutMs > 0) {
      this.lastActivity = performance.now();
      this.armIdleTimer(this.runtime.idleTimeoutMs);
    }
    this.connectUpstream();
    return "pause";
  }

  /**
   * tcp_proxy's idle_timeout. Moving bytes only records the time; the timer, when it fires,
   * closes the connection or waits out the rest. Refreshing a Node timer on every chunk instead
   * re-inserts it into Node's timer list each time, for a timeout that is almost never reached.
   */
  private armIdleTimer(delay: number): void {
    this.idleTimer = setTimeout(() => {
      const idle = this.runtime.idleTimeoutMs;
      const quiet = performance.now() - this.lastActivity;
      if (quiet < idle) return this.armIdleTimer(idle - quiet);
      this.tcpProxyStats.idleTimeout.value++;
      this.close(`idle for ${idle} ms`, "local");
    }, delay);
    this.idleTimer.unref();
  }

  /** tcp_proxy is terminal: it takes the bytes, sends them when the upstream is up, and stops the chain. */
  private tcpProxyData(data: Buffer, endOfStream: boolean): "pause" {
    this.readBuffer.take();
    if (this.upstreamConnected && this.upstream !== undefined) {
      if (data.length > 0 && !this.upstream.write(data) && !this.readBlockers.has("upstream-full")) {
        this.blockReading("upstream-full");
        this.upstream.once("drain", () => this.unblockReading("upstream-full"));
      }
      if (endOfStream) this.upstream.end();
    } else {
      if (data.length > 0) this.upstreamQueue.push(data);
      if (endOfStream) this.upstreamEndPending = true;
    }
    return "pause";
  }

  private originalDestination(): Endpoint {
    // set_envoy_filter_state accepted it only as a valid IP:PORT.
    const override = this.filterState.get(ORIGINAL_DST_ADDRESS_KEY);
    return override === undefined ? this.destination : parseEndpoint(override);
  }

  private connectUpstream(): void {
    const cluster = this.cluster!;
    const host = cluster.pickHost(this.originalDestination());
    if (host === undefined) {
      cluster.stats.upstreamCxNoneHealthy.value++;
      this.responseFlags.push("UH");
      this.close(`cluster '${cluster.config.name}' has no hosts`, "local");
      return;
    }
    this.attempts++;
    this.upstreamHost = host;
    this.hostStats = cluster.hostStats(host);
    this.hostStats.cxTotal++;
    cluster.stats.upstreamCxTotal.value++;
    // TCP_NODELAY, as Envoy sets on both sides, given to connect: Node then sets it once, once
    // connected; a setNoDelay call here would make it set it twice (a syscall per connection).
    const upstream = connect({ host: host.address, port: host.port, allowHalfOpen: true, noDelay: true });
    this.upstream = upstream;
    this.upstreamClosed = false;
    this.connectTimer = setTimeout(() => {
      cluster.stats.upstreamCxConnectTimeout.value++;
      this.upstreamFailed(upstream, `connect timeout after ${cluster.config.connectTimeoutMs} ms`);
    }, cluster.config.connectTimeoutMs);
    upstream.once("connect", () => this.upstreamReady(upstream));
    upstream.on("error", (error) => {
      if (!this.upstreamConnected) {
        cluster.stats.upstreamCxConnectFail.value++;
        this.upstreamFailed(upstream, error.message);
      } else {
        this.onSocketError("upstream", error);
      }
    });
    upstream.on("close", () => this.onUpstreamClose(upstream));
  }

  private upstreamFailed(upstream: Socket, reason: string): void {
    clearTimeout(this.connectTimer);
    upstream.removeAllListeners("close");
    upstream.destroy();
    this.upstreamClosed = true;
    const cluster = this.cluster!;
    this.hostStats!.cxConnectFail++;
    cluster.hostIdle(this.hostStats!);
    this.runtime.logger.debug({ connection: this.id, cluster: cluster.config.name, host: formatEndpoint(this.upstreamHost!), reason }, "upstream connect failed");
    if (this.closing) return;
    if (this.attempts < this.runtime.maxConnectAttempts) {
      this.connectUpstream();
      return;
    }
    this.responseFlags.push("UF");
    this.close(`upstream connect to ${formatEndpoint(this.upstreamHost!)} failed: ${reason}`, "local");
  }

  private upstreamReady(upstream: Socket): void {
    clearTimeout(this.connectTimer);
    if (this.closing) return;
    const cluster = this.cluster!;
    this.upstreamConnected = true;
    cluster.stats.upstreamCxActive.value++;
    this.hostStats!.cxActive++;
    for (const session of this.sessions) session.setUpstream(this.upstreamHost!);
    const version = cluster.config.upstreamProxyProtocol;
    // Envoy's upstream PROXY protocol socket: downstream remote address, and the downstream
    // local address as the original destination (restored by original_dst or a PROXY header).
    if (version !== undefined) upstream.write(encodeProxyHeader(version === "V1" ? 1 : 2, this.source, this.destination));
    for (const chunk of this.upstreamQueue) upstream.write(chunk);
    this.upstreamQueue = [];
    if (this.upstreamEndPending) upstream.end();
    this.unblockReading("connecting");
    // Write filters see upstream data in reverse order, as Envoy's filter manager passes it.
    const upstreamOrder = [...this.sessions].reverse();
    const writeFilters = upstreamOrder.filter((s) => s.wantsData);
    upstream.on("data", (chunk: Buffer) => {
      this.lastActivity = performance.now();
      let data = chunk;
      for (const session of writeFilters) {
        const result = session.onUpstreamData(data, false);
        data = result.data;
        if (result.status === "pause" || this.closing) return;
      }
      this.bytesSent += data.length;
      // A client that does not read stops the upstream from being read.
      if (!this.downstream.write(data)) {
        upstream.pause();
        this.downstream.once("drain", () => upstream.resume());
      }
    });
    // Envoy's Wasm network filter (common/wasm/context.cc, Context::onWrite): the upstream's end of
    // stream goes through on_upstream_data with end_of_stream, what the filters write then goes
    // out before the end, and right after each filter gets its upstream close, with peer Unknown
    // (there is no upstream connection event for it to hear).
    upstream.on("end", () => {
      let data = EMPTY;
      for (const session of upstreamOrder) {
        if (session.wantsData) data = session.onUpstreamData(data, true).data;
        session.onUpstreamClose("unknown");
        if (this.closing) return;
      }
      this.bytesSent += data.length;
      // An empty chunk would still be written: a zero-byte write syscall per connection.
      if (data.length > 0) this.downstream.end(data);
      else this.downstream.end();
    });
  }

  // ---- teardown ------------------------------------------------------------------------------

  private onSocketError(side: "downstream" | "upstream", error: Error): void {
    this.runtime.logger.debug({ connection: this.id, side, error: error.message }, "socket error");
    this.close(`${side} ${error.message}`, "remote");
  }

  /**
   * Ends the connection now with a reset on both sides, as Envoy does with what is still open at
   * its drain deadline: a transfer cut here must not look complete to either peer.
   */
  abort(reason: string): void {
    if (this.closing) return;
    this.downstream.resetAndDestroy();
    if (this.upstreamConnected) this.upstream?.resetAndDestroy();
    this.close(reason, "local");
  }

  /** Closes both sides now. The first reason is the one logged. */
  private close(reason: string, by: "local" | "remote"): void {
    if (this.closing) return;
    this.closing = true;
    this.closedBy = by;
    this.endReason ??= reason;
    if (this.runtime.logger.isLevelEnabled("debug")) this.runtime.logger.debug({ connection: this.id, reason }, "connection closed");
    clearTimeout(this.connectTimer);
    this.downstream.destroy();
    this.upstream?.destroy();
  }

  private onDownstreamClose(): void {
    this.downstreamClosed = true;
    this.endReason ??= "downstream closed";
    if (!this.closing && this.upstream !== undefined && !this.upstreamClosed) flushThenClose(this.upstream);
    this.maybeFinish();
  }

  private onUpstreamClose(upstream: Socket): void {
    if (upstream !== this.upstream) return;
    this.upstreamClosed = true;
    this.endReason ??= "upstream closed";
    if (this.upstreamConnected) {
      this.cluster!.stats.upstreamCxActive.value--;
      this.hostStats!.cxActive--;
      this.cluster!.hostIdle(this.hostStats!);
    }
    if (!this.downstreamClosed) flushThenClose(this.downstream);
    this.maybeFinish();
  }

  private maybeFinish(): void {
    if (this.finished || !this.downstreamClosed || !this.upstreamClosed) return;
    this.finished = true;
    clearTimeout(this.idleTimer);
    clearTimeout(this.connectTimer);
    const { stats, tcpStats } = this.runtime;
    stats.downstreamCxActive.value--;
    stats.downstreamCxDestroy.value++;
    if (this.runtime.logger.isLevelEnabled("debug")) {
      this.runtime.logger.debug({ connection: this.id, reason: this.endReason, flags: this.responseFlags.join(",") || "-",
        received: this.bytesReceived, sent: this.bytesSent }, "connection finished");
    }
    if (tcpStats !== undefined) {
      tcpStats.downstreamCxRxBytesTotal.value += this.bytesReceived;
      tcpStats.downstreamCxTxBytesTotal.value += this.bytesSent;
    }
    if (this.cluster !== undefined && this.upstream !== undefined) {
      this.cluster.stats.upstreamCxTxBytesTotal.value += this.upstream.bytesWritten;
      this.cluster.stats.upstreamCxRxBytesTotal.value += this.upstream.bytesRead;
    }
    for (const session of this.sessions) {
      session.onDownstreamClose(this.closedBy === "local" ? "local" : "remote");
      session.finish();
    }
    if (this.runtime.accessLogs.length > 0) {
      const record = {
        startTime: new Date(this.startTime),
        upstreamCluster: this.cluster?.config.name,
        downstreamRemote: formatEndpoint(this.source),
        downstreamLocal: formatEndpoint(this.destination),
        upstreamHost: this.upstreamConnected && this.upstreamHost !== undefined ? formatEndpoint(this.upstreamHost) : undefined,
        bytesSent: this.bytesSent,
        bytesReceived: this.bytesReceived,
        durationMs: Date.now() - this.startTime,
        responseFlags: this.responseFlags,
        filterState: this.filterState,
        dynamicMetadata: this.dynamicMetadata,
      };
      for (const log of this.runtime.accessLogs) log.write(record);
    }
    this.onFinished();
  }
}
