// Real sockets on loopback for end-to-end tests: tagged upstream servers and a client that can
// choose its source address (any 127.0.0.0/8 address works on Linux without setup).
import { once } from "node:events";
import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { Writable } from "node:stream";
import { after, before } from "node:test";
import { pino, type Logger } from "pino";
import { stringify } from "yaml";
import { Runner, type RunnerOptions } from "../src/runner/runner.js";
import { toRunnerConfig } from "../src/envoy/load.js";
import { silentLogger } from "../src/logging.js";

export interface TagServer {
  port: number;
  /** Connections accepted so far. */
  accepted: number;
  /** The first bytes of each accepted connection (to see PROXY headers). */
  firstChunks: Buffer[];
  close(): Promise<void>;
}

/** A server that answers each connection with `<tag>:<everything it received>` after the client half-closes. */
export async function startTagServer(tag: string, host = "127.0.0.1"): Promise<TagServer> {
  const sockets = new Set<Socket>();
  const state = { accepted: 0, firstChunks: [] as Buffer[] };
  const server: Server = createServer({ allowHalfOpen: true }, (socket) => {
    state.accepted++;
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    const chunks: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => {
      if (chunks.length === 0) state.firstChunks.push(chunk);
      chunks.push(chunk);
    });
    socket.on("end", () => socket.end(Buffer.concat([Buffer.from(`${tag}:`), ...chunks])));
    socket.on("error", () => undefined);
  });
  server.listen(0, host);
  await once(server, "listening");
  return {
    port: (server.address() as AddressInfo).port,
    get accepted() {
      return state.accepted;
    },
    firstChunks: state.firstChunks,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Tagged servers started before the tests of the enclosing suite (or file) and closed after;
 * read them inside tests, once `before` has run.
 */
export function tagServers(...tags: string[]): TagServer[] {
  const servers: TagServer[] = [];
  before(async () => {
    for (const tag of tags) servers.push(await startTagServer(tag));
  });
  after(async () => {
    for (const server of servers.splice(0)) await server.close();
  });
  return servers;
}

export interface Exchange {
  reply: string;
  /** True when the proxy closed without a reply (connection refused by policy, failure…). */
  closedEmpty: boolean;
}

/** Connects from `localAddress`, sends `data`, half-closes, and reads until the other side closes. */
export async function exchange(port: number, data: string, localAddress = "127.0.0.1", host = "127.0.0.1"): Promise<Exchange> {
  const socket = connect({ port, host, localAddress, allowHalfOpen: true });
  const chunks: Buffer[] = [];
  socket.on("data", (chunk: Buffer) => chunks.push(chunk));
  await once(socket, "connect");
  socket.end(data);
  await new Promise<void>((resolve) => {
    socket.on("error", () => resolve());
    socket.on("close", () => resolve());
  });
  const reply = Buffer.concat(chunks).toString("latin1");
  return { reply, closedEmpty: reply === "" };
}

export const PROXY_PROTOCOL_FILTER = { name: "envoy.filters.listener.proxy_protocol", typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol" } };
export const TLS_INSPECTOR_FILTER = { name: "envoy.filters.listener.tls_inspector", typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector" } };

export interface EchoServer {
  server: Server;
  port: number;
  sockets: Set<Socket>;
  /** Bytes received over all connections. */
  received: number;
}

/** A server that echoes every chunk at once (no half-close needed to get an answer) and counts what it got. */
export async function startEchoServer(): Promise<EchoServer> {
  const echo: EchoServer = { server: createServer(), port: 0, sockets: new Set<Socket>(), received: 0 };
  echo.server.on("connection", (socket) => {
    echo.sockets.add(socket);
    socket.once("close", () => echo.sockets.delete(socket));
    socket.on("error", () => undefined);
    socket.on("data", (chunk: Buffer) => (echo.received += chunk.length));
    socket.pipe(socket);
  });
  echo.server.listen(0, "127.0.0.1");
  await once(echo.server, "listening");
  echo.port = (echo.server.address() as AddressInfo).port;
  return echo;
}

export async function stopServer(echo: { server: Server; sockets: Set<Socket> }): Promise<void> {
  for (const socket of echo.sockets) socket.destroy();
  await new Promise((resolve) => echo.server.close(resolve));
}

/** Reads from `socket` until `expected` bytes arrived; fails after `ms`. */
export async function readExactly(socket: Socket, expected: number, ms = 3000): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${length} of ${expected} bytes after ${ms} ms`)), ms);
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      length += chunk.length;
      if (length >= expected) {
        clearTimeout(timer);
        socket.off("data", onData);
        resolve(Buffer.concat(chunks));
      }
    };
    socket.on("data", onData);
  });
}

export function staticCluster(name: string, port: number, extra: object = {}): object {
  return {
    name,
    type: "STATIC",
    connect_timeout: "1s",
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: "127.0.0.1", port_value: port } } } }] }] },
    ...extra,
  };
}

/** A cluster's transport_socket sending the PROXY protocol header (Envoy's upstream_proxy_protocol). */
export function proxyProtocolTransport(version: "V1" | "V2"): object {
  return {
    name: "envoy.transport_sockets.upstream_proxy_protocol", typed_config: {
      "@type": "type.googleapis.com/envoy.extensions.transport_sockets.proxy_protocol.v3.ProxyProtocolUpstreamTransport",
      config: { version },
      transport_socket: { name: "raw", typed_config: { "@type": "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer" } },
    },
  };
}

export function wasmFilter(filename: string, configuration: string, extra: object = {}, kind: "network" | "http" = "network"): object {
  return {
    name: `envoy.filters.${kind}.wasm`,
    typed_config: {
      "@type": `type.googleapis.com/envoy.extensions.filters.${kind}.wasm.v3.Wasm`,
      config: {
        name: "wasmerang",
        root_id: "wasmerang",
        vm_config: { runtime: "envoy.wasm.runtime.v8", code: { local: { filename } } },
        configuration: { "@type": "type.googleapis.com/google.protobuf.StringValue", value: configuration },
        ...extra,
      },
    },
  };
}

/** A file access log with an inline text format (Envoy's FileAccessLog). */
export function fileAccessLog(path: string, format: string): object {
  return {
    name: "file",
    typed_config: { "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog", path, log_format: { text_format_source: { inline_string: format } } },
  };
}

export function tcpProxy(cluster: string, extra: object = {}): object {
  return {
    name: "envoy.filters.network.tcp_proxy",
    typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy", stat_prefix: "ingress", cluster, ...extra },
  };
}

/** An HTTP connection manager with one catch-all route (`{ cluster }` or `{ cluster_header }`), its filters, then the router. */
export function httpConnectionManager(route: object, httpFilters: object[] = [], extra: object = {}): object {
  return {
    name: "envoy.filters.network.http_connection_manager",
    typed_config: {
      "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
      stat_prefix: "web",
      route_config: { name: "local", virtual_hosts: [{ name: "all", domains: ["*"], routes: [{ match: { prefix: "/" }, route }] }] },
      http_filters: [...httpFilters, { name: "envoy.filters.http.router", typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" } }],
      ...extra,
    },
  };
}

export function bootstrap(filters: object[], clusters: object[], listenerExtra: object = {}): object {
  return {
    admin: { address: { socket_address: { address: "127.0.0.1", port_value: 0 } } },
    static_resources: {
      listeners: [{
        name: "main",
        address: { socket_address: { address: "127.0.0.1", port_value: 0 } },
        filter_chains: [{ filters }],
        ...listenerExtra,
      }],
      clusters,
    },
  };
}

/** A port nothing listens on right now (the kernel's choice, released at once). */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  const server = createServer().listen(0, host);
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A pino logger whose lines (parsed JSON) the test can read. */
export function captureLogger(): { logger: Logger; lines: () => { msg: string; reason?: string; [key: string]: unknown }[] } {
  const lines: string[] = [];
  const sink = new Writable({ write(chunk: Buffer, _encoding, done) { lines.push(...chunk.toString().split("\n").filter((l) => l !== "")); done(); } });
  return { logger: pino({ level: "debug" }, sink), lines: () => lines.map((line) => JSON.parse(line) as { msg: string }) };
}

/** Starts a runner from a bootstrap object, going through YAML as a user's file would. */
export async function startRunner(config: object, logger: Logger = silentLogger, options: Partial<RunnerOptions> = {}): Promise<Runner> {
  const yaml = stringify(config);
  return Runner.start(toRunnerConfig((await import("yaml")).parse(yaml), "test.yaml"), { logger, wasmLogLevel: "critical", ...options });
}

export async function adminGet(runner: Runner, path: string): Promise<{ status: number; body: string }> {
  const response = await fetch(`http://127.0.0.1:${runner.adminPort}${path}`);
  return { status: response.status, body: await response.text() };
}
