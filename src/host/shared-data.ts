// proxy_get/set_shared_data and shared queues: state that VMs with the same vm_id share.
import { WasmResult, type WasmResultCode } from "./abi.js";

interface Entry {
  value: Buffer;
  cas: number;
}

export class SharedData {
  private readonly entries = new Map<string, Entry>();
  private nextCas = 1;
  private readonly queues = new Map<string, number>();
  private readonly queueItems = new Map<number, Buffer[]>();

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

  registerQueue(name: string): number {
    let token = this.queues.get(name);
    if (token === undefined) {
      token = this.queues.size + 1;
      this.queues.set(name, token);
      this.queueItems.set(token, []);
    }
    return token;
  }

  resolveQueue(name: string): number | undefined {
    return this.queues.get(name);
  }

  enqueue(token: number, data: Buffer): WasmResultCode {
    const items = this.queueItems.get(token);
    if (items === undefined) return WasmResult.NotFound;
    items.push(data);
    return WasmResult.Ok;
  }

  dequeue(token: number): Buffer | WasmResultCode {
    const items = this.queueItems.get(token);
    if (items === undefined) return WasmResult.NotFound;
    return items.shift() ?? WasmResult.Empty;
  }
}
