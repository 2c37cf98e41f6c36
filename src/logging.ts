// Process logs: pino, human-readable on a terminal by default, JSON lines when asked.
import { pino, type Logger } from "pino";
import pretty from "pino-pretty";

export type LogFormat = "text" | "json";

export function createLogger(level: string, format: LogFormat): Logger {
  if (format === "json") return pino({ level }, pino.destination({ fd: 2, sync: false }));
  return pino({ level }, pretty({ destination: 2, colorize: process.stderr.isTTY, sync: true, ignore: "pid,hostname" }));
}

export const silentLogger: Logger = pino({ level: "silent" });
