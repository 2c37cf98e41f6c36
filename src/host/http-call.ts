// proxy_http_call as Envoy's Wasm context makes it (source/extensions/common/wasm/context.cc,
// Context::httpCall): a request to a cluster of the bootstrap, refused with BadArgument when the
// cluster is unknown or :method, :path or :authority is missing; the answer (or, after a failure
// or the timeout, an empty one) arrives later through proxy_on_http_call_response on the context
// that made the call, whose headers, body and trailers the module reads during that callback.
// Calls still pending when their context goes away are cancelled, as Envoy does on its delete.
import { WasmResult, type WasmResultCode } from "./abi.js";
import type { HeaderPairs, HostContext } from "./context.js";

export interface HttpCallRequest {
  cluster: string;
  headers: HeaderPairs;
  body: Buffer;
  trailers: HeaderPairs;
  timeoutMs: number;
}

export interface HttpCallResponse {
  headers: HeaderPairs;
  body: Buffer;
  trailers: HeaderPairs;
}

/** Sends a call to a cluster; undefined when there is no such cluster. */
export type HttpCaller = (request: HttpCallRequest, signal: AbortSignal) => Promise<HttpCallResponse> | undefined;

const REQUIRED_HEADERS = [":method", ":path", ":authority"];
const NO_RESPONSE: HttpCallResponse = { headers: [], body: Buffer.alloc(0), trailers: [] };

export class HttpCalls {
  /** The answer being delivered: what the module reads in proxy_on_http_call_response. */
  current: HttpCallResponse | undefined;
  private nextToken = 1;
  private readonly pending = new Map<number, Set<AbortController>>();

  constructor(private readonly caller: HttpCaller | undefined, private readonly isLive: (context: HostContext) => boolean) {}

  start(context: HostContext, request: HttpCallRequest): { status: WasmResultCode; token?: number } {
    if (this.caller === undefined) return { status: WasmResult.Unimplemented };
    if (!REQUIRED_HEADERS.every((name) => request.headers.some(([key]) => key === name))) return { status: WasmResult.BadArgument };
    const controller = new AbortController();
    const call = this.caller(request, controller.signal);
    if (call === undefined) return { status: WasmResult.BadArgument };
    const token = this.nextToken++;
    let calls = this.pending.get(context.id);
    if (calls === undefined) this.pending.set(context.id, (calls = new Set()));
    calls.add(controller);
    const deliver = (response: HttpCallResponse) => {
      calls.delete(controller);
      if (controller.signal.aborted || !this.isLive(context)) return;
      this.current = response;
      try {
        context.deliver("proxy_on_http_call_response", token, response.headers.length, response.body.length, response.trailers.length);
      } finally {
        this.current = undefined;
      }
    };
    call.then(deliver, () => deliver(NO_RESPONSE));
    return { status: WasmResult.Ok, token };
  }

  /** The context is gone: its pending calls are cancelled. */
  cancel(contextId: number): void {
    for (const controller of this.pending.get(contextId) ?? []) controller.abort();
    this.pending.delete(contextId);
  }
}
