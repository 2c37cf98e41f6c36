// proxy_get/set_shared_data (one store per vm_id) and shared queues (one registry per process).
import { WasmResult, type WasmResultCode } from "./abi.js";

interface Entry {
  value: Buffer;
  cas: number;
}

export class SharedData {
  private readonly entries = new Map<string, Entry>();
  private nextCas = 1;

  get(key: string): Entry | undefined {
    return this.entries.get(key);
  }

  /** cas 0 writes unconditionally; otherwise the entry's cas must match (CasMismatch otherwise). */
  set(key: string, value: Buffer, cas: number): WasmResultCode {
    const current = this.entries.get(key);
    if (cas !== 0 && current !== undefined && current.cas !== cas) return WasmResult.CasMismatch;
    this.entries.set(key, { value, cas: this.nextCas++ });
    return WasmResult.Ok;
  }
}

interface Queue {
  items: Buffer[];
  /** Tells the context that registered the queue that an item arrived (proxy_on_queue_ready). */
  notify: (token: number) => void;
}

/**
 * Shared queues, process-wide as Envoy keeps them (source/extensions/common/wasm/wasm.cc,
 * SharedData's queues): a queue is registered by a VM under its vm_id and a name, any VM resolves
 * it by vm_id and name, and each enqueue posts proxy_on_queue_ready to the registering context
 * (after the current callback, as Envoy posts it to that context's dispatcher).
 */
export class SharedQueues {
  private readonly tokens = new Map<string, number>();
  private readonly queues = new Map<number, Queue>();

  register(vmId: string, name: string, notify: (token: number) => void): number {
    const key = `${vmId}\0${name}`;
    let token = this.tokens.get(key);
    if (token === undefined) {
      token = this.tokens.size + 1;
      this.tokens.set(key, token);
      this.queues.set(token, { items: [], notify });
    } else {
      this.queues.get(token)!.notify = notify;
    }
    return token;
  }

  resolve(vmId: string, name: string): number | undefined {
    return this.tokens.get(`${vmId}\0${name}`);
  }

  enqueue(token: number, data: Buffer): WasmResultCode {
    const queue = this.queues.get(token);
    if (queue === undefined) return WasmResult.NotFound;
    queue.items.push(data);
    setImmediate(() => queue.notify(token));
    return WasmResult.Ok;
  }

  dequeue(token: number): Buffer | WasmResultCode {
    const queue = this.queues.get(token);
    if (queue === undefined) return WasmResult.NotFound;
    return queue.items.shift() ?? WasmResult.Empty;
  }
}
