// HTTP bodies with Envoy's filter-manager semantics: a filter that pauses on a body chunk gets the
// whole body held so far on its next call (StopIterationAndBuffer), can read, replace or refuse it,
// and the buffer limit answers 413; a local response or a failure in the response phase replaces
// the upstream's response. The modules are written here in WebAssembly text.
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { once } from "node:events";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { BufferType } from "../src/host/abi.js";
import type { Runner } from "../src/runner/runner.js";
import { BUMP_MALLOC, compileWat } from "./fixtures/wat.js";
import { get, httpBootstrap, httpWasm, upstream } from "./http-helpers.js";
import { adminGet, captureLogger, staticCluster, startRunner } from "./net-helpers.js";

const dir = mkdtempSync(join(tmpdir(), "wasmerang-http-body-"));

type BodyMode = "json-gate" | "redact" | "redact-unframed" | "hold-all" | "respond-in-response" | "trap-in-response";

/** A body filter; sets x-wasmerang-cluster: egress-router1 on the request headers so the route finds a cluster. */
async function bodyModule(mode: BodyMode): Promise<string> {
  const localResponse = (status: number) =>
    `(drop (call $respond (i32.const ${status}) (i32.const 1100) (i32.const 7) (i32.const 1200) (i32.const 12) (i32.const 0) (i32.const 0) (i32.const -1)))`;
  const redactBody = `(if (i32.eqz (local.get $end)) (then (return (i32.const 1))))
      (drop (call $set (i32.const ${BufferType.HttpRequestBody}) (i32.const 0) (local.get $size) (i32.const 1300) (i32.const 10))) (i32.const 0)`;
  // Envoy keeps a content-length the filters leave: a filter that changes the body's length removes it.
  const unframe = mode === "redact-unframed" ? "(drop (call $remove (i32.const 0) (i32.const 1400) (i32.const 14)))" : "";
  const requestBody = {
    "json-gate": `(if (i32.eqz (local.get $end)) (then (return (i32.const 1))))
      (drop (call $get (i32.const ${BufferType.HttpRequestBody}) (i32.const 0) (local.get $size) (i32.const 2000) (i32.const 2004)))
      (if (i32.eq (i32.load8_u (i32.load (i32.const 2000))) (i32.const 123)) (then (return (i32.const 0))))
      ${localResponse(400)} (i32.const 1)`,
    redact: redactBody,
    "redact-unframed": redactBody,
    "hold-all": "(i32.const 1)",
    "respond-in-response": "(i32.const 0)",
    "trap-in-response": "(i32.const 0)",
  }[mode];
  const responseHeaders = mode === "respond-in-response" ? `${localResponse(418)} (i32.const 1)` : mode === "trap-in-response" ? "unreachable" : "(i32.const 0)";
  const text = `(module
  (import "env" "proxy_get_buffer_bytes" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_buffer_bytes" (func $set (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $respond (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_replace_header_map_value" (func $replace (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_remove_header_map_value" (func $remove (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 1000) "x-wasmerang-cluster")
  (data (i32.const 1030) "egress-router1")
  (data (i32.const 1100) "refused")
  (data (i32.const 1200) "not for you\\n")
  (data (i32.const 1300) "[redacted]")
  (data (i32.const 1400) "content-length")
  ${BUMP_MALLOC}
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "_initialize"))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $replace (i32.const 0) (i32.const 1000) (i32.const 19) (i32.const 1030) (i32.const 14))) ${unframe} (i32.const 0))
  (func (export "proxy_on_request_body") (param $id i32) (param $size i32) (param $end i32) (result i32) ${requestBody})
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) ${responseHeaders})
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_delete") (param i32)))`;
  const file = join(dir, `${mode}.wasm`);
  writeFileSync(file, await compileWat(`${mode}.wat`, text));
  return file;
}

