// A body through the HTTP filters as Envoy's filter manager passes it (source/common/http/
// filter_manager.cc). A Wasm filter answering Pause to a body callback is StopIterationAndBuffer:
// the chunk is held, and the filter's next call gets the whole body held so far (its body_size),
// which get_*_body/set_*_body read and edit; filters before it have passed their part already.
// Held bytes count against the connection manager's buffer limit (the listener's
// per_connection_buffer_limit_bytes, 1 MiB by default). A filter that pauses on the last chunk
// holds the stream until it calls continue (or answers it with a local response). A stream that
// ends with trailers gives no body callback end_of_stream: each filter gets the trailers instead
// (on_request_trailers / on_response_trailers), and the body it held moves on when it continues
// from them (FilterManager's commonContinue: data, then trailers).
import type { IncomingMessage, OutgoingMessage } from "node:http";
import type { HeaderPairs } from "../host/context.js";
import type { DataResult, FilterStatus } from "../host/filter-session.js";

/** One HTTP filter as a body passes through it. */
export interface BodyStage {
  body(data: Buffer, endOfStream: boolean): DataResult;
  /** The trailers, edited in place by the filter. */
  trailers(trailers: HeaderPairs): FilterStatus;
}

/** What a chunk became: bytes to send on (possibly none; with the trailers at the end), held by a filter, or past the limit. */
export type BodyStep = { kind: "send"; data: Buffer; end: boolean; trailers?: HeaderPairs } | { kind: "held" } | { kind: "over-limit" };

export class BodyPipeline {
  private readonly held: (Buffer | undefined)[];
  /** The filter holding the end of the body until it continues. */
  private waitingAt: number | undefined;
  /** The filter holding the trailers (and what came before them) until it continues. */
  private waitingTrailers: { at: number; data: Buffer; trailers: HeaderPairs } | undefined;

  constructor(private readonly stages: readonly BodyStage[], private readonly limitBytes: number) {
    this.held = stages.map(() => undefined);
  }

  /** The stream ended with trailers. */
  endWithTrailers(trailers: HeaderPairs): BodyStep {
    return this.runTrailers(0, Buffer.alloc(0), trailers);
  }

  private runTrailers(from: number, pending: Buffer, trailers: HeaderPairs): BodyStep {
    let data = pending;
    for (let i = from; i < this.stages.length; i++) {
      if (data.length > 0) {
        const result = this.stages[i]!.body(this.held[i] === undefined ? data : Buffer.concat([this.held[i]!, data]), false);
        this.held[i] = result.status === "pause" ? result.data : undefined;
        if (result.status === "pause" && result.data.length > this.limitBytes) return { kind: "over-limit" };
        data = result.status === "pause" ? Buffer.alloc(0) : result.data;
      }
      if (this.stages[i]!.trailers(trailers) === "pause") {
        this.waitingTrailers = { at: i, data, trailers };
        return { kind: "held" };
      }
      if (this.held[i] !== undefined) {
        data = Buffer.concat([this.held[i]!, data]);
        this.held[i] = undefined;
      }
    }
    return { kind: "send", data, end: true, trailers };
  }

  push(chunk: Buffer, endOfStream: boolean): BodyStep {
    return this.run(0, chunk, endOfStream);
  }

  /** The filter holding the end of the body continued: the held body goes on through the rest. */
  resume(): BodyStep | undefined {
    const waiting = this.waitingTrailers;
    if (waiting !== undefined) {
      this.waitingTrailers = undefined;
      const held = this.held[waiting.at];
      this.held[waiting.at] = undefined;
      return this.runTrailers(waiting.at + 1, held === undefined ? waiting.data : Buffer.concat([held, waiting.data]), waiting.trailers);
    }
    const at = this.waitingAt;
    if (at === undefined) return undefined;
    this.waitingAt = undefined;
    const data = this.held[at] ?? Buffer.alloc(0);
    this.held[at] = undefined;
    return this.run(at + 1, data, true);
  }

