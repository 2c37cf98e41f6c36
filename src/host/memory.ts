// Reads and writes the guest's linear memory. Views are rebuilt whenever the memory has grown
// (growth detaches the old ArrayBuffer), and data the host returns is placed in guest memory
// through the module's own allocator, as Envoy's host does.

export class GuestMemoryError extends Error {}

export class GuestMemory {
  private bytes: Buffer;

  constructor(
    private readonly memory: WebAssembly.Memory,
    private readonly allocate: (size: number) => number,
    /** The most linear memory the VM may grow to; past it, the next call fails the VM. */
    private readonly limitBytes: number,
  ) {
    this.bytes = Buffer.from(memory.buffer);
  }

  /** Fails (GuestMemoryError) when the memory grew past its limit since the last look. */
  checkGrowth(): void {
    if (this.bytes.length === 0) this.view();
  }

  get byteLength(): number {
    return this.memory.buffer.byteLength;
  }

  private view(): Buffer {
    // Growth detaches the old ArrayBuffer, which leaves the old view empty: cheaper to test than
    // the Memory.buffer getter on every host call.
    if (this.bytes.length === 0) {
      const grown = this.memory.buffer;
      if (grown.byteLength > this.limitBytes) {
        throw new GuestMemoryError(`linear memory grew to ${grown.byteLength / 2 ** 20} MiB, past the VM's limit of ${this.limitBytes / 2 ** 20} MiB`);
      }
      this.bytes = Buffer.from(grown);
    }
    return this.bytes;
  }

  private check(ptr: number, size: number): Buffer {
    const bytes = this.view();
    if (ptr < 0 || size < 0 || ptr + size > bytes.length) {
      throw new GuestMemoryError(`guest memory access out of bounds: ${size} bytes at ${ptr}`);
    }
    return bytes;
  }

  /** A copy of guest bytes, safe to keep after later guest calls. */
  copy(ptr: number, size: number): Buffer {
    return Buffer.from(this.check(ptr, size).subarray(ptr, ptr + size));
  }

  string(ptr: number, size: number): string {
    return this.check(ptr, size).toString("utf8", ptr, ptr + size);
  }

  writeU32(ptr: number, value: number): void {
    this.check(ptr, 4).writeUInt32LE(value >>> 0, ptr);
  }

  writeU64(ptr: number, value: bigint): void {
    this.check(ptr, 8).writeBigUInt64LE(BigInt.asUintN(64, value), ptr);
  }

  write(ptr: number, data: Uint8Array): void {
    this.check(ptr, data.length).set(data, ptr);
  }

  /**
   * Hands `data` to the guest: allocates with the module's allocator, copies, and stores the
   * pointer and size at the two return addresses (0/0 for empty data).
   */
  returnBytes(data: Uint8Array, ptrAddress: number, sizeAddress: number): void {
    let ptr = 0;
    if (data.length > 0) {
      ptr = this.allocate(data.length);
      if (ptr === 0) throw new GuestMemoryError(`guest allocator returned null for ${data.length} bytes`);
      this.write(ptr, data);
    }
    this.writeU32(ptrAddress, ptr);
    this.writeU32(sizeAddress, data.length);
  }
}
