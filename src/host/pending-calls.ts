// Calls a context has made to the outside (proxy_http_call, proxy_grpc_call/stream): their tokens,
// the events that come back to the calling context with what the module may read during that
// callback, and their cancellation when the context goes away, as Envoy cancels them on delete.
import type { HostContext } from "./context.js";

export class PendingCalls<Event, Call> {
  /** The event being delivered: what the module reads during its callback. */
  current: Event | undefined;
  private nextToken = 1;
  private readonly open = new Map<number, { context: HostContext; call: Call; cancel: () => void }>();

  constructor(private readonly isLive: (context: HostContext) => boolean) {}

  /** Registers a call of `context`; `cancel` stops it with no further events. Returns its token. */
  add(context: HostContext, call: Call, cancel: () => void): number {
    const token = this.nextToken++;
    this.open.set(token, { context, call, cancel });
    return token;
  }

  get(token: number): Call | undefined {
    return this.open.get(token)?.call;
  }

  /** Runs the module's `callback` on the calling context (token first), with `event` readable meanwhile. */
  deliver(token: number, event: Event, callback: string, ...args: number[]): void {
    const entry = this.open.get(token);
    if (entry === undefined || !this.isLive(entry.context)) return;
    this.current = event;
    try {
      entry.context.deliver(callback, token, ...args);
    } finally {
      this.current = undefined;
    }
  }

  /** The call is over: no more events. */
  finish(token: number): void {
    this.open.delete(token);
  }

  /** Stops a call; false when there is none with that token. */
  cancel(token: number): boolean {
    const entry = this.open.get(token);
    if (entry === undefined) return false;
    this.open.delete(token);
    entry.cancel();
    return true;
  }

  /** The context is gone: its calls are cancelled. */
  cancelAll(contextId: number): void {
    for (const [token, entry] of this.open) if (entry.context.id === contextId) this.cancel(token);
  }
}
