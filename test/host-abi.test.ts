// The host's ABI surface as proxy-wasm-cpp-host presents it: unsigned arguments, the imports of
// each ABI version, the WASI functions other SDKs' modules import, and how a module is started.
// The modules are written here in WebAssembly text, each reproducing one SDK's pattern.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { inflateSync } from "node:zlib";
import { BufferType, WasmResult, type WasmResultCode } from "../src/host/abi.js";
import { BaseHostContext } from "../src/host/context.js";
import { GrpcCalls } from "../src/host/grpc-call.js";
import { HttpCalls } from "../src/host/http-call.js";
import { createImports, ProcExit, RestrictedCallError, type AbiHost } from "../src/host/imports.js";
import { GuestMemory, GuestMemoryError } from "../src/host/memory.js";
import { MetricRegistry } from "../src/host/metrics.js";
import { Plugin, PluginConfigError } from "../src/host/plugin.js";
import { SharedData, SharedQueues } from "../src/host/shared-data.js";
import { BUMP_MALLOC, compileWat } from "./fixtures/wat.js";

/** Records every number the host hands the context, to prove none arrives negative. */
class RecordingContext extends BaseHostContext {
  readonly id = 1;
  readonly isRoot = false;
  readonly seen: number[] = [];

  override buffer(type: number): Buffer | undefined {
    this.seen.push(type);
    return Buffer.from("0123456789");
  }

  override setBuffer(type: number, start: number, size: number): WasmResultCode {
    this.seen.push(type, start, size);
    return WasmResult.Ok;
  }

  override closeStream(type: number): WasmResultCode {
    this.seen.push(type);
    return WasmResult.Ok;
  }

  override continueStream(type: number): WasmResultCode {
    this.seen.push(type);
    return WasmResult.Ok;
  }

  override headers(type: number): [string, string][] | undefined {
    this.seen.push(type);
    return [];
  }
}

function fakeHost(context: RecordingContext): AbiHost & { ticks: number[] } {
  const memory = new WebAssembly.Memory({ initial: 1 });
  const ticks: number[] = [];
  return {
    memory: new GuestMemory(memory, () => 16, 2 ** 30),
    restricted: false,
    metrics: new MetricRegistry(),
    shared: new SharedData(),
    queues: new SharedQueues(),
    vmId: "",
    effective: () => context,
    setEffectiveContext: () => 0,
    log: () => undefined,
    logLevel: () => 2,
    setTickPeriod: (ms) => ticks.push(ms),
    done: () => 0,
    pluginConfiguration: () => Buffer.from("config"),
    httpCalls: new HttpCalls(undefined, () => true),
    grpcCalls: new GrpcCalls(undefined, () => true),
    ticks,
  } as AbiHost & { ticks: number[] };
}

describe("host imports: every i32 argument is unsigned", () => {
  // 0xFFFFFFFE as V8 hands it to JavaScript: -2.
  const HIGH = -2;
  const imports = createImports(fakeHost(new RecordingContext()), "0.2.1");
  for (const [module, functions] of Object.entries(imports)) {
    if (module === "wasi_unstable") continue;
    for (const [name, fn] of Object.entries(functions)) {
      it(`${module}.${name}`, () => {
        const context = new RecordingContext();
        const host = fakeHost(context);
        const call = createImports(host, "0.2.1")[module]![name]! as (...args: number[]) => unknown;
        try {
          call(...Array.from({ length: 12 }, () => HIGH));
        } catch (error) {
          if (error instanceof GuestMemoryError) assert.doesNotMatch(error.message, /-\d/, error.message);
          else assert.ok(error instanceof ProcExit, `${name}: ${(error as Error).message}`);
          if (error instanceof ProcExit) assert.equal(error.code, 2 ** 32 - 2);
        }
        for (const value of [...context.seen, ...host.ticks]) assert.ok(value >= 0, `${name} passed ${value} on`);
        assert.equal(typeof fn, "function");
      });
    }
  }

  it("a buffer read of usize::MAX bytes returns the whole buffer (the Rust SDK reads its configuration so)", () => {
    const context = new RecordingContext();
    const host = fakeHost(context);
    const getBufferBytes = createImports(host, "0.2.1").env!.proxy_get_buffer_bytes! as (...args: number[]) => number;
    assert.equal(getBufferBytes(BufferType.PluginConfiguration, 0, -1, 100, 104), 0);
    const view = Buffer.from((host.memory as unknown as { memory: WebAssembly.Memory }).memory.buffer);
    assert.equal(view.readUInt32LE(104), 10);
    assert.equal(view.toString("utf8", view.readUInt32LE(100), view.readUInt32LE(100) + 10), "0123456789");
  });
});

