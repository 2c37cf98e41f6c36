// Interoperability with HAProxy from Debian, a real PROXY protocol peer, in both directions,
// both versions, IPv4 and IPv6.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { Allowlist } from "../src/egress/allowlist.js";
import { EgressRouter } from "../src/egress/router.js";
import { silentLogger } from "../src/logging.js";
import { bootstrap, exchange, freePort, proxyProtocolTransport, startRunner, startTagServer, tcpProxy } from "./net-helpers.js";
import { commandWorks, needPeer } from "./peers.js";

const haproxyPresent = commandWorks("haproxy", ["-v"]);
const dir = mkdtempSync(join(tmpdir(), "wasmerang-haproxy-"));
const running: ChildProcess[] = [];
after(() => {
  for (const child of running) child.kill("SIGKILL");
});

/** Starts HAProxy in the foreground with `config`; resolves once it accepts on host:port. */
async function startHaproxy(name: string, config: string, host: string, port: number): Promise<{ log: () => string }> {
  const file = join(dir, `${name}.cfg`);
  writeFileSync(file, config);
  const child = spawn("haproxy", ["-db", "-f", file], { stdio: ["ignore", "pipe", "pipe"] });
  running.push(child);
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ host, port });
      socket.once("connect", () => (socket.destroy(), resolve(true)));
      socket.once("error", () => resolve(false));
    });
    if (ok) return { log: () => output };
    if (child.exitCode !== null) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`haproxy did not start: ${output}`);
}

const DEFAULTS = `global
  log stdout format raw local0
defaults
  mode tcp
  log global
  timeout connect 2s
  timeout client 5s
  timeout server 5s
`;

const FAMILIES = [
  { family: "IPv4", loopback: "127.0.0.1", client: "127.0.0.33", destination: "127.0.0.60", haproxyDst: (a: string) => `ipv4(${a})` },
  { family: "IPv6", loopback: "::1", client: "::1", destination: "::1", haproxyDst: (a: string) => `ipv6(${a})` },
];
const bracket = (address: string) => (address.includes(":") ? `[${address}]` : address);
const escape = (text: string) => text.replace(/[.[\]]/g, "\\$&");
const readText = (file: string) => (existsSync(file) ? readFileSync(file, "utf8") : "");

describe("HAProxy send-proxy in front of the egress router", () => {
  for (const { family, loopback, client, destination, haproxyDst } of FAMILIES) {
    for (const mode of ["send-proxy", "send-proxy-v2"]) {
      it(`${mode}, ${family}: the router forwards to the destination HAProxy names`, async (t) => {
        if (!needPeer(t, "haproxy", haproxyPresent, "apt-get install haproxy")) return;
        const target = await startTagServer("dest", destination);
        const accessLog = join(dir, `egress-${mode}-${family}.log`);
        const router = await EgressRouter.start({
          listen: { address: loopback, port: 0 }, allowlist: Allowlist.parse([`${bracket(destination)}:${target.port}`]),
          headerTimeoutMs: 2000, connectTimeoutMs: 2000, maxConnections: 100, logger: silentLogger, accessLog,
        });
        const port = await freePort(loopback);
        try {
          await startHaproxy(`${mode}-${family}`, `${DEFAULTS}
frontend fe
  bind ${bracket(loopback)}:${port}
  tcp-request connection set-dst ${haproxyDst(destination)}
  tcp-request connection set-dst-port int(${target.port})
  default_backend be
backend be
  server egress ${bracket(loopback)}:${router.port} ${mode}
`, loopback, port);
          const { reply } = await exchange(port, `via ${mode}`, client, loopback);
          assert.equal(reply, `dest:via ${mode}`);
          assert.equal(router.counter("badHeader"), 0);
          // The router's access log names the client HAProxy saw and the destination it asked for.
          const line = new RegExp(`${escape(bracket(client))}:\\d+ -> ${escape(bracket(destination))}:${target.port} .* forwarded$`, "m");
          for (let i = 0; i < 50 && !line.test(readText(accessLog)); i++) await new Promise((resolve) => setTimeout(resolve, 20));
          assert.match(readText(accessLog), line);
        } finally {
          await router.close();
          await target.close();
        }
      });
    }
  }
});

describe("the runner's upstream PROXY protocol into HAProxy accept-proxy", () => {
  for (const { family, loopback, client } of FAMILIES) {
    for (const version of ["V1", "V2"] as const) {
      it(`${version}, ${family}: HAProxy sees the client and the runner's listener as source and destination`, async (t) => {
        if (!needPeer(t, "haproxy", haproxyPresent, "apt-get install haproxy")) return;
        const target = await startTagServer("behind-haproxy", loopback);
        const port = await freePort(loopback);
        const haproxy = await startHaproxy(`accept-${version}-${family}`, `${DEFAULTS}
frontend fe
  bind ${bracket(loopback)}:${port} accept-proxy
  log-format "seen src=%ci:%cp dst=%fi:%fp"
  default_backend be
backend be
  server target ${bracket(loopback)}:${target.port}
`, loopback, port);
        const config = bootstrap([tcpProxy("haproxy")], [{
          name: "haproxy", type: "STATIC", connect_timeout: "1s",
          load_assignment: { cluster_name: "haproxy", endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: loopback, port_value: port } } } }] }] },
          transport_socket: proxyProtocolTransport(version),
        }]) as { static_resources: { listeners: { address: { socket_address: { address: string } } }[] } };
        config.static_resources.listeners[0]!.address.socket_address.address = loopback;
        const runner = await startRunner(config);
        try {
          const runnerPort = runner.listenerPort("main");
          const { reply } = await exchange(runnerPort, "through", client, loopback);
          assert.equal(reply, "behind-haproxy:through");
          for (let i = 0; i < 50 && !haproxy.log().includes("seen src="); i++) await new Promise((resolve) => setTimeout(resolve, 20));
          const seen = /seen src=(\S+):(\d+) dst=(\S+):(\d+)/.exec(haproxy.log());
          assert.ok(seen, `no log line from haproxy: ${haproxy.log()}`);
          assert.equal(seen[1], client);
          assert.equal(seen[3], loopback);
          assert.equal(Number(seen[4]), runnerPort);
        } finally {
          await runner.close();
          await target.close();
        }
      });
    }
  }
});
