// Benchmark backend, in its own process: a sink that acknowledges the byte count when the client
// half-closes (bulk), a one-byte request/response server that closes (connection rate), and an
// echo server (latency). Prints its ports as JSON on stdout.
import { createServer, type AddressInfo, type Server } from "node:net";

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)));
}

const sink = createServer({ allowHalfOpen: true }, (socket) => {
  let received = 0;
  socket.on("data", (chunk: Buffer) => (received += chunk.length));
  socket.on("end", () => {
    const ack = Buffer.alloc(8);
    ack.writeBigUInt64LE(BigInt(received));
    socket.end(ack);
  });
  socket.on("error", () => undefined);
});
const requestResponse = createServer((socket) => {
  socket.once("data", () => socket.end("y"));
  socket.on("error", () => undefined);
});
const echo = createServer((socket) => {
  socket.setNoDelay(true);
  socket.on("data", (chunk: Buffer) => socket.write(chunk));
  socket.on("error", () => undefined);
});

const ports = { sink: await listen(sink), rr: await listen(requestResponse), echo: await listen(echo) };
process.stdout.write(`${JSON.stringify(ports)}\n`);
