// One downstream connection through a proxy-wasm network filter, with the callbacks in the order
// Envoy's network filter manager makes them (source/extensions/filters/network/wasm and
// common/wasm/context.cc): new connection, data in each direction with end_of_stream, close
// events, then done, log and delete. The session never touches sockets: it tells the runner
// what to do through ConnectionControl.
import { BufferType, FilterAction, PeerType, StreamType, WasmResult, type WasmResultCode } from "./abi.js";
import { TCP_PROXY_CLUSTER_KEY } from "./filter-state.js";
import { FilterSession, type DataResult, type FilterStatus } from "./filter-session.js";
import type { Plugin } from "./plugin.js";
import type { ConnectionInfo } from "./properties.js";

export type { DataResult, FilterStatus };

export interface ConnectionControl {
  /** The filter (or its failure policy) closes the downstream connection. */
  close(reason: string): void;
  /** A paused filter resumes the chain (proxy_continue_stream). */
  continueReading(): void;
}

export class NetworkFilterSession extends FilterSession {
  constructor(plugin: Plugin, info: ConnectionInfo, private readonly control: ConnectionControl, filterState: Map<string, string> = new Map()) {
    super(plugin, info, filterState, (reason) => control.close(reason));
  }

  /** tcp_proxy's cluster override, if the filter set one. */
  get clusterOverride(): string | undefined {
    return this.filterState.get(TCP_PROXY_CLUSTER_KEY);
  }

  /** Whether data callbacks reach the module at all (Envoy skips callbacks a module lacks). */
  get wantsData(): boolean {
    return !this.bypassed && (this.plugin.exports("proxy_on_downstream_data") || this.plugin.exports("proxy_on_upstream_data"));
  }

  onNewConnection(): FilterStatus {
    return this.status(this.invoke("proxy_on_new_connection", FilterAction.Continue, this.id));
  }

  onDownstreamData(data: Buffer, endOfStream: boolean): DataResult {
    return this.withBuffer(BufferType.DownstreamData, "proxy_on_downstream_data", data, endOfStream);
  }

  onUpstreamData(data: Buffer, endOfStream: boolean): DataResult {
    return this.withBuffer(BufferType.UpstreamData, "proxy_on_upstream_data", data, endOfStream);
  }

  onDownstreamClose(peer: "local" | "remote"): void {
    this.invoke("proxy_on_downstream_connection_close", 0, this.id, peer === "local" ? PeerType.Local : PeerType.Remote);
  }

  onUpstreamClose(peer: "local" | "remote" | "unknown"): void {
    this.invoke("proxy_on_upstream_connection_close", 0, this.id, peer === "local" ? PeerType.Local : peer === "remote" ? PeerType.Remote : PeerType.Unknown);
  }

  override closeStream(type: number): WasmResultCode {
    if (type !== StreamType.Downstream && type !== StreamType.Upstream) return WasmResult.BadArgument;
    this.control.close(`closed by the wasm filter (${type === StreamType.Downstream ? "downstream" : "upstream"})`);
    return WasmResult.Ok;
  }

  override continueStream(type: number): WasmResultCode {
    if (type !== StreamType.Downstream && type !== StreamType.Upstream) return WasmResult.BadArgument;
    this.control.continueReading();
    return WasmResult.Ok;
  }
}
