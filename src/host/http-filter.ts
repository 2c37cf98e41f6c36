// One HTTP request through a proxy-wasm HTTP filter (envoy.filters.http.wasm): request headers,
// request body chunks, response headers and body, then done, log and delete. Header maps are
// lists of lower-case [name, value] pairs with Envoy's pseudo-headers (:method, :path,
// :authority, :scheme; :status on responses). A local response ends the request in the host.
import { BufferType, MapType, StreamType, WasmResult, type WasmResultCode } from "./abi.js";
import type { HeaderPairs } from "./context.js";
import { FilterSession, type DataResult, type FilterStatus } from "./filter-session.js";
import type { Plugin } from "./plugin.js";
import type { ConnectionInfo, DynamicMetadata } from "./properties.js";

export interface LocalResponse {
  status: number;
  details: string;
  body: Buffer;
  headers: HeaderPairs;
}

export interface RequestControl {
  /** The filter answered the request itself (send_local_response), or its failure policy did. */
  respond(response: LocalResponse): void;
  /** A paused filter resumes the request (proxy_continue_stream). */
  continueRequest(): void;
}

export class HttpFilterSession extends FilterSession {
  responseHeaders: HeaderPairs = [];
  /** The trailers being processed (request or response), editable by the module during its callback. */
  private trailers: { type: number; pairs: HeaderPairs } | undefined;

  constructor(
    plugin: Plugin,
    info: ConnectionInfo,
    readonly requestHeaders: HeaderPairs,
    private readonly control: RequestControl,
    /** The request's filter state, shared by its filters. */
    filterState: Map<string, string> = new Map(),
  ) {
    super(plugin, info, filterState, (reason) => control.respond({ status: 503, details: reason, body: Buffer.from("wasm filter failure\n"), headers: [] }));
  }

  onRequestHeaders(endOfStream: boolean): FilterStatus {
    return this.status(this.invoke("proxy_on_request_headers", 0, this.id, this.requestHeaders.length, endOfStream ? 1 : 0));
  }

  onRequestBody(data: Buffer, endOfStream: boolean): DataResult {
    return this.withBuffer(BufferType.HttpRequestBody, "proxy_on_request_body", data, endOfStream);
  }

  onResponseHeaders(headers: HeaderPairs, endOfStream: boolean): FilterStatus {
    this.responseHeaders = headers;
    return this.status(this.invoke("proxy_on_response_headers", 0, this.id, headers.length, endOfStream ? 1 : 0));
  }

  onResponseBody(data: Buffer, endOfStream: boolean): DataResult {
    return this.withBuffer(BufferType.HttpResponseBody, "proxy_on_response_body", data, endOfStream);
  }

  /** Trailers end the stream: Envoy calls this instead of a body callback with end_of_stream. `trailers` is edited in place. */
  onRequestTrailers(trailers: HeaderPairs): FilterStatus {
    return this.withTrailers(MapType.HttpRequestTrailers, "proxy_on_request_trailers", trailers);
  }

  onResponseTrailers(trailers: HeaderPairs): FilterStatus {
    return this.withTrailers(MapType.HttpResponseTrailers, "proxy_on_response_trailers", trailers);
  }

  private withTrailers(type: number, callback: string, pairs: HeaderPairs): FilterStatus {
    if (this.bypassed) return "continue";
    this.trailers = { type, pairs };
    try {
      return this.status(this.invoke(callback, 0, this.id, pairs.length));
    } finally {
      this.trailers = undefined;
    }
  }

  /** Whether the module wants body or trailers callbacks at all (Envoy skips callbacks a module lacks). */
  get wantsBodies(): boolean {
    return !this.bypassed && ["proxy_on_request_body", "proxy_on_response_body", "proxy_on_request_trailers", "proxy_on_response_trailers"]
      .some((callback) => this.plugin.exports(callback));
  }

  /**
   * A request's own dynamic metadata, empty here: Envoy's HTTP stream info starts without the
   * connection's (what the proxy_protocol listener filter wrote is not in an HTTP filter's `metadata`).
   */
  protected override dynamicMetadata(): DynamicMetadata | undefined {
    return undefined;
  }

  private requestHeader(name: string): string | undefined {
    return this.requestHeaders.find(([key]) => key === name)?.[1];
  }

  /** request.* attributes (docs/root/intro/arch_overview/advanced/attributes.rst). */
  protected override extraProperty(key: string): Buffer | undefined {
    switch (key) {
      case "request.path":
        return this.text(this.requestHeader(":path"));
      case "request.url_path":
        return this.text(this.requestHeader(":path")?.split("?")[0]);
      case "request.host":
        return this.text(this.requestHeader(":authority"));
      case "request.method":
        return this.text(this.requestHeader(":method"));
      case "request.scheme":
        return this.text(this.requestHeader(":scheme"));
      default:
        return undefined;
    }
  }

  private text(value: string | undefined): Buffer | undefined {
    return value === undefined ? undefined : Buffer.from(value);
  }

  override headers(type: number): HeaderPairs | undefined {
    if (type === MapType.HttpRequestHeaders) return this.requestHeaders;
    if (type === MapType.HttpResponseHeaders) return this.responseHeaders;
    if (type === this.trailers?.type) return this.trailers.pairs;
    return undefined;
  }

  override sendLocalResponse(status: number, details: string, body: Buffer, headers: HeaderPairs): WasmResultCode {
    this.control.respond({ status, details, body, headers });
    return WasmResult.Ok;
  }

  override continueStream(type: number): WasmResultCode {
    if (type !== StreamType.HttpRequest && type !== StreamType.HttpResponse) return WasmResult.BadArgument;
    this.control.continueRequest();
    return WasmResult.Ok;
  }
}
