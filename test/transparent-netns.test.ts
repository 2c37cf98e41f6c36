// Transparent interception for real, IPv4 and IPv6, in network namespaces this test creates: two client hosts
// (even and odd last octet) connect straight to a destination host's address; a gateway
// namespace redirects their TCP (nftables REDIRECT) to the runner, whose original_dst listener
// filter recovers the destination; the Wasm filter picks an egress router per client; the router
// (bound to its own egress address) forwards to the original destination. Everything is removed
// afterwards, also when the test fails.
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, it } from "node:test";
import { stringify } from "yaml";
import { FILTER_WASM, REPO } from "./helpers.js";
import { commandWorks, needPeer } from "./peers.js";
import { proxyProtocolTransport, staticCluster } from "./net-helpers.js";

const suffix = String(process.pid % 10000);
const NS = { gateway: `wg-gw-${suffix}`, even: `wg-c1-${suffix}`, odd: `wg-c2-${suffix}`, destination: `wg-dst-${suffix}` };
const CLI = join(REPO, "build/src/cli.js");
const dir = mkdtempSync(join(tmpdir(), "wasmerang-netns-"));
const children: ChildProcess[] = [];

function sh(...args: string[]): void {
  const result = spawnSync(args[0]!, args.slice(1), { encoding: "utf8" });
  if (result.status !== 0) throw new Error(`${args.join(" ")} failed: ${result.stderr}`);
}

function inNs(ns: string, ...args: string[]): void {
  sh("ip", "netns", "exec", ns, ...args);
}

function cleanUp(): void {
  for (const child of children) child.kill("SIGKILL");
  // Deleting a namespace removes its veth ends and nftables rules with it.
  for (const ns of Object.values(NS)) spawnSync("ip", ["netns", "del", ns], { stdio: "ignore" });
}
after(cleanUp);

function canUseNamespaces(): boolean {
  const probe = `wg-probe-${suffix}`;
  const ok = commandWorks("ip", ["netns", "add", probe]);
  if (ok) spawnSync("ip", ["netns", "del", probe]);
  return ok && commandWorks("nft", ["--version"]);
}

/** A veth link between the gateway and `ns`, with an IPv4 and an IPv6 address on each side. */
function link(ns: string, gatewaySide: string, hostSide: string, addresses: { gateway: string[]; host: string[] }): void {
  sh("ip", "link", "add", gatewaySide, "netns", NS.gateway, "type", "veth", "peer", "name", hostSide, "netns", ns);
  // nodad: IPv6 addresses usable at once, without duplicate address detection's delay.
  for (const cidr of addresses.gateway) inNs(NS.gateway, "ip", "addr", "add", cidr, "dev", gatewaySide, ...(cidr.includes(":") ? ["nodad"] : []));
  inNs(NS.gateway, "ip", "link", "set", gatewaySide, "up");
  for (const cidr of addresses.host) inNs(ns, "ip", "addr", "add", cidr, "dev", hostSide, ...(cidr.includes(":") ? ["nodad"] : []));
  inNs(ns, "ip", "link", "set", hostSide, "up");
}

