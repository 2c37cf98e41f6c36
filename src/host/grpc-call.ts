// gRPC calls and streams as Envoy's Wasm context makes them (source/extensions/common/wasm/
// context.cc: grpcCall, grpcStream, grpcSend, grpcClose, grpcCancel). The service argument is a
// serialized envoy.config.core.v3.GrpcService naming an Envoy cluster, or, when it does not parse
// as one, the cluster's name itself; BadArgument for a cluster the bootstrap lacks. Events come
// back on the calling context: proxy_on_grpc_receive_initial_metadata(token, headers),
// proxy_on_grpc_receive(token, size) with the message in GrpcReceiveBuffer,
// proxy_on_grpc_receive_trailing_metadata(token, trailers), then proxy_on_grpc_close(token,
// status). A unary call is a stream that sends one message and half-closes; cancel ends a call or
// stream with no further events; close half-closes a stream (a call: cancels it).
import protobuf from "protobufjs";
import { WasmResult, type WasmResultCode } from "./abi.js";
import type { HeaderPairs, HostContext } from "./context.js";
import { PendingCalls } from "./pending-calls.js";

export interface GrpcRequest {
  cluster: string;
  service: string;
  method: string;
  metadata: HeaderPairs;
  timeoutMs: number;
}

export interface GrpcEvents {
  initialMetadata(metadata: HeaderPairs): void;
  message(message: Buffer): void;
  trailingMetadata(metadata: HeaderPairs): void;
  close(status: number): void;
}

export interface GrpcStream {
  send(message: Buffer, endStream: boolean): void;
  /** Half-closes: no more messages from this side. */
  finish(): void;
  cancel(): void;
}

/** Opens a stream to a cluster; undefined when there is no such cluster. */
export type GrpcCaller = (request: GrpcRequest, events: GrpcEvents) => GrpcStream | undefined;

/** google.rpc.Code values the host reports itself. */
export const GrpcStatus = { Ok: 0, DeadlineExceeded: 4, Internal: 13, Unavailable: 14 } as const;

/** What the module reads during a gRPC callback. */
interface GrpcEvent {
  message?: Buffer;
  initialMetadata?: HeaderPairs;
  trailingMetadata?: HeaderPairs;
}

/**
 * The cluster a GrpcService names (envoy_grpc = field 1, its cluster_name = field 1), or the
 * bytes as a name when they are not such a message: the two forms Envoy accepts.
 */
export function grpcCluster(service: Buffer): string | undefined {
  try {
    const reader = protobuf.Reader.create(service);
    let cluster: string | undefined;
    while (reader.pos < reader.len) {
      const tag = reader.uint32();
      if (tag !== 0x0a) {
        reader.skipType(tag & 7);
        continue;
      }
      const envoyGrpc = protobuf.Reader.create(reader.bytes());
      while (envoyGrpc.pos < envoyGrpc.len) {
        const inner = envoyGrpc.uint32();
        if (inner === 0x0a) cluster = envoyGrpc.string();
        else envoyGrpc.skipType(inner & 7);
      }
    }
    if (cluster !== undefined) return cluster;
    if (service.length > 0 && reader.len > 0) return undefined;
  } catch {
    // Not a GrpcService: the bytes are the cluster's name.
  }
  return service.toString("utf8");
}

export class GrpcCalls {
  private readonly calls: PendingCalls<GrpcEvent, { stream: GrpcStream; unary: boolean }>;

  constructor(private readonly caller: GrpcCaller | undefined, isLive: (context: HostContext) => boolean) {
    this.calls = new PendingCalls(isLive);
  }

  /** The event being delivered: what the module reads during a gRPC callback. */
  get current(): GrpcEvent | undefined {
    return this.calls.current;
  }

  start(context: HostContext, service: Buffer, request: Omit<GrpcRequest, "cluster">, unaryMessage?: Buffer): { status: WasmResultCode; token?: number } {
    if (this.caller === undefined) return { status: WasmResult.Unimplemented };
    const cluster = grpcCluster(service);
    if (cluster === undefined) return { status: WasmResult.BadArgument };
    let token = 0;
    const stream = this.caller({ cluster, ...request }, {
      initialMetadata: (metadata) => this.calls.deliver(token, { initialMetadata: metadata }, "proxy_on_grpc_receive_initial_metadata", metadata.length),
      message: (message) => this.calls.deliver(token, { message }, "proxy_on_grpc_receive", message.length),
      trailingMetadata: (metadata) => this.calls.deliver(token, { trailingMetadata: metadata }, "proxy_on_grpc_receive_trailing_metadata", metadata.length),
      close: (status) => {
        this.calls.deliver(token, {}, "proxy_on_grpc_close", status);
        this.calls.finish(token);
      },
    });
    if (stream === undefined) return { status: WasmResult.BadArgument };
    token = this.calls.add(context, { stream, unary: unaryMessage !== undefined }, () => stream.cancel());
    if (unaryMessage !== undefined) stream.send(unaryMessage, true);
    return { status: WasmResult.Ok, token };
  }

  send(token: number, message: Buffer, endStream: boolean): WasmResultCode {
    const call = this.calls.get(token);
    if (call === undefined || call.unary) return WasmResult.BadArgument;
    call.stream.send(message, endStream);
    return WasmResult.Ok;
  }

  cancel(token: number): WasmResultCode {
    return this.calls.cancel(token) ? WasmResult.Ok : WasmResult.NotFound;
  }

  close(token: number): WasmResultCode {
    const call = this.calls.get(token);
    if (call === undefined) return WasmResult.NotFound;
    if (call.unary) return this.cancel(token);
    call.stream.finish();
    return WasmResult.Ok;
  }

  /** The context is gone: its calls and streams are cancelled. */
  cancelAll(contextId: number): void {
    this.calls.cancelAll(contextId);
  }
}
