// The admin endpoint as operators script against it, with Envoy's conventions: query strings,
// JSON formats, /config_dump, /server_info, POST-only endpoints that change state; the same rules
// on the egress router.
import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtempSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { toRunnerConfig } from "../src/envoy/load.js";
import { Allowlist } from "../src/egress/allowlist.js";
import { EgressRouter } from "../src/egress/router.js";
import { silentLogger } from "../src/logging.js";
import type { Runner } from "../src/runner/runner.js";
import { bootstrap, captureLogger, exchange, startRunner, startTagServer, staticCluster, tcpProxy, type TagServer } from "./net-helpers.js";

async function call(port: number | undefined, path: string, method = "GET"): Promise<{ status: number; body: string; type: string }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, { method });
  return { status: response.status, body: await response.text(), type: response.headers.get("content-type") ?? "" };
}

const MUTATING = ["/healthcheck/fail", "/healthcheck/ok", "/drain_listeners", "/logging?level=info", "/quitquitquit"];

describe("the runner's admin endpoint", () => {
  let backend: TagServer;
  let runner: Runner;
  let quits = 0;
  const { logger, lines } = captureLogger();
  before(async () => {
    backend = await startTagServer("b");
    runner = await startRunner(bootstrap([tcpProxy("backend")], [staticCluster("backend", backend.port)]), logger, { onQuit: () => quits++ });
    assert.equal((await exchange(runner.listenerPort("main"), "x")).reply, "b:x");
  });
  after(async () => {
    await runner.close();
    await backend.close();
  });
  const admin = (path: string, method?: string) => call(runner.adminPort, path, method);

  it("/stats?filter= keeps the stats whose names match the regular expression anywhere", async () => {
    const { body } = await admin("/stats?filter=upstream_cx_(total|active)$");
    assert.deepEqual(body.trim().split("\n"), ["cluster.backend.upstream_cx_active: 0", "cluster.backend.upstream_cx_total: 1"]);
    assert.equal((await admin("/stats?filter=(")).status, 400);
  });

  it("/stats?usedonly leaves out stats never written", async () => {
    const { body } = await admin("/stats?usedonly&filter=^cluster\\.");
    assert.match(body, /^cluster\.backend\.upstream_cx_total: 1$/m);
    assert.doesNotMatch(body, /upstream_cx_connect_fail/);
  });

  it("/stats?format=json is Envoy's {stats: [{name, value}]}", async () => {
    const { body, type } = await admin("/stats?format=json&filter=downstream_cx_total");
    assert.match(type, /application\/json/);
    assert.deepEqual(JSON.parse(body), { stats: [{ name: "listener.127.0.0.1_0.downstream_cx_total", value: 1 }, { name: "tcp.ingress.downstream_cx_total", value: 1 }] });
  });

  it("/stats?format=prometheus and /stats/prometheus?filter= take the same query", async () => {
    const viaStats = (await admin("/stats?format=prometheus&filter=upstream_cx_total")).body;
    assert.equal(viaStats, (await admin("/stats/prometheus?filter=upstream_cx_total")).body);
    assert.equal(viaStats, '# TYPE envoy_cluster_upstream_cx_total counter\nenvoy_cluster_upstream_cx_total{envoy_cluster_name="backend"} 1\n');
  });

  it("/clusters, as text and as Envoy's cluster_statuses JSON, with per-host counts", async () => {
    const text = (await admin("/clusters")).body;
    assert.match(text, new RegExp(`^backend::127\\.0\\.0\\.1:${backend.port}::cx_total::1$`, "m"));
    assert.match(text, /^backend::observability_name::backend$/m);
    const json = JSON.parse((await admin("/clusters?format=json")).body) as { cluster_statuses: { name: string; host_statuses: { address: unknown; stats: { name: string; value: string }[] }[] }[] };
    const [cluster] = json.cluster_statuses;
    assert.equal(cluster!.name, "backend");
    assert.deepEqual(cluster!.host_statuses[0]!.address, { socket_address: { address: "127.0.0.1", port_value: backend.port } });
    assert.equal(cluster!.host_statuses[0]!.stats.find((s) => s.name === "cx_total")?.value, "1");
  });

  it("/config_dump shows the configuration in force, its version, and one resource on request", async () => {
    const dump = JSON.parse((await admin("/config_dump")).body) as { configs: { "@type": string; version_info?: string; bootstrap?: { static_resources: unknown } }[] };
    assert.deepEqual(dump.configs.map((c) => c["@type"].split(".").pop()), ["BootstrapConfigDump", "ClustersConfigDump", "ListenersConfigDump"]);
    assert.ok(dump.configs[0]!.bootstrap?.static_resources !== undefined);
    const version = dump.configs[1]!.version_info;
    assert.match(version ?? "", /^[0-9a-f]{16}$/);
    const clusters = JSON.parse((await admin("/config_dump?resource=static_clusters")).body) as { configs: { cluster: { name: string } }[] };
    assert.deepEqual(clusters.configs.map((c) => c.cluster.name), ["backend"]);
    assert.equal((await admin("/config_dump?resource=dynamic_active_clusters")).status, 404);
    await runner.reload(toRunnerConfig(bootstrap([tcpProxy("backend", { stat_prefix: "renamed" })], [staticCluster("backend", backend.port)],
      { address: { socket_address: { address: "127.0.0.1", port_value: runner.listenerPort("main") } } }), "next.yaml"));
    const after = JSON.parse((await admin("/config_dump")).body) as { configs: { version_info?: string }[] };
    assert.notEqual(after.configs[1]!.version_info, version, "a reload shows the new version");
  });

  it("/server_info gives the version, state and uptime", async () => {
    const info = JSON.parse((await admin("/server_info")).body) as { version: string; state: string; uptime_current_epoch: string };
    assert.match(info.version, /^wasmerang\/\d+\.\d+\.\d+/);
    assert.equal(info.state, "LIVE");
    assert.match(info.uptime_current_epoch, /^\d+s$/);
  });

  it("endpoints that change state refuse GET with 405, as Envoy's", async () => {
    for (const path of MUTATING) {
      const reply = await admin(path);
      assert.equal(reply.status, 405, path);
      assert.equal(reply.body, "Method GET not allowed, POST required.\n");
    }
    assert.equal(quits, 0);
    assert.equal((await admin("/ready")).status, 200, "nothing changed");
  });

  it("POST /healthcheck/fail makes /ready answer DRAINING; /healthcheck/ok undoes it", async () => {
    assert.equal((await admin("/healthcheck/fail", "POST")).status, 200);
    assert.deepEqual(await admin("/ready").then((r) => [r.status, r.body]), [503, "DRAINING\n"]);
    assert.equal((JSON.parse((await admin("/server_info")).body) as { state: string }).state, "DRAINING");
    await admin("/healthcheck/ok", "POST");
    assert.deepEqual(await admin("/ready").then((r) => [r.status, r.body]), [200, "LIVE\n"]);
  });

  it("POST /logging?level= changes the process log level; an unknown level is refused", async () => {
    assert.equal((await admin("/logging?level=warning", "POST")).status, 200);
    assert.equal(logger.level, "warn");
    assert.equal((await admin("/logging?level=loud", "POST")).status, 400);
    assert.equal((await admin("/logging?level=debug", "POST")).status, 200);
    assert.equal(logger.level, "debug");
  });

  it("an unknown path is 404 with the list of endpoints", async () => {
    const reply = await admin("/nope");
    assert.equal(reply.status, 404);
    assert.match(reply.body, /^invalid path\. admin commands are:\n(.|\n)*\/config_dump/);
  });

  it("POST /drain_listeners stops accepting while open connections go on; /quitquitquit closes", async () => {
    const port = runner.listenerPort("main");
    const open = connect({ port, host: "127.0.0.1", allowHalfOpen: true });
    const chunks: Buffer[] = [];
    open.on("data", (chunk: Buffer) => chunks.push(chunk));
    await once(open, "connect");
    assert.equal((await admin("/drain_listeners", "POST")).status, 200);
    await assert.rejects(exchange(port, "late"), /ECONNREFUSED/);
    open.end("still");
    await once(open, "close");
    assert.equal(Buffer.concat(chunks).toString(), "b:still");
    assert.equal((await admin("/quitquitquit", "POST")).status, 200);
    for (let i = 0; i < 100 && quits === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(quits, 1);
    assert.ok(lines().some((l) => l.msg === "admin: quitquitquit"));
  });
});

describe("bootstrap fields operators' configs carry", () => {
  it("cluster_manager: {} is accepted; admin.access_log_path logs every admin request", async () => {
    const log = join(mkdtempSync(join(tmpdir(), "wasmerang-admin-log-")), "admin.log");
    const config = bootstrap([tcpProxy("b")], [staticCluster("b", 1)]) as { admin: object };
    const runner = await startRunner({ ...config, cluster_manager: {}, admin: { ...config.admin, access_log_path: log } });
    try {
      await call(runner.adminPort, "/ready");
      await call(runner.adminPort, "/stats?filter=x");
    } finally {
      await runner.close();
    }
    const logged = readFileSync(log, "utf8").trim().split("\n");
    assert.equal(logged.length, 2);
    assert.match(logged[1]!, /"GET \/stats\?filter=x HTTP\/1\.1" 200 /);
  });

  it("dns_lookup_family: V4_ONLY resolves a name to IPv4 addresses only", async () => {
    const runner = await startRunner(bootstrap([tcpProxy("b")], [{ ...staticCluster("b", 9), type: "STRICT_DNS", dns_lookup_family: "V4_ONLY",
      load_assignment: { cluster_name: "b", endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: "localhost", port_value: 9 } } } }] }] } }]));
    try {
      const json = JSON.parse((await call(runner.adminPort, "/clusters?format=json")).body) as { cluster_statuses: { host_statuses: { address: { socket_address: { address: string } } }[] }[] };
      const addresses = json.cluster_statuses[0]!.host_statuses.map((h) => h.address.socket_address.address);
      assert.ok(addresses.length > 0 && addresses.every((a) => /^\d+\.\d+\.\d+\.\d+$/.test(a)), addresses.join(" "));
    } finally {
      await runner.close();
    }
  });
});

