// The network filter's callbacks as Envoy's Wasm network filter makes them
// (source/extensions/common/wasm/context.cc): the upstream's end of stream arrives through
// on_upstream_data with end_of_stream, what the filter writes then reaches the client before the
// end, and the upstream close follows at once with peer Unknown; teardown brings only the
// downstream close.
import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { BufferType } from "../src/host/abi.js";
import { FilterHarness } from "../src/host/harness.js";
import { BUMP_MALLOC, compileWat } from "./fixtures/wat.js";
import { adminGet, bootstrap, exchange, startRunner, staticCluster, tcpProxy, wasmFilter } from "./net-helpers.js";

/** Counts upstream closes by peer (metrics close.unknown, close.local, close.remote) and downstream closes; appends "bye" at the upstream's end. */
async function closeWatcher(): Promise<Uint8Array> {
  return compileWat("close-watcher.wat", `(module
  (import "env" "proxy_define_metric" (func $define (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_increment_metric" (func $increment (param i32 i64) (result i32)))
  (import "env" "proxy_set_buffer_bytes" (func $set (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 1000) "close.unknownclose.local  close.remote downstream.close")
  (data (i32.const 1100) "bye")
  ${BUMP_MALLOC}
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (drop (call $define (i32.const 0) (i32.const 1000) (i32.const 13) (i32.const 2000)))
    (drop (call $define (i32.const 0) (i32.const 1013) (i32.const 11) (i32.const 2004)))
    (drop (call $define (i32.const 0) (i32.const 1026) (i32.const 12) (i32.const 2008)))
    (drop (call $define (i32.const 0) (i32.const 1039) (i32.const 16) (i32.const 2012)))
    (i32.const 1))
  (func (export "proxy_on_new_connection") (param i32) (result i32) (i32.const 0))
  (func (export "proxy_on_upstream_data") (param $id i32) (param $size i32) (param $end i32) (result i32)
    (if (local.get $end) (then (drop (call $set (i32.const ${BufferType.UpstreamData}) (local.get $size) (i32.const 0) (i32.const 1100) (i32.const 3)))))
    (i32.const 0))
  (func (export "proxy_on_upstream_connection_close") (param $id i32) (param $peer i32)
    (drop (call $increment (i32.load (i32.add (i32.const 2000) (i32.mul (local.get $peer) (i32.const 4)))) (i64.const 1))))
  (func (export "proxy_on_downstream_connection_close") (param i32 i32)
    (drop (call $increment (i32.load (i32.const 2012)) (i64.const 1))))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_delete") (param i32)))`);
}

describe("network callbacks in Envoy's order", () => {
  it("in the harness: upstream close with peer Unknown right after the upstream's end of stream, none at teardown", async () => {
    const filter = await FilterHarness.load({ module: await closeWatcher() });
    const connection = filter.connect({ source: "10.0.0.1:1000", destination: "10.0.0.2:80" });
    connection.upstream("x", false);
    assert.equal(filter.metric("close.unknown"), 0);
    assert.equal(connection.upstream("", true).data.toString(), "bye");
    assert.equal(filter.metric("close.unknown"), 1);
    connection.close();
    assert.equal(filter.metric("close.unknown"), 1);
    assert.equal(filter.metric("close.local"), 0);
    assert.equal(filter.metric("close.remote"), 0);
    assert.equal(filter.metric("downstream.close"), 1);
  });

  it("in the runner: what the filter writes at the upstream's end of stream reaches the client", async () => {
    const dir = mkdtempSync(join(tmpdir(), "wasmerang-callbacks-"));
    const module = join(dir, "close-watcher.wasm");
    writeFileSync(module, await closeWatcher());
    const backend = createServer((socket) => socket.end("hi ")).listen(0, "127.0.0.1");
    await once(backend, "listening");
    const runner = await startRunner(bootstrap([wasmFilter(module, ""), tcpProxy("up")], [staticCluster("up", (backend.address() as AddressInfo).port)]));
    try {
      assert.equal((await exchange(runner.listenerPort("main"), "")).reply, "hi bye");
      await new Promise((resolve) => setTimeout(resolve, 50));
      const stats = (await adminGet(runner, "/stats")).body;
      assert.match(stats, /close\.unknown: 1$/m);
      assert.match(stats, /close\.remote: 0$/m);
    } finally {
      await runner.close();
      backend.close();
    }
  });
});
