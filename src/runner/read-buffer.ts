// A connection's read buffer: the bytes read from the client that no filter has taken yet (a
// paused filter holds them). Appending grows the storage by doubling, so that holding n bytes
// costs O(n) copying, not the O(n²) of concatenating every chunk onto what came before.
const EMPTY: Buffer = Buffer.alloc(0);

export class ReadBuffer {
  private storage: Buffer = EMPTY;
  private used = 0;

  get length(): number {
    return this.used;
  }

  /** The buffered bytes (a view: valid until the next append, set or take). */
  get bytes(): Buffer {
    return this.storage.subarray(0, this.used);
  }

  append(chunk: Buffer): void {
    if (this.used === 0) {
      // The common case, a chunk taken at once: no copy at all.
      this.storage = chunk;
      this.used = chunk.length;
      return;
    }
    const needed = this.used + chunk.length;
    // Storage that is not our own (a chunk, or a filter's data) is exactly full: it is never written into.
    if (needed > this.storage.length) {
      const grown = Buffer.allocUnsafe(Math.max(needed, this.storage.length * 2));
      this.storage.copy(grown, 0, 0, this.used);
      this.storage = grown;
    }
    chunk.copy(this.storage, this.used);
    this.used = needed;
  }

  /** Replaces the contents (a filter edited them). */
  set(data: Buffer): void {
    this.storage = data;
    this.used = data.length;
  }

  /** Hands the bytes over and starts empty; the storage is never written again. */
  take(): Buffer {
    const data = this.bytes;
    this.storage = EMPTY;
    this.used = 0;
    return data;
  }
}
