// One VM per vm key (vm_id, VM configuration, code) and one root context per plugin inside it, as
// an Envoy worker holds them (proxy-wasm-cpp-host src/wasm.cc): the module below logs when it is
// initialized, configured, and counts connections in a VM-wide global, so the logs show which
// filters share a VM and a root context, across reloads and after a trap. A plugin joining a
// running VM is first configured in a throwaway VM (cpp-host's canary): its "initialize" and
// "configure" lines come first, as in Envoy's log.
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { toRunnerConfig } from "../src/envoy/load.js";
import type { Runner } from "../src/runner/runner.js";
import { BUMP_MALLOC, compileWat } from "./fixtures/wat.js";
import { bootstrap, captureLogger, exchange, startRunner, staticCluster, tagServers, tcpProxy, wasmFilter } from "./net-helpers.js";

/**
 * Logs "initialize" from _initialize and "configure" from each root's configure; refuses the
 * configuration "refuse" (6 bytes); the configuration "trap" (4 bytes) arms a VM-wide switch
 * that makes every later connection trap. Each connection logs "connection N", N counting the
 * VM's connections.
 */
const COUNTING_MODULE = `(module
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 1000) "initialize")
  (data (i32.const 1020) "configure")
  (data (i32.const 1116) "connection 1")
  (data (i32.const 1132) "connection 2")
  (data (i32.const 1148) "connection 3")
  (data (i32.const 1164) "connection 4")
  (global $connections (mut i32) (i32.const 0))
  (global $trapping (mut i32) (i32.const 0))
  ${BUMP_MALLOC}
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "_initialize") (drop (call $log (i32.const 2) (i32.const 1000) (i32.const 10))))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param $root i32) (param $size i32) (result i32)
    (drop (call $log (i32.const 2) (i32.const 1020) (i32.const 9)))
    (if (i32.eq (local.get $size) (i32.const 4)) (then (global.set $trapping (i32.const 1))))
    (i32.ne (local.get $size) (i32.const 6)))
  (func (export "proxy_on_new_connection") (param i32) (result i32)
    (if (global.get $trapping) (then unreachable))
    (global.set $connections (i32.add (global.get $connections) (i32.const 1)))
    (drop (call $log (i32.const 2) (i32.add (i32.const 1100) (i32.mul (global.get $connections) (i32.const 16))) (i32.const 12)))
    (i32.const 0))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_delete") (param i32)))`;

const dir = mkdtempSync(join(tmpdir(), "wasmerang-vm-sharing-"));
const modulePath = join(dir, "counting.wasm");
let compiled: Promise<void> | undefined;

async function moduleFile(): Promise<string> {
  compiled ??= compileWat("counting.wat", COUNTING_MODULE).then((bytes) => writeFileSync(modulePath, bytes));
  await compiled;
  return modulePath;
}

function countingFilter(name: string, vmId: string, configuration = "ok"): object {
  return wasmFilter(modulePath, configuration, { name, vm_config: { vm_id: vmId, runtime: "envoy.wasm.runtime.v8", code: { local: { filename: modulePath } } } });
}

