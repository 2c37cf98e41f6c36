// Idle timeouts that cost nothing per chunk: instead of refreshing a timer on every read, the
// timer compares a progress count (bytes moved) when it fires, and waits another period while it
// moves. A connection is thus closed between one and two periods after its last byte.

/** Calls `onIdle` once `progress()` has not moved for `ms`; the returned function stops watching. */
export function watchIdle(ms: number, progress: () => number, onIdle: () => void): () => void {
  let seen = progress();
  const check = () => {
    const now = progress();
    if (now === seen) return onIdle();
    seen = now;
    timer = setTimeout(check, ms).unref();
  };
  let timer = setTimeout(check, ms).unref();
  return () => clearTimeout(timer);
}
