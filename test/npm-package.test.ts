// Wasmerang as a package: packed, installed in an empty directory with no repository above it,
// a filter project scaffolded with `wasmerang init`, built, its harness test run, its envoy.yaml
// served with `wasmerang run` and a connection sent through; and installed with no C compiler,
// where the CLI still works. npm takes the dependencies from its cache where it can.
import assert from "node:assert/strict";
import { spawn, spawnSync, type SpawnSyncReturns } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { REPO } from "./helpers.js";
import { exchange, freePort, startEchoServer, stopServer } from "./net-helpers.js";

const NPM_INSTALL = ["install", "--prefer-offline", "--no-audit", "--no-fund"];

/** This process's environment without the test runner's marker, which would make a child `node --test` report to us. */
function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  delete env.NODE_TEST_CONTEXT;
  return env;
}

function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): SpawnSyncReturns<string> {
  const result = spawnSync(command, args, { cwd, encoding: "utf8", env: childEnv(env), timeout: 240_000 });
  assert.equal(result.status, 0, `${command} ${args.join(" ")} in ${cwd}:\n${result.stdout}\n${result.stderr}`);
  return result;
}

describe("the package", { timeout: 600_000 }, () => {
  let tarball: string;
  let work: string;

  before(() => {
    work = mkdtempSync(join(tmpdir(), "wasmerang-package-"));
    run("npm", ["pack", "--pack-destination", work], REPO);
    tarball = join(work, readdirSync(work).find((name) => name.endsWith(".tgz"))!);
  });

  it("installs, scaffolds a filter with init, builds and tests it, and serves its envoy.yaml", async () => {
    const app = join(work, "app");
    run("mkdir", ["-p", app], work);
    run("npm", [...NPM_INSTALL, tarball], app);
    const cli = join(app, "node_modules", ".bin", "wasmerang");
    run(cli, ["init", "myfilter"], app);
    const project = join(app, "myfilter");
    run("npm", NPM_INSTALL, project);
    assert.match(run("npm", ["test"], project).stdout, /# pass 1/);

    // The filter's choice must decide: tcp_proxy's own cluster goes nowhere.
    const backend = await startEchoServer();
    const [listen, nowhere] = [await freePort(), await freePort()];
    const envoy = readFileSync(join(project, "envoy.yaml"), "utf8").replace("port_value: 10000", `port_value: ${listen}`)
      .replace("port_value: 9901", "port_value: 0").replace("port_value: 8080", `port_value: ${backend.port}`)
      .replace("port_value: 8443", `port_value: ${nowhere}`).replace("cluster: external\n", "cluster: internal\n");
    writeFileSync(join(project, "envoy.yaml"), envoy);
    const runner = spawn(cli, ["run", "-c", "envoy.yaml"], { cwd: project, stdio: ["ignore", "pipe", "pipe"], env: childEnv() });
    try {
      let output = "";
      await new Promise<void>((resolve, reject) => {
        const onData = (chunk: Buffer) => {
          output += chunk.toString();
          if (output.includes(`listener 'main' on 127.0.0.1:${listen}`)) resolve();
        };
        runner.stdout.on("data", onData);
        runner.stderr.on("data", onData);
        runner.on("exit", () => reject(new Error(`wasmerang run exited:\n${output}`)));
      });
      assert.equal((await exchange(listen, "through")).reply, "through");
    } finally {
      runner.kill("SIGTERM");
      await stopServer(backend);
    }
  });

  it("installs without a C compiler; the CLI works, without the native addon", () => {
    const app = join(work, "no-compiler");
    run("mkdir", ["-p", app], work);
    run("npm", [...NPM_INSTALL, tarball], app, { CC: "/nonexistent/cc", CXX: "/nonexistent/c++" });
    const cli = join(app, "node_modules", ".bin", "wasmerang");
    assert.equal(run(cli, ["--version"], app).stdout.trim(), JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")).version);
    assert.match(run(cli, ["validate", join(app, "node_modules", "wasmerang", "examples", "local", "envoy.yaml"), "--module",
      join(app, "node_modules", "wasmerang", "dist", "wasmerang.wasm")], app).stdout, /envoy\.yaml: OK/);
    assert.throws(() => readdirSync(join(app, "node_modules", "wasmerang", "native", "build", "Release")));
  });

});