function startIn(ns: string, args: string[]): { output: () => string } {
  const child = spawn("ip", ["netns", "exec", ns, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  return { output: () => output };
}

/** Runs a client in `ns` that connects to the destination's own address and prints the reply. */
function clientExchange(ns: string, payload: string, host = "10.77.9.9"): string {
  const script = `const s=require("net").connect({host:${JSON.stringify(host)},port:8080},()=>s.end(${JSON.stringify(payload)}));` +
    `let r="";s.on("data",d=>r+=d);s.on("close",()=>{process.stdout.write(r)});s.on("error",e=>{process.stdout.write("ERROR "+e.message)})`;
  return spawnSync("ip", ["netns", "exec", ns, process.execPath, "-e", script], { encoding: "utf8", timeout: 10_000 }).stdout;
}

async function waitFor(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

it("clients reach the destination through the egress router the policy chose, with no proxy settings", async (t) => {
  if (!needPeer(t, "network namespaces with nftables (root)", canUseNamespaces(), "run as root with iproute2 and nftables")) return;
  for (const ns of Object.values(NS)) {
    sh("ip", "netns", "add", ns);
    inNs(ns, "ip", "link", "set", "lo", "up");
  }
  link(NS.even, "vc1", "eth0", { gateway: ["10.77.1.1/24", "fd77:1::1/64"], host: ["10.77.1.10/24", "fd77:1::10/64"] });
  link(NS.odd, "vc2", "eth0", { gateway: ["10.77.2.1/24", "fd77:2::1/64"], host: ["10.77.2.11/24", "fd77:2::11/64"] });
  link(NS.destination, "vd", "eth0", { gateway: ["10.77.9.1/24", "10.77.9.2/24", "fd77:9::1/64", "fd77:9::2/64"], host: ["10.77.9.9/24", "fd77:9::9/64"] });
  inNs(NS.even, "ip", "route", "add", "default", "via", "10.77.1.1");
  inNs(NS.odd, "ip", "route", "add", "default", "via", "10.77.2.1");
  inNs(NS.even, "ip", "-6", "route", "add", "default", "via", "fd77:1::1");
  inNs(NS.odd, "ip", "-6", "route", "add", "default", "via", "fd77:2::1");
  inNs(NS.gateway, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1");
  inNs(NS.gateway, "sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1");
  // Client traffic to port 8080 is redirected to the runner's listener (what Istio's init container does).
  const rules = join(dir, "redirect.nft");
  writeFileSync(rules, `table ip wasmerang {
  chain prerouting {
    type nat hook prerouting priority dstnat;
    iifname { "vc1", "vc2" } tcp dport 8080 redirect to :15001
  }
}
table ip6 wasmerang6 {
  chain prerouting {
    type nat hook prerouting priority dstnat;
    iifname { "vc1", "vc2" } tcp dport 8080 redirect to :15002
  }
}
`);
  inNs(NS.gateway, "nft", "-f", rules);

  const destination = startIn(NS.destination, [process.execPath, "-e",
    `const serve=(host)=>require("net").createServer({allowHalfOpen:true},s=>{let d="";s.on("data",c=>d+=c);s.on("end",()=>s.end("from="+s.remoteAddress+" data="+d))})` +
    `.listen(8080,host,()=>console.log("listening "+host));serve("10.77.9.9");serve("fd77:9::9")`]);
  // One pair of egress routers per family, each bound to its own egress address.
  const routerLogs = [1, 2].map((n) => join(dir, `router${n}.log`));
  const router6Logs = [1, 2].map((n) => join(dir, `router${n}-v6.log`));
  for (const n of [1, 2]) {
    startIn(NS.gateway, [process.execPath, CLI, "egress", "--listen", `127.0.0.1:1510${n}`, "--allow", "10.77.9.9/32:8080",
      "--bind-address", `10.77.9.${n}`, "--access-log", routerLogs[n - 1]!, "--log-format", "json"]);
    startIn(NS.gateway, [process.execPath, CLI, "egress", "--listen", `127.0.0.1:1511${n}`, "--allow", "[fd77:9::9/128]:8080",
      "--bind-address", `fd77:9::${n}`, "--access-log", router6Logs[n - 1]!, "--log-format", "json"]);
  }
  const config = join(dir, "envoy.yaml");
  const cluster = (name: string, port: number) => staticCluster(name, port, { transport_socket: proxyProtocolTransport("V2") });
  const listener = (name: string, address: string, port: number, configuration: string) => ({
    name,
    address: { socket_address: { address, port_value: port } },
    listener_filters: [{ name: "envoy.filters.listener.original_dst", typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst" } }],
    filter_chains: [{ filters: [
      { name: "envoy.filters.network.wasm", typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm",
        config: { name: "wasmerang", root_id: "wasmerang", vm_config: { runtime: "envoy.wasm.runtime.v8", code: { local: { filename: FILTER_WASM } } },
          configuration: { "@type": "type.googleapis.com/google.protobuf.StringValue", value: configuration } } } },
      { name: "envoy.filters.network.tcp_proxy", typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        stat_prefix: name, cluster: "egress-router1" } },
    ] }],
  });
  // IPv6 sources route by the parity of their last byte to the IPv6 egress routers.
  const ipv6Policy = JSON.stringify({ rules: [
    { match: { source_parity: "even" }, action: { cluster: "egress-router1-v6" } },
    { match: { source_parity: "odd" }, action: { cluster: "egress-router2-v6" } },
  ] });
  writeFileSync(config, stringify({
    static_resources: {
      listeners: [listener("intercept", "0.0.0.0", 15001, "standalone"), listener("intercept6", "::", 15002, ipv6Policy)],
      clusters: [cluster("egress-router1", 15101), cluster("egress-router2", 15102), cluster("egress-router1-v6", 15111), cluster("egress-router2-v6", 15112)],
    },
  }));
  const runner = startIn(NS.gateway, [process.execPath, CLI, "run", "-c", config, "--log-format", "json"]);
  await waitFor(() => destination.output().includes("listening fd77:9::9"), `the destination server (${destination.output()})`);
  await waitFor(() => runner.output().includes("listener 'intercept6'"), `the runner (${runner.output()})`);

  assert.equal(clientExchange(NS.even, "from the even host"), "from=10.77.9.1 data=from the even host");
  assert.equal(clientExchange(NS.odd, "from the odd host"), "from=10.77.9.2 data=from the odd host");
  await waitFor(() => routerLogs.every((log) => { try { return readFileSync(log, "utf8").includes("forwarded"); } catch { return false; } }), "the egress routers' access logs");
  assert.match(readFileSync(routerLogs[0]!, "utf8"), /10\.77\.1\.10:\d+ -> 10\.77\.9\.9:8080 .* forwarded/);
  assert.match(readFileSync(routerLogs[1]!, "utf8"), /10\.77\.2\.11:\d+ -> 10\.77\.9\.9:8080 .* forwarded/);

  // The same over IPv6: SO_ORIGINAL_DST for IPv6 (IP6T_SO_ORIGINAL_DST) recovers the destination.
  assert.equal(clientExchange(NS.even, "even over IPv6", "fd77:9::9"), "from=fd77:9::1 data=even over IPv6");
  assert.equal(clientExchange(NS.odd, "odd over IPv6", "fd77:9::9"), "from=fd77:9::2 data=odd over IPv6");
  await waitFor(() => router6Logs.every((log) => { try { return readFileSync(log, "utf8").includes("forwarded"); } catch { return false; } }), "the IPv6 egress routers' access logs");
  assert.match(readFileSync(router6Logs[0]!, "utf8"), /\[fd77:1::10\]:\d+ -> \[fd77:9::9\]:8080 .* forwarded/);
  assert.match(readFileSync(router6Logs[1]!, "utf8"), /\[fd77:2::11\]:\d+ -> \[fd77:9::9\]:8080 .* forwarded/);
});
