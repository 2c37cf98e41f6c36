// Shared queues as Envoy keeps them: a bootstrap Wasm service registers a queue under its vm_id,
// a network filter in another VM resolves it by that vm_id and enqueues, and the service hears of
// each item through proxy_on_queue_ready and dequeues it.
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { BUMP_MALLOC, compileWat } from "./fixtures/wat.js";
import { adminGet, bootstrap, exchange, startRunner, staticCluster, tagServers, tcpProxy, wasmFilter } from "./net-helpers.js";

const ROOT_CALLBACKS = `(func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_delete") (param i32))`;

/** Registers queue "q" at configure, counts each item it dequeues in metric "received". */
const RECEIVER = `(module
  (import "env" "proxy_register_shared_queue" (func $register (param i32 i32 i32) (result i32)))
  (import "env" "proxy_dequeue_shared_queue" (func $dequeue (param i32 i32 i32) (result i32)))
  (import "env" "proxy_define_metric" (func $define (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_increment_metric" (func $increment (param i32 i64) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 1000) "q")
  (data (i32.const 1010) "received")
  ${BUMP_MALLOC}
  ${ROOT_CALLBACKS}
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (drop (call $define (i32.const 0) (i32.const 1010) (i32.const 8) (i32.const 2008)))
    (drop (call $register (i32.const 1000) (i32.const 1) (i32.const 2016))) (i32.const 1))
  (func (export "proxy_on_queue_ready") (param $id i32) (param $token i32)
    (if (i32.eqz (call $dequeue (local.get $token) (i32.const 2000) (i32.const 2004)))
      (then (drop (call $increment (i32.load (i32.const 2008)) (i64.const 1)))))))`;

/** Resolves queue "q" of vm_id "receiver" on each new connection and enqueues "hi". */
const SENDER = `(module
  (import "env" "proxy_resolve_shared_queue" (func $resolve (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_enqueue_shared_queue" (func $enqueue (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 1000) "q")
  (data (i32.const 1010) "receiver")
  (data (i32.const 1020) "hi")
  ${BUMP_MALLOC}
  ${ROOT_CALLBACKS}
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_new_connection") (param i32) (result i32)
    (if (i32.eqz (call $resolve (i32.const 1010) (i32.const 8) (i32.const 1000) (i32.const 1) (i32.const 2016)))
      (then (drop (call $enqueue (i32.load (i32.const 2016)) (i32.const 1020) (i32.const 2)))))
    (i32.const 0)))`;

describe("shared queues across VMs", () => {
  const routers = tagServers("r1");

  it("a filter enqueues to a service's queue by its vm_id; the service is told and dequeues", async () => {
    const dir = mkdtempSync(join(tmpdir(), "wasmerang-queue-"));
    const receiver = join(dir, "receiver.wasm");
    const sender = join(dir, "sender.wasm");
    writeFileSync(receiver, await compileWat("receiver.wat", RECEIVER));
    writeFileSync(sender, await compileWat("sender.wat", SENDER));
    const vm = (vmId: string, filename: string) => ({ vm_config: { vm_id: vmId, runtime: "envoy.wasm.runtime.v8", code: { local: { filename } } } });
    const config = bootstrap([wasmFilter(sender, "", vm("sender", sender)), tcpProxy("egress-router1")], [staticCluster("egress-router1", routers[0]!.port)]) as
      { bootstrap_extensions?: object[] };
    config.bootstrap_extensions = [{ name: "envoy.bootstrap.wasm", typed_config: { "@type": "type.googleapis.com/envoy.extensions.wasm.v3.WasmService",
      singleton: true, config: { name: "receiver", ...vm("receiver", receiver) } } }];
    const runner = await startRunner(config);
    try {
      assert.equal((await exchange(runner.listenerPort("main"), "one")).reply, "r1:one");
      assert.equal((await exchange(runner.listenerPort("main"), "two")).reply, "r1:two");
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.match((await adminGet(runner, "/stats")).body, /^wasmcustom\.received: 2$/m);
    } finally {
      await runner.close();
    }
  });
});
