// Envoy's HTTP timeouts for one proxied request (docs: faq/configuration/timeouts): the cluster's
// connect_timeout bounds the upstream connect only; the route's timeout runs from the end of the
// request to the end of the response; the connection manager's stream_idle_timeout fires when no
// byte has moved either way for that long.
import type { ClientRequest, IncomingMessage, ServerResponse } from "node:http";
import { watchIdle } from "../server/idle.js";

export type RequestTimeout = "connect" | "route" | "idle";

export interface RequestTimeouts {
  connectMs: number;
  /** 0: none. */
  routeMs: number;
  /** 0: none. */
  streamIdleMs: number;
}

/** Arms the timers for one request; `onTimeout` is called at most once. All stop when the response closes. */
export function armRequestTimeouts(request: IncomingMessage, response: ServerResponse, upstream: ClientRequest, timeouts: RequestTimeouts,
  onTimeout: (which: RequestTimeout) => void): void {
  /** What stops each timer; all run when the response closes. */
  const stops: (() => void)[] = [];
  let fired = false;
  const fire = (which: RequestTimeout) => {
    if (fired || response.writableFinished) return;
    fired = true;
    onTimeout(which);
  };
  const later = (ms: number, callback: () => void) => {
    const timer = setTimeout(callback, ms);
    stops.push(() => clearTimeout(timer));
    return timer;
  };
  response.once("close", () => stops.forEach((stop) => stop()));
  upstream.once("socket", (socket) => {
    // A kept-alive connection is already up: only a new one has a connect to time.
    if (!socket.connecting) return;
    const timer = later(timeouts.connectMs, () => fire("connect"));
    socket.once("connect", () => clearTimeout(timer));
  });
  if (timeouts.routeMs > 0) {
    const start = () => later(timeouts.routeMs, () => fire("route"));
    if (request.readableEnded) start();
    else request.once("end", start);
  }
  if (timeouts.streamIdleMs > 0) {
    const socket = request.socket;
    stops.push(watchIdle(timeouts.streamIdleMs, () => socket.bytesRead + socket.bytesWritten, () => fire("idle")));
  }
}