  private run(from: number, chunk: Buffer, endOfStream: boolean): BodyStep {
    let data = chunk;
    for (let i = from; i < this.stages.length; i++) {
      const body = this.held[i] === undefined ? data : Buffer.concat([this.held[i]!, data]);
      const result = this.stages[i]!.body(body, endOfStream);
      if (result.status === "pause") {
        this.held[i] = result.data;
        if (result.data.length > this.limitBytes) return { kind: "over-limit" };
        if (endOfStream) this.waitingAt = i;
        return { kind: "held" };
      }
      this.held[i] = undefined;
      data = result.data;
    }
    return { kind: "send", data, end: endOfStream };
  }
}

export interface BodyRelayHooks {
  /** True once the stream is answered or reset: what is left is read and dropped. */
  stopped(): boolean;
  overLimit(): void;
  /** The filters made the body `sent` bytes or more under a content-length of `declared` they left in place. */
  lengthMismatch(sent: number, declared: number): void;
}

/** The body's length as it arrives and as the headers sent on declare it (after the filters), when known. */
export interface BodyLengths {
  received: number | undefined;
  declared: number | undefined;
}

/**
 * Streams `from` through `pipeline` into `to`. With a content-length, the last chunk carries
 * end_of_stream, as Envoy's codec passes it; otherwise an empty end_of_stream call follows.
 * A content-length the filters left in place is kept, as Envoy keeps it: a filter that changes
 * the body's length must remove it (the body then goes chunked). Envoy's codec would send a body
 * that disagrees with it as it is, breaking the message's framing; here the stream is failed
 * through `lengthMismatch` instead, before any byte past the declared length is sent.
 * Returns what to call when the filter holding the end of the body continues.
 */
export function relayBody(from: IncomingMessage, to: OutgoingMessage, pipeline: BodyPipeline, lengths: BodyLengths, hooks: BodyRelayHooks): () => void {
  let received = 0;
  let sent = 0;
  let ended = false;
  const apply = (step: BodyStep | undefined): void => {
    if (step === undefined || hooks.stopped() || ended) return;
    if (step.kind === "over-limit") return hooks.overLimit();
    if (step.kind === "held") return;
    sent += step.data.length;
    if (lengths.declared !== undefined && (sent > lengths.declared || (step.end && sent !== lengths.declared))) {
      ended = true;
      return hooks.lengthMismatch(sent, lengths.declared);
    }
    if (step.end) {
      ended = true;
      if (step.trailers !== undefined && step.trailers.length > 0) {
        to.write(step.data);
        to.addTrailers(step.trailers);
        to.end();
      } else {
        to.end(step.data);
      }
    } else if (step.data.length > 0 && !to.write(step.data)) {
      from.pause();
      to.once("drain", () => from.resume());
    }
  };
  from.on("data", (chunk: Buffer) => {
    if (hooks.stopped() || ended) return;
    received += chunk.length;
    apply(pipeline.push(chunk, lengths.received !== undefined && received >= lengths.received));
  });
  from.on("end", () => {
    if (hooks.stopped() || ended) return;
    const trailers = trailersOf(from);
    if (trailers.length > 0) apply(pipeline.endWithTrailers(trailers));
    else if (received < (lengths.received ?? Infinity)) apply(pipeline.push(Buffer.alloc(0), true));
  });
  return () => apply(pipeline.resume());
}

/** A message's trailers (HTTP/1.1 chunked trailers), lower-case names, in order. */
function trailersOf(message: IncomingMessage): HeaderPairs {
  const pairs: HeaderPairs = [];
  for (let i = 0; i + 1 < message.rawTrailers.length; i += 2) pairs.push([message.rawTrailers[i]!.toLowerCase(), message.rawTrailers[i + 1]!]);
  return pairs;
}

/** The body as it is, and its trailers after it, as Envoy passes them on when no filter looks. */
export function pipeWithTrailers(from: IncomingMessage, to: OutgoingMessage): void {
  from.pipe(to, { end: false });
  from.on("end", () => {
    const trailers = trailersOf(from);
    if (trailers.length > 0) to.addTrailers(trailers);
    to.end();
  });
}
