// Envoy's caches of running VMs and of plugins on a worker (proxy-wasm-cpp-host src/wasm.cc:
// createWasm and getOrCreateThreadLocalWasm key VMs by makeVmKey(vm_id, vm configuration, code);
// getOrCreateThreadLocalPlugin keys a plugin's root context by vm key and plugin key inside that
// VM). Every filter naming the same VM shares it, every filter with the same plugin shares its
// root context, and both live as long as one filter holds them. A VM that fails at run time leaves
// the cache (cpp-host's fail callback erases it), so the next new plugin gets a fresh VM while the
// filters already holding the failed one keep its failure policy.
import { createHash } from "node:crypto";
import type { WasmVm } from "./vm.js";

export interface VmIdentity {
  vmId: string;
  vmConfiguration: Buffer;
  code: Uint8Array;
}

export interface PluginIdentityKey {
  name: string;
  rootId: string;
  configuration: Buffer;
}

function digest(parts: readonly (string | Uint8Array)[]): string {
  const hash = createHash("sha256");
  for (const part of parts) hash.update(`${part.length}:`).update(part);
  return hash.digest("hex");
}

export function vmKey(identity: VmIdentity): string {
  return digest([identity.vmId, identity.vmConfiguration, identity.code]);
}

/**
 * cpp-host's plugin key is root_id, the plugin configuration and a key from Envoy naming the
 * plugin; filters that agree on all of them share one root context.
 */
export function pluginKey(identity: PluginIdentityKey, vmKeyValue: string): string {
  return digest([vmKeyValue, identity.name, identity.rootId, identity.configuration]);
}

interface CachedVm {
  vm: WasmVm;
  users: number;
}

export class VmRegistry<P extends { healthy(): boolean }> {
  private readonly vms = new Map<string, CachedVm>();
  private readonly plugins = new Map<string, P>();

  /** The running VM for `key`, unless it has failed (then it leaves the cache). */
  vm(key: string): WasmVm | undefined {
    const cached = this.vms.get(key);
    if (cached !== undefined && cached.vm.failure !== undefined) this.vms.delete(key);
    return cached?.vm.failure === undefined ? cached?.vm : undefined;
  }

  /** A plugin already running with this key on a healthy VM. */
  plugin(key: string): P | undefined {
    const plugin = this.plugins.get(key);
    if (plugin !== undefined && !plugin.healthy()) this.plugins.delete(key);
    return plugin?.healthy() ? plugin : undefined;
  }

  /** Records that a new plugin `plugin` runs in `vm`. */
  add(vmKeyValue: string, vm: WasmVm, pluginKeyValue: string, plugin: P): void {
    const cached = this.vms.get(vmKeyValue);
    if (cached?.vm === vm) cached.users++;
    else this.vms.set(vmKeyValue, { vm, users: 1 });
    this.plugins.set(pluginKeyValue, plugin);
  }

  /** The last filter holding `plugin` let go of it: the VM goes when no plugin uses it. */
  remove(vmKeyValue: string, vm: WasmVm, pluginKeyValue: string, plugin: P): void {
    if (this.plugins.get(pluginKeyValue) === plugin) this.plugins.delete(pluginKeyValue);
    const cached = this.vms.get(vmKeyValue);
    if (cached?.vm === vm && --cached.users === 0) this.vms.delete(vmKeyValue);
  }
}