describe("HTTP bodies held by a filter (Envoy's StopIterationAndBuffer)", () => {
  let backend: Awaited<ReturnType<typeof upstream>>;
  const runners: Runner[] = [];
  const runnerWith = async (mode: BodyMode, listener: object = {}): Promise<Runner> => {
    const runner = await startRunner(httpBootstrap([httpWasm(await bodyModule(mode), "")], [staticCluster("egress-router1", backend.port)], undefined, listener));
    runners.push(runner);
    return runner;
  };

  before(async () => {
    backend = await upstream("backend");
  });

  after(async () => {
    for (const runner of runners) await runner.close();
    backend.server.close();
  });

  it("a filter validating JSON sees the whole body before any of it goes on", async () => {
    const runner = await runnerWith("json-gate");
    assert.deepEqual(await get(runner, "/j", { body: "{\"a\":1}" }), { status: 200, body: "backend POST /j cluster=egress-router1 body={\"a\":1}" });
    assert.deepEqual(await get(runner, "/j", { body: "not json" }), { status: 400, body: "not for you\n" });
  });

  it("with a content-length, the last chunk carries end_of_stream", async () => {
    const runner = await runnerWith("json-gate");
    assert.deepEqual(await get(runner, "/l", { body: "{\"b\":2}", headers: { "content-length": "7" } }),
      { status: 200, body: "backend POST /l cluster=egress-router1 body={\"b\":2}" });
  });

  it("a redacting filter replaces the whole held body, across chunks", async () => {
    const runner = await runnerWith("redact");
    assert.deepEqual(await get(runner, "/r", { body: "my secret=hunter2" }), { status: 200, body: "backend POST /r cluster=egress-router1 body=[redacted]" });
  });

  it("a held body past the listener's buffer limit is answered 413", async () => {
    const runner = await runnerWith("hold-all", { per_connection_buffer_limit_bytes: 16 });
    assert.deepEqual(await get(runner, "/big", { body: "x".repeat(64) }), { status: 413, body: "Payload Too Large" });
  });

  it("a local response in the response phase replaces the upstream's response", async () => {
    const runner = await runnerWith("respond-in-response");
    assert.deepEqual(await get(runner, "/x"), { status: 418, body: "not for you\n" });
  });

  it("a trap in the response phase fails the stream (fail closed): 503, not the upstream's 200", async () => {
    const runner = await runnerWith("trap-in-response");
    const reply = await get(runner, "/t");
    assert.equal(reply.status, 503);
    assert.doesNotMatch(reply.body, /backend/);
  });
});

