// A body through the HTTP filters as Envoy's filter manager passes it (source/common/http/
// filter_manager.cc). A Wasm filter answering Pause to a body callback is StopIterationAndBuffer:
// the chunk is held, and the filter's next call gets the whole body held so far (its body_size),
// which get_*_body/set_*_body read and edit; filters before it have passed their part already.
// Held bytes count against the connection manager's buffer limit (the listener's
// per_connection_buffer_limit_bytes, 1 MiB by default). A filter that pauses on the last chunk
// holds the stream until it calls continue (or answers it with a local response).
import type { Readable, Writable } from "node:stream";
import type { DataResult } from "../host/filter-session.js";

export type BodyStage = (data: Buffer, endOfStream: boolean) => DataResult;

/** What a chunk became: bytes to send on (possibly none), held by a filter, or past the limit. */
export type BodyStep = { kind: "send"; data: Buffer; end: boolean } | { kind: "held" } | { kind: "over-limit" };

export class BodyPipeline {
  private readonly held: (Buffer | undefined)[];
  /** The filter holding the end of the body until it continues. */
  private waitingAt: number | undefined;

  constructor(private readonly stages: readonly BodyStage[], private readonly limitBytes: number) {
    this.held = stages.map(() => undefined);
  }

  push(chunk: Buffer, endOfStream: boolean): BodyStep {
    return this.run(0, chunk, endOfStream);
  }

  /** The filter holding the end of the body continued: the held body goes on through the rest. */
  resume(): BodyStep | undefined {
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
      const result = this.stages[i]!(body, endOfStream);
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
export function relayBody(from: Readable, to: Writable, pipeline: BodyPipeline, lengths: BodyLengths, hooks: BodyRelayHooks): () => void {
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
      to.end(step.data);
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
    if (!hooks.stopped() && received < (lengths.received ?? Infinity) && !ended) apply(pipeline.push(Buffer.alloc(0), true));
  });
  return () => apply(pipeline.resume());
}
