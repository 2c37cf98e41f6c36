// Load generator, in its own process so that it does not share an event loop with what it
// measures. Usage: loadgen.ts MODE PORT [options as JSON]; prints one JSON result.
import { connect, type Socket } from "node:net";
import { encodeProxyHeader } from "../src/egress/proxy-protocol.js";

interface Options {
  streams?: number;
  bytes?: number;
  concurrency?: number;
  durationMs?: number;
  roundTrips?: number;
  /** Prepend a PROXY v1 header naming this destination port (for the egress router). */
  proxyTo?: number;
}

const [mode, portText, optionsText] = process.argv.slice(2);
const port = Number(portText);
const options = JSON.parse(optionsText ?? "{}") as Options;

function open(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: "127.0.0.1", allowHalfOpen: true });
    socket.setNoDelay(true);
    socket.once("connect", () => {
      if (options.proxyTo !== undefined) {
        socket.write(encodeProxyHeader(1, { address: "127.0.0.1", port: socket.localPort! }, { address: "127.0.0.1", port: options.proxyTo }));
      }
      resolve(socket);
    });
    socket.once("error", reject);
  });
}

async function bulkStream(bytes: number): Promise<void> {
  const socket = await open();
  const chunk = Buffer.alloc(64 * 1024, 0x62);
  let sent = 0;
  const done = new Promise<void>((resolve, reject) => {
    const parts: Buffer[] = [];
    socket.on("data", (data: Buffer) => parts.push(data));
    socket.on("end", () => {
      const ack = Buffer.concat(parts);
      if (ack.length !== 8 || ack.readBigUInt64LE(0) !== BigInt(bytes)) reject(new Error(`sink saw ${ack.length === 8 ? ack.readBigUInt64LE(0) : "?"} of ${bytes} bytes`));
      else resolve();
      socket.destroy();
    });
    socket.on("error", reject);
  });
  await new Promise<void>((resolve) => {
    const pump = () => {
      while (sent < bytes) {
        const piece = bytes - sent >= chunk.length ? chunk : chunk.subarray(0, bytes - sent);
        sent += piece.length;
        if (!socket.write(piece)) return void socket.once("drain", pump);
      }
      socket.end();
      resolve();
    };
    pump();
  });
  await done;
}

async function bulk(): Promise<object> {
  const streams = options.streams ?? 1;
  const bytes = options.bytes ?? 512 * 1024 * 1024;
  const perStream = Math.floor(bytes / streams);
  const started = process.hrtime.bigint();
  await Promise.all(Array.from({ length: streams }, () => bulkStream(perStream)));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { bytesPerSecond: (perStream * streams) / seconds, bytes: perStream * streams, seconds };
}

async function oneRequest(): Promise<void> {
  const socket = await open();
  await new Promise<void>((resolve, reject) => {
    socket.once("data", () => undefined);
    socket.once("close", () => resolve());
    socket.once("error", reject);
    socket.end("x");
  });
}

async function connectionRate(): Promise<object> {
  const concurrency = options.concurrency ?? 64;
  const until = Date.now() + (options.durationMs ?? 3000);
  let completed = 0;
  let failed = 0;
  const started = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (Date.now() < until) {
      try {
        await oneRequest();
        completed++;
      } catch {
        failed++;
      }
    }
  }));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { connectionsPerSecond: completed / seconds, completed, failed };
}

async function latency(): Promise<object> {
  const socket = await open();
  const roundTrips = options.roundTrips ?? 20_000;
  const message = Buffer.alloc(64, 0x6c);
  const samples: number[] = [];
  for (let i = 0; i < roundTrips; i++) {
    const started = process.hrtime.bigint();
    await new Promise<void>((resolve) => {
      let received = 0;
      const onData = (data: Buffer) => {
        received += data.length;
        if (received >= message.length) {
          socket.off("data", onData);
          resolve();
        }
      };
      socket.on("data", onData);
      socket.write(message);
    });
    samples.push(Number(process.hrtime.bigint() - started) / 1000);
  }
  socket.destroy();
  samples.sort((a, b) => a - b);
  const at = (q: number) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))]!;
  return { p50Micros: at(0.5), p99Micros: at(0.99) };
}

const modes: Record<string, () => Promise<object>> = { bulk, connrate: connectionRate, latency };
const run = modes[mode ?? ""];
if (run === undefined) throw new Error(`mode must be one of ${Object.keys(modes).join(", ")}`);
process.stdout.write(`${JSON.stringify(await run())}\n`);