describe("content-length through body filters, as Envoy keeps it", () => {
  let framing: { server: Server; port: number };
  const runners: Runner[] = [];
  const log = captureLogger();
  const runnerWith = async (mode: BodyMode): Promise<Runner> => {
    const runner = await startRunner(httpBootstrap([httpWasm(await bodyModule(mode), "")], [staticCluster("egress-router1", framing.port)]), log.logger);
    runners.push(runner);
    return runner;
  };
  const post = (runner: Runner, body: string) => get(runner, "/f", { body, headers: { "content-length": String(body.length) } });

  before(async () => {
    // Answers with the framing it received: content-length, transfer-encoding, body.
    const server = createServer((req, res) => {
      let body = "";
      req.on("data", (chunk: Buffer) => (body += chunk.toString()));
      req.on("end", () => res.end(`${req.headers["content-length"] ?? "-"} ${req.headers["transfer-encoding"] ?? "-"} ${body}`));
    }).listen(0, "127.0.0.1");
    await once(server, "listening");
    framing = { server, port: (server.address() as AddressInfo).port };
  });

  after(async () => {
    for (const runner of runners) await runner.close();
    framing.server.close();
  });

  it("a body filter that leaves the body's length alone keeps the content-length", async () => {
    assert.deepEqual(await post(await runnerWith("json-gate"), "{\"b\":2}"), { status: 200, body: "7 - {\"b\":2}" });
  });

  it("a filter that changes the length and removes content-length sends the body chunked", async () => {
    assert.deepEqual(await post(await runnerWith("redact-unframed"), "my secret=hunter2"), { status: 200, body: "- chunked [redacted]" });
  });

  it("a filter that changes the length under a content-length it left fails the request, with a log line saying why", async () => {
    assert.equal((await post(await runnerWith("redact"), "my secret=hunter2")).status, 500);
    assert.ok(log.lines().some((line) => /changed the body's length but left its content-length/.test(line.msg) && line.declared === 17 && line.sent === 10));
  });
});

/**
 * Holds the whole request body (Pause on every chunk), counts body callbacks that get
 * end_of_stream in metric "eos", adds x-seen: yes to the request trailers and sets x-status:
 * checked in the response trailers.
 */
const TRAILERS_MODULE = `(module
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_replace_header_map_value" (func $replace (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_define_metric" (func $define (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_increment_metric" (func $increment (param i32 i64) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 1000) "x-wasmerang-cluster")
  (data (i32.const 1030) "egress-router1")
  (data (i32.const 1100) "eos")
  (data (i32.const 1110) "x-seen")
  (data (i32.const 1120) "yes")
  (data (i32.const 1130) "x-status")
  (data (i32.const 1140) "checked")
  ${BUMP_MALLOC}
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (drop (call $define (i32.const 0) (i32.const 1100) (i32.const 3) (i32.const 2008))) (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $replace (i32.const 0) (i32.const 1000) (i32.const 19) (i32.const 1030) (i32.const 14))) (i32.const 0))
  (func (export "proxy_on_request_body") (param $id i32) (param $size i32) (param $end i32) (result i32)
    (if (local.get $end) (then (drop (call $increment (i32.load (i32.const 2008)) (i64.const 1))))) (i32.const 1))
  (func (export "proxy_on_request_trailers") (param i32 i32) (result i32)
    (drop (call $add (i32.const 1) (i32.const 1110) (i32.const 6) (i32.const 1120) (i32.const 3))) (i32.const 0))
  (func (export "proxy_on_response_trailers") (param i32 i32) (result i32)
    (drop (call $replace (i32.const 3) (i32.const 1130) (i32.const 8) (i32.const 1140) (i32.const 7))) (i32.const 0))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_delete") (param i32)))`;

describe("HTTP trailers through the filters, as Envoy's filter manager passes them", () => {
  let trailing: { server: Server; port: number };

  before(async () => {
    // Answers with the request's body and trailers, and trailers of its own.
    const server = createServer((req, res) => {
      let body = "";
      req.on("data", (chunk: Buffer) => (body += chunk.toString()));
      req.on("end", () => {
        res.writeHead(200, { trailer: "x-status" });
        res.write(`body=${body} trailers=${JSON.stringify(req.trailers)}`);
        res.addTrailers({ "x-status": "fine" });
        res.end();
      });
    }).listen(0, "127.0.0.1");
    await once(server, "listening");
    trailing = { server, port: (server.address() as AddressInfo).port };
  });

  after(() => trailing.server.close());

  /** A chunked POST with trailer x-checksum: the reply's body and trailers. */
  function postWithTrailers(runner: Runner, headers: Record<string, string> = {}): Promise<{ body: string; trailers: NodeJS.Dict<string> }> {
    return new Promise((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port: runner.listenerPort("http"), path: "/t", method: "POST", headers: { host: "a.test", trailer: "x-checksum", ...headers } }, (res) => {
        let body = "";
        res.on("data", (chunk: Buffer) => (body += chunk.toString()));
        res.on("end", () => resolve({ body, trailers: res.trailers }));
      });
      req.on("error", reject);
      req.write("abc");
      req.addTrailers({ "x-checksum": "123" });
      req.end("def");
    });
  }

  it("a body filter's held body goes on with the trailers, which it sees and edits; no body callback gets end_of_stream", async () => {
    const file = join(dir, "trailers.wasm");
    writeFileSync(file, await compileWat("trailers.wat", TRAILERS_MODULE));
    const runner = await startRunner(httpBootstrap([httpWasm(file, "")], [staticCluster("egress-router1", trailing.port)]));
    try {
      const reply = await postWithTrailers(runner);
      assert.equal(reply.body, `body=abcdef trailers=${JSON.stringify({ "x-checksum": "123", "x-seen": "yes" })}`);
      assert.deepEqual(reply.trailers, { "x-status": "checked" });
      assert.match((await adminGet(runner, "/stats")).body, /^wasmcustom\.eos: 0$/m);
    } finally {
      await runner.close();
    }
  });

  it("without filters that look at bodies, trailers pass through as they are", async () => {
    const runner = await startRunner(httpBootstrap([], [staticCluster("egress-router1", trailing.port)]));
    try {
      const reply = await postWithTrailers(runner, { "x-wasmerang-cluster": "egress-router1" });
      assert.equal(reply.body, `body=abcdef trailers=${JSON.stringify({ "x-checksum": "123" })}`);
      assert.deepEqual(reply.trailers, { "x-status": "fine" });
    } finally {
      await runner.close();
    }
  });
});