describe("VMs and root contexts shared as on an Envoy worker", () => {
  const routers = tagServers("r1");
  const config = (filters: object[]) => bootstrap([...filters, tcpProxy("egress-router1")], [staticCluster("egress-router1", routers[0]!.port)]);
  const moduleLines = (lines: () => { msg: string; plugin?: unknown }[]) => lines().filter((line) => line.plugin !== undefined).map((line) => `${String(line.plugin)}: ${line.msg}`);

  async function withRunner(filters: object[], body: (runner: Runner, lines: () => string[]) => Promise<void>): Promise<void> {
    await moduleFile();
    const capture = captureLogger();
    const runner = await startRunner(config(filters), capture.logger, { wasmLogLevel: "info" });
    try {
      await body(runner, () => moduleLines(capture.lines));
    } finally {
      await runner.close();
    }
  }

  const reload = (runner: Runner, filters: object[]) => runner.reload(toRunnerConfig(config(filters), "reloaded.yaml"));

  it("two filters with the same vm_id and code run in one VM, each with its own root context", async () => {
    await withRunner([countingFilter("a", "shared"), countingFilter("b", "shared")], async (runner, lines) => {
      assert.equal((await exchange(runner.listenerPort("main"), "x")).reply, "r1:x");
      assert.deepEqual(lines(), ["a: initialize", "a: configure", "b: initialize", "b: configure", "b: configure", "a: connection 1", "b: connection 2"]);
    });
  });

  it("a different vm_id is a VM of its own", async () => {
    await withRunner([countingFilter("a", "one"), countingFilter("b", "two")], async (runner, lines) => {
      assert.equal((await exchange(runner.listenerPort("main"), "x")).reply, "r1:x");
      assert.deepEqual(lines(), ["a: initialize", "a: configure", "b: initialize", "b: configure", "a: connection 1", "b: connection 1"]);
    });
  });

  it("identical filters share one root context: configured once", async () => {
    await withRunner([countingFilter("a", "shared"), countingFilter("a", "shared")], async (runner, lines) => {
      assert.equal((await exchange(runner.listenerPort("main"), "x")).reply, "r1:x");
      assert.deepEqual(lines(), ["a: initialize", "a: configure", "a: connection 1", "a: connection 2"]);
    });
  });

  it("a reload keeps the VM: an unchanged plugin is not configured again, a changed one gets a new root context", async () => {
    await withRunner([countingFilter("a", "vm")], async (runner, lines) => {
      await exchange(runner.listenerPort("main"), "x");
      await reload(runner, [countingFilter("a", "vm")]);
      await exchange(runner.listenerPort("main"), "x");
      await reload(runner, [countingFilter("a", "vm", "changed")]);
      await exchange(runner.listenerPort("main"), "x");
      assert.deepEqual(lines(), ["a: initialize", "a: configure", "a: connection 1", "a: connection 2", "a: initialize", "a: configure", "a: configure", "a: connection 3"]);
    });
  });

  it("a configuration the module refuses is tried in a VM of its own: the reload fails and the running VM is untouched", async () => {
    await withRunner([countingFilter("a", "vm")], async (runner, lines) => {
      await exchange(runner.listenerPort("main"), "x");
      await assert.rejects(reload(runner, [countingFilter("a", "vm", "refuse")]), /proxy_on_configure rejected the configuration/);
      assert.equal((await exchange(runner.listenerPort("main"), "y")).reply, "r1:y");
      assert.deepEqual(lines().slice(-1), ["a: connection 2"]);
    });
  });

  for (const singleton of [false, true]) {
    it(`a bootstrap Wasm service ${singleton ? "with singleton runs in a main-thread VM of its own" : "without singleton runs in the workers' VM it shares with the filters"}`, async () => {
      await moduleFile();
      const withService = config([countingFilter("a", "vm")]) as { bootstrap_extensions?: object[] };
      withService.bootstrap_extensions = [{ name: "envoy.bootstrap.wasm", typed_config: { "@type": "type.googleapis.com/envoy.extensions.wasm.v3.WasmService",
        singleton, config: { name: "s", configuration: { "@type": "type.googleapis.com/google.protobuf.StringValue", value: "trap" },
          vm_config: { vm_id: "vm", runtime: "envoy.wasm.runtime.v8", code: { local: { filename: modulePath } } } } } }];
      const runner = await startRunner(withService);
      try {
        // The service's configuration arms the trap in its VM: only a filter in that VM trips it.
        const exchanged = await exchange(runner.listenerPort("main"), "x");
        assert.equal(exchanged.closedEmpty, !singleton);
      } finally {
        await runner.close();
      }
    });
  }

  it("after a trap the failed VM serves no new plugin: the next reload starts a fresh VM", async () => {
    await withRunner([countingFilter("a", "vm")], async (runner, lines) => {
      await exchange(runner.listenerPort("main"), "x");
      await reload(runner, [countingFilter("a", "vm", "trap")]);
      assert.ok((await exchange(runner.listenerPort("main"), "x")).closedEmpty, "the trap closes the connection (fail closed)");
      await reload(runner, [countingFilter("a", "vm", "new")]);
      assert.equal((await exchange(runner.listenerPort("main"), "z")).reply, "r1:z");
      const afterTrap = lines().slice(lines().lastIndexOf("a: configure") - 1);
      assert.deepEqual(afterTrap, ["a: initialize", "a: configure", "a: connection 1"]);
    });
  });
});
