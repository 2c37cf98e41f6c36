// `wasmerang run --watch`: reload when the configuration file's content changes, whatever the
// writer does. Editors and `sed -i` replace the file by rename (a new inode), Kubernetes swaps a
// `..data` symlink beside it, others truncate and write in place: watching the file's inode
// follows only the first change. So the directory is watched, a stat poll backs it up (a change
// behind a symlink into another directory), and a reload happens only when the content's digest
// changed, once the writer has been quiet for a moment.
import { createHash } from "node:crypto";
import { readFileSync, unwatchFile, watch, watchFile, type FSWatcher } from "node:fs";
import { dirname, resolve } from "node:path";

export interface ConfigWatch {
  close(): void;
}

const POLL_MS = 1000;

function digest(file: string): string | undefined {
  try {
    return createHash("sha256").update(readFileSync(file)).digest("hex");
  } catch {
    // Between a rename's two steps the file may be missing: the next event looks again.
    return undefined;
  }
}

export function watchConfig(file: string, onChange: () => void, quietMs = 200): ConfigWatch {
  const path = resolve(file);
  let last = digest(path);
  let timer: NodeJS.Timeout | undefined;
  const check = () => {
    const current = digest(path);
    if (current === undefined || current === last) return;
    last = current;
    onChange();
  };
  const schedule = () => {
    clearTimeout(timer);
    timer = setTimeout(check, quietMs);
  };
  const watcher: FSWatcher = watch(dirname(path), schedule);
  watchFile(path, { interval: POLL_MS }, schedule);
  return {
    close: () => {
      clearTimeout(timer);
      watcher.close();
      unwatchFile(path, schedule);
    },
  };
}