describe("host imports per ABI version, as cpp-host registers them", () => {
  const names = (version: string) => new Set(Object.keys(createImports(fakeHost(new RecordingContext()), version).env!));
  it("0.2.1 has continue_stream, close_stream and get_log_level; not the 0.1.0 functions", () => {
    const env = names("0.2.1");
    for (const name of ["proxy_continue_stream", "proxy_close_stream", "proxy_get_log_level"]) assert.ok(env.has(name), name);
    for (const name of ["proxy_get_configuration", "proxy_continue_request", "proxy_continue_response", "proxy_clear_route_cache"]) assert.ok(!env.has(name), name);
  });
  it("0.2.0 has no get_log_level", () => {
    assert.ok(!names("0.2.0").has("proxy_get_log_level"));
    assert.ok(names("0.2.0").has("proxy_continue_stream"));
  });
  it("0.1.0 has get_configuration and continue_request, no continue_stream", () => {
    const env = names("0.1.0");
    assert.ok(env.has("proxy_get_configuration") && env.has("proxy_continue_request") && env.has("proxy_clear_route_cache"));
    assert.ok(!env.has("proxy_continue_stream") && !env.has("proxy_get_log_level"));
  });
});

interface ModuleShape {
  abi?: string;
  imports?: string;
  start?: string;
  body?: string;
  configure?: string;
}

/** A minimal module: bump allocator, the ABI export, a start function, configure. */
async function moduleOf(shape: ModuleShape): Promise<Uint8Array> {
  const text = `(module
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  ${shape.imports ?? ""}
  (memory (export "memory") 1)
  (data (i32.const 1024) "main ran")
  ${BUMP_MALLOC}
  (func (export "proxy_abi_version_${shape.abi ?? "0_2_1"}"))
  ${shape.start ?? ""}
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param $id i32) (param $size i32) (result i32) ${shape.configure ?? ""} (i32.const 1))
  ${shape.body ?? ""})`;
  return compileWat("module.wat", text);
}

async function load(code: Uint8Array, configuration = ""): Promise<{ plugin: Plugin; logs: string[] }> {
  const logs: string[] = [];
  const plugin = await Plugin.load({ name: "p", rootId: "", vmId: "", source: "test", code, configuration: Buffer.from(configuration),
    vmConfiguration: Buffer.alloc(0), failOpen: false }, { log: (record) => logs.push(record.message), logLevel: "trace" });
  return { plugin, logs };
}