describe("the egress router's admin endpoint follows the same rules", () => {
  let router: EgressRouter;
  let quits = 0;
  before(async () => {
    router = await EgressRouter.start({
      listen: { address: "127.0.0.1", port: 0 }, admin: { address: "127.0.0.1", port: 0 }, allowlist: Allowlist.parse(["10.0.0.0/8:443"]),
      headerTimeoutMs: 1000, connectTimeoutMs: 1000, maxConnections: 10, logger: silentLogger, onQuit: () => quits++,
    });
  });
  after(() => router.close());

  it("GET on mutating endpoints is 405; /stats takes its query; /config_dump shows the allowlist", async () => {
    for (const path of MUTATING) assert.equal((await call(router.adminPort, path)).status, 405, path);
    assert.equal(quits, 0);
    const stats = JSON.parse((await call(router.adminPort, "/stats?format=json&filter=^egress\\.denied$")).body) as unknown;
    assert.deepEqual(stats, { stats: [{ name: "egress.denied", value: 0 }] });
    const dump = JSON.parse((await call(router.adminPort, "/config_dump")).body) as { allow: string[]; effective_max_connections: number };
    assert.deepEqual(dump.allow, ["10.0.0.0/8:443"]);
    assert.equal(dump.effective_max_connections, 10);
    assert.equal((await call(router.adminPort, "/healthcheck/fail", "POST")).status, 200);
    assert.equal((await call(router.adminPort, "/ready")).status, 503);
  });
});
