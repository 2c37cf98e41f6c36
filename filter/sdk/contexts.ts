// Context base classes, one per kind of proxy-wasm context. Every callback has a default that
// lets traffic through, so a filter overrides only what it uses.
import { Action, PeerType } from "./types";

/** One per plugin configuration: parses configuration and creates per-connection contexts. */
export class RootContext {
  constructor(public readonly id: u32) {}

  /** Called once the VM is up; return false to fail the VM. */
  onVmStart(vmConfiguration: string): bool {
    return true;
  }

  /** Called with the plugin configuration; return false and Envoy rejects the configuration. */
  onConfigure(configuration: string): bool {
    return true;
  }

  onTick(): void {}

  /** The answer to an httpCall this root made (no headers: the call failed or timed out). */
  onHttpCallResponse(token: u32, headerCount: u32, bodySize: u32, trailerCount: u32): void {}

  /** Context for a TCP connection (envoy.filters.network.wasm); null lets connections through untouched. */
  newStreamContext(id: u32): StreamContext | null {
    return null;
  }

  /** Context for an HTTP request (envoy.filters.http.wasm); null lets requests through untouched. */
  newHttpContext(id: u32): HttpContext | null {
    return null;
  }

  onDone(): bool {
    return true;
  }
}

/**
 * A downstream connection seen by a network filter. After onDelete the SDK keeps no reference to
 * it: a root may keep the object and return it again from newStreamContext (the SDK then sets
 * `id`), so that connections allocate nothing.
 */
export class StreamContext {
  constructor(public id: u32, public readonly root: RootContext) {}

  onNewConnection(): Action {
    return Action.Continue;
  }

  onDownstreamData(size: u32, endOfStream: bool): Action {
    return Action.Continue;
  }

  onUpstreamData(size: u32, endOfStream: bool): Action {
    return Action.Continue;
  }

  onDownstreamClose(peer: PeerType): void {}

  /** The answer to an httpCall this connection made (no headers: the call failed or timed out). */
  onHttpCallResponse(token: u32, headerCount: u32, bodySize: u32, trailerCount: u32): void {}

  onUpstreamClose(peer: PeerType): void {}

  onLog(): void {}

  onDelete(): void {}
}

/** An HTTP request/response exchange seen by an HTTP filter; recyclable as StreamContext. */
export class HttpContext {
  constructor(public id: u32, public readonly root: RootContext) {}

  onRequestHeaders(headerCount: u32, endOfStream: bool): Action {
    return Action.Continue;
  }

  onRequestBody(size: u32, endOfStream: bool): Action {
    return Action.Continue;
  }

  onResponseHeaders(headerCount: u32, endOfStream: bool): Action {
    return Action.Continue;
  }

  onResponseBody(size: u32, endOfStream: bool): Action {
    return Action.Continue;
  }

  /** The answer to an httpCall this request made (no headers: the call failed or timed out). */
  onHttpCallResponse(token: u32, headerCount: u32, bodySize: u32, trailerCount: u32): void {}

  onLog(): void {}

  onDelete(): void {}
}
