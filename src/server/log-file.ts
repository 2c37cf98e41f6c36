// A log of one line per record (the access logs). Opened so that a path that cannot be opened
// is an error where it is configured (naming the path), not an 'error' event later that ends the
// process; a write that fails later (disk full) is reported, never thrown.
import { createWriteStream, type WriteStream } from "node:fs";

type LogStream = WriteStream | NodeJS.WriteStream;

/** `/dev/stdout`, `/dev/stderr` (and "-" for stdout) are the process's own streams. */
async function openStream(path: string, onWriteError: (error: Error) => void): Promise<LogStream> {
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

export class LineLog<R> {
  private constructor(private readonly stream: LogStream, private readonly render: (record: R) => string) {}

  /** Opens the file; throws, naming the path, when it cannot be opened. */
  static async open<R>(path: string, render: (record: R) => string, onWriteError: (error: Error) => void): Promise<LineLog<R>> {
    return new LineLog(await openStream(path, onWriteError), render);
  }

  write(record: R): void {
    this.stream.write(this.render(record));
  }

  /** Resolves once every line written so far is in the file. */
  close(): Promise<void> {
    if (this.stream === process.stdout || this.stream === process.stderr) return Promise.resolve();
    return new Promise((resolve) => (this.stream as WriteStream).end(resolve));
  }
}
