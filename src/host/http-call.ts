// proxy_http_call as Envoy's Wasm context makes it (source/extensions/common/wasm/context.cc,
// Context::httpCall): a request to a cluster of the bootstrap, refused with BadArgument when the
// cluster is unknown or :method, :path or :authority is missing; the answer (or, after a failure
// or the timeout, an empty one) arrives later through proxy_on_http_call_response on the context
// that made the call, whose headers, body and trailers the module reads during that callback.
// Calls still pending when their context goes away are cancelled, as Envoy does on its delete.
import { WasmResult, type WasmResultCode } from "./abi.js";
import type { HeaderPairs, HostContext } from "./context.js";
import { PendingCalls } from "./pending-calls.js";

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
  private readonly calls: PendingCalls<HttpCallResponse, undefined>;

  constructor(private readonly caller: HttpCaller | undefined, isLive: (context: HostContext) => boolean) {
    this.calls = new PendingCalls(isLive);
  }

  /** The answer being delivered: what the module reads in proxy_on_http_call_response. */
  get current(): HttpCallResponse | undefined {
    return this.calls.current;
  }

  start(context: HostContext, request: HttpCallRequest): { status: WasmResultCode; token?: number } {
    if (this.caller === undefined) return { status: WasmResult.Unimplemented };
    if (!REQUIRED_HEADERS.every((name) => request.headers.some(([key]) => key === name))) return { status: WasmResult.BadArgument };
    const controller = new AbortController();
    const call = this.caller(request, controller.signal);
    if (call === undefined) return { status: WasmResult.BadArgument };
    const token = this.calls.add(context, undefined, () => controller.abort());
    const deliver = (response: HttpCallResponse) => {
      this.calls.deliver(token, response, "proxy_on_http_call_response", response.headers.length, response.body.length, response.trailers.length);
      this.calls.finish(token);
    };
    call.then(deliver, () => deliver(NO_RESPONSE));
    return { status: WasmResult.Ok, token };
  }

  /** The context is gone: its pending calls are cancelled. */
  cancelAll(contextId: number): void {
    this.calls.cancelAll(contextId);
  }
}
