// Opening an access-log file so that a path that cannot be opened is an error where it is
// configured (naming the path), not an 'error' event later that ends the process; and so that a
// write that fails later (disk full) is reported, never thrown.
import { createWriteStream, type WriteStream } from "node:fs";

export type LogStream = WriteStream | NodeJS.WriteStream;

/** `/dev/stdout`, `/dev/stderr` (and "-" for stdout) are the process's own streams. */
export async function openLogFile(path: string, onWriteError: (error: Error) => void): Promise<LogStream> {
  if (path === "-" || path === "/dev/stdout") return process.stdout;
  if (path === "/dev/stderr") return process.stderr;
  const stream = createWriteStream(path, { flags: "a" });
  await new Promise<void>((resolve, reject) => {
    stream.once("open", () => resolve());
    stream.once("error", (error: NodeJS.ErrnoException) => reject(new Error(`cannot open '${path}': ${error.code ?? error.message}`)));
  });
  stream.on("error", onWriteError);
  return stream;
}

/** Resolves once every line written so far is in the file. */
export function closeLogFile(stream: LogStream): Promise<void> {
  if (stream === process.stdout || stream === process.stderr) return Promise.resolve();
  return new Promise((resolve) => (stream as WriteStream).end(resolve));
}
