// gRPC streams from proxy_grpc_call/proxy_grpc_stream to a host of the named cluster, over
// HTTP/2 without TLS (node:http2): length-prefixed messages, `grpc-timeout` from the call's
// timeout, initial metadata from the response headers, trailing metadata and grpc-status from
// the trailers (or from the headers of a trailers-only response). A connection failure closes
// the stream with UNAVAILABLE, the timeout with DEADLINE_EXCEEDED, as Envoy's gRPC client does.
import { connect, constants, type IncomingHttpHeaders } from "node:http2";
import { GrpcStatus, type GrpcCaller } from "../host/grpc-call.js";
import type { Cluster } from "./cluster.js";

function metadataOf(headers: IncomingHttpHeaders): [string, string][] {
  return Object.entries(headers).filter(([name]) => !name.startsWith(":"))
    .map(([name, value]): [string, string] => [name, Array.isArray(value) ? value.join(",") : String(value)]);
}

export function clusterGrpcCaller(clusterNamed: (name: string) => Cluster | undefined): GrpcCaller {
  return (request, events) => {
    const cluster = clusterNamed(request.cluster);
    if (cluster === undefined) return undefined;
    let closed = false;
    let timer: NodeJS.Timeout | undefined;
    const host = cluster.pickHost(undefined);
    if (host === undefined) {
      queueMicrotask(() => events.close(GrpcStatus.Unavailable));
      return { send: () => undefined, finish: () => undefined, cancel: () => undefined };
    }
    const session = connect(`http://${host.address}:${host.port}`);
    const close = (status: number) => {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      session.close();
      events.close(status);
    };
    session.on("error", () => close(GrpcStatus.Unavailable));
    const stream = session.request({
      ":method": "POST", ":path": `/${request.service}/${request.method}`, "content-type": "application/grpc", te: "trailers",
      ...(request.timeoutMs > 0 ? { "grpc-timeout": `${request.timeoutMs}m` } : {}),
      ...Object.fromEntries(request.metadata),
    });
    if (request.timeoutMs > 0) {
      timer = setTimeout(() => {
        stream.close(constants.NGHTTP2_CANCEL);
        close(GrpcStatus.DeadlineExceeded);
      }, request.timeoutMs);
    }
    let status: number | undefined;
    let pending = Buffer.alloc(0);
    stream.on("response", (headers) => {
      if (headers["grpc-status"] !== undefined) {
        status = Number(headers["grpc-status"]);
        events.trailingMetadata(metadataOf(headers));
      } else {
        events.initialMetadata(metadataOf(headers));
      }
    });
    stream.on("data", (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 5 && pending.length >= 5 + pending.readUInt32BE(1)) {
        const length = pending.readUInt32BE(1);
        if (!closed) events.message(pending.subarray(5, 5 + length));
        pending = pending.subarray(5 + length);
      }
    });
    stream.on("trailers", (trailers) => {
      status = Number(trailers["grpc-status"] ?? GrpcStatus.Internal);
      if (!closed) events.trailingMetadata(metadataOf(trailers));
    });
    stream.on("error", () => close(GrpcStatus.Unavailable));
    stream.on("close", () => close(status ?? GrpcStatus.Unavailable));
    return {
      send: (message, endStream) => {
        const frame = Buffer.alloc(5 + message.length);
        frame.writeUInt32BE(message.length, 1);
        message.copy(frame, 5);
        if (endStream) stream.end(frame);
        else stream.write(frame);
      },
      finish: () => stream.end(),
      cancel: () => {
        closed = true;
        clearTimeout(timer);
        stream.close(constants.NGHTTP2_CANCEL);
        session.close();
      },
    };
  };
}
