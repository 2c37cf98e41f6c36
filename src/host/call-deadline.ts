// A guest call that never returns must not freeze the runner (admin and every other connection
// run on the same thread). Envoy's V8 has no per-call deadline either, but it is a production
// proxy with one VM per worker; this stand-in runs everything on one thread. V8 cannot interrupt a
// running Wasm call from JavaScript, so the module is instrumented when it is loaded: binaryen's
// log-execution pass puts a call at every function entry and loop iteration; that call becomes an
// internal function spending a fuel counter, and only when the fuel runs out does it call the
// host, which compares the clock with the call's start and throws past the deadline. The throw
// unwinds the guest like a trap, and the failure policy applies.
import { Worker } from "node:worker_threads";

export const DEADLINE_IMPORT_MODULE = "wasmerang_watchdog";
const CHECK = "check";
/** Loop iterations and calls between two looks at the clock (about a millisecond of guest work). */
const FUEL = 1 << 20;

// binaryen is a 12 MB JavaScript module: it is loaded once, in a worker of its own, with no loader
// hooks inherited from this process (a TypeScript loader takes 20 s to read it), and this thread
// goes on meanwhile. Plain JavaScript, as the worker runs without those hooks.
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const loading = import(workerData.binaryen).then((loaded) => loaded.default);
parentPort.on("message", async ({ id, bytes }) => {
  let module;
  try {
    const binaryen = await loading;
    module = binaryen.readBinaryWithFeatures(bytes, binaryen.Features.All);
    binaryen.setPassArgument("log-execution", workerData.importModule);
    module.runPasses(["log-execution"]);
    // The pass imports <module>.log_execution(i32); it becomes an internal function spending fuel.
    module.removeFunction("log_execution");
    module.addGlobal("wasmerang_fuel", binaryen.i32, true, module.i32.const(workerData.fuel));
    module.addFunctionImport("wasmerang_check", workerData.importModule, workerData.check, binaryen.none, binaryen.none);
    const fuel = () => module.global.get("wasmerang_fuel", binaryen.i32);
    module.addFunction("log_execution", binaryen.createType([binaryen.i32]), binaryen.none, [], module.block(null, [
      module.global.set("wasmerang_fuel", module.i32.sub(fuel(), module.i32.const(1))),
      module.if(module.i32.eqz(fuel()), module.block(null, [
        module.global.set("wasmerang_fuel", module.i32.const(workerData.fuel)),
        module.call("wasmerang_check", [], binaryen.none),
      ])),
    ]));
    const out = module.emitBinary();
    parentPort.postMessage({ id, bytes: out }, [out.buffer]);
  } catch (error) {
    parentPort.postMessage({ id, error: String(error && error.message || error) });
  } finally {
    module?.dispose();
  }
});
`;

interface Reply {
  id: number;
  bytes?: Uint8Array;
  error?: string;
}

let worker: Worker | undefined;
let nextId = 1;
const pending = new Map<number, { resolve: (bytes: Uint8Array) => void; reject: (error: Error) => void }>();

function instrumenter(): Worker {
  if (worker !== undefined) return worker;
  const created = new Worker(WORKER_SOURCE, {
    eval: true, execArgv: [],
    workerData: { binaryen: import.meta.resolve("binaryen"), importModule: DEADLINE_IMPORT_MODULE, check: CHECK, fuel: FUEL },
  });
  created.on("message", (reply: Reply) => {
    const waiting = pending.get(reply.id);
    pending.delete(reply.id);
    if (pending.size === 0) created.unref();
    if (reply.bytes !== undefined) waiting?.resolve(reply.bytes);
    else waiting?.reject(new Error(`instrumenting for the call deadline failed: ${reply.error}`));
  });
  created.on("error", (error) => {
    for (const waiting of pending.values()) waiting.reject(error);
    pending.clear();
    worker = undefined;
  });
  created.unref();
  worker = created;
  return created;
}

/** The module with fuel spent at every function entry and loop iteration. `bytes` must be valid Wasm. */
export function instrumentForDeadline(bytes: Uint8Array): Promise<Uint8Array> {
  const id = nextId++;
  const target = instrumenter();
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    // Kept alive only while a module is being instrumented.
    target.ref();
    target.postMessage({ id, bytes });
  });
}

class DeadlineExceeded extends Error {}

/** The host side: one per VM. `begin` is called at the start of every guest call. */
export class CallDeadline {
  private call = 0;
  private checkedCall = -1;
  private firstCheck = 0;

  constructor(readonly milliseconds: number) {}

  begin(): void {
    this.call++;
  }

  /** The import the instrumented module calls when its fuel runs out; the clock starts at the first one of a call. */
  readonly check = (): void => {
    const now = performance.now();
    if (this.checkedCall !== this.call) {
      this.checkedCall = this.call;
      this.firstCheck = now;
      return;
    }
    if (now - this.firstCheck > this.milliseconds) throw new DeadlineExceeded(`call ran past its deadline of ${this.milliseconds} ms`);
  };

  imports(): Record<string, Record<string, () => void>> {
    return { [DEADLINE_IMPORT_MODULE]: { [CHECK]: this.check } };
  }
}