describe("modules as other SDKs build them", () => {
  it("the Rust SDK's configuration read (usize::MAX bytes) gets every byte", async () => {
    const { plugin, logs } = await load(await moduleOf({
      imports: `(import "env" "proxy_get_buffer_bytes" (func $get (param i32 i32 i32 i32 i32) (result i32)))`,
      configure: `(drop (call $get (i32.const ${BufferType.PluginConfiguration}) (i32.const 0) (i32.const -1) (i32.const 2000) (i32.const 2004)))
        (drop (call $log (i32.const 2) (i32.load (i32.const 2000)) (i32.load (i32.const 2004))))`,
    }), "standalone");
    plugin.close();
    assert.deepEqual(logs, ["standalone"]);
  });

  it("a Go wasip1 reactor: WASI imports Go's runtime needs, _initialize then main", async () => {
    const wasi = ["fd_fdstat_set_flags (param i32 i32)", "sched_yield", "poll_oneoff (param i32 i32 i32 i32)", "fd_write (param i32 i32 i32 i32)",
      "clock_time_get (param i32 i64 i32)", "random_get (param i32 i32)", "args_sizes_get (param i32 i32)", "environ_get (param i32 i32)",
      "fd_prestat_get (param i32 i32)", "fd_close (param i32)", "path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32)"]
      .map((signature) => {
        const [name, params = ""] = signature.split(/ (?=\()/);
        return `(import "wasi_snapshot_preview1" "${name}" (func $${name} ${params} (result i32)))`;
      }).join("\n  ");
    const { plugin, logs } = await load(await moduleOf({
      imports: wasi,
      start: `(func (export "_initialize") (drop (call $clock_time_get (i32.const 0) (i64.const 1) (i32.const 3000))) (drop (call $random_get (i32.const 3000) (i32.const 8))))
        (func (export "main") (param i32 i32) (result i32) (drop (call $log (i32.const 2) (i32.const 1024) (i32.const 8))) (i32.const 0))`,
      configure: "(drop (call $fd_fdstat_set_flags (i32.const 1) (i32.const 4))) (drop (call $sched_yield))",
    }));
    plugin.close();
    assert.deepEqual(logs, ["main ran"]);
  });

  it("a call outside cpp-host's start-time allowlist fails the start, naming it", async () => {
    await assert.rejects(load(await moduleOf({
      imports: `(import "wasi_snapshot_preview1" "sched_yield" (func $yield (result i32)))`,
      start: `(func (export "_initialize") (drop (call $yield)))`,
    })), (error: Error) => error instanceof PluginConfigError && /_initialize failed: WASI sched_yield called while the VM starts/.test(error.message));
    assert.ok(RestrictedCallError);
  });

  it("an emscripten module (emscripten_notify_memory_growth, _start) loads", async () => {
    const { plugin } = await load(await moduleOf({
      imports: `(import "env" "emscripten_notify_memory_growth" (func $grown (param i32)))`,
      start: `(func (export "_start"))`,
    }));
    plugin.close();
  });

  it("an ABI 0.1.0 module loads with proxy_get_configuration", async () => {
    const { plugin, logs } = await load(await moduleOf({
      abi: "0_1_0",
      imports: `(import "env" "proxy_get_configuration" (func $configuration (param i32 i32) (result i32)))`,
      configure: `(drop (call $configuration (i32.const 2000) (i32.const 2004))) (drop (call $log (i32.const 2) (i32.load (i32.const 2000)) (i32.load (i32.const 2004))))`,
    }), "old");
    plugin.close();
    assert.equal(plugin.abiVersion, "0.1.0");
    assert.deepEqual(logs, ["old"]);
  });

  it("a 0.2.0 module importing a 0.2.1 function is refused, as Envoy refuses to link it", async () => {
    await assert.rejects(load(await moduleOf({
      abi: "0_2_0",
      imports: `(import "env" "proxy_get_log_level" (func $level (param i32) (result i32)))`,
    })), /imports functions no proxy-wasm host provides: env\.proxy_get_log_level/);
  });
});

describe("Envoy's built-in foreign functions", () => {
  const context = new RecordingContext();
  it("compress writes the zlib format, uncompress reads it back", () => {
    const text = Buffer.from("hello hello hello hello");
    const compressed = context.callForeign("compress", text);
    assert.equal(compressed.status, WasmResult.Ok);
    assert.equal(compressed.data![0], 0x78, "a zlib header, as compress2 writes");
    assert.deepEqual(inflateSync(compressed.data!), text);
    assert.deepEqual(context.callForeign("uncompress", Buffer.from(compressed.data!)), { status: WasmResult.Ok, data: text });
  });
  it("uncompress refuses what is not zlib data", () => {
    assert.equal(context.callForeign("uncompress", Buffer.from("plain")).status, WasmResult.SerializationFailure);
  });
  it("clear_route_cache and declare_property answer Ok; a malformed declaration and an unknown name do not", () => {
    assert.equal(context.callForeign("clear_route_cache", Buffer.alloc(0)).status, WasmResult.Ok);
    assert.equal(context.callForeign("declare_property", Buffer.from([0x0a, 0x03, 0x61, 0x62, 0x63])).status, WasmResult.Ok);
    assert.equal(context.callForeign("declare_property", Buffer.from([0x0a, 0x09, 0x61])).status, WasmResult.BadArgument);
    assert.equal(context.callForeign("no_such_function", Buffer.alloc(0)).status, WasmResult.NotFound);
  });
});
