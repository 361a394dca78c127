/**
 * Large buffers used again: fetch answers (once the socket has taken one), publish bodies (once
 * parsed) and INSERT statements (once the shard answered). A new buffer of 1 MiB each time cost
 * more CPU in page faults than writing into it, and its memory outside the V8 heap added to the
 * garbage collector's work.
 */
export class ReusableBuffers {
  private readonly free: Buffer[] = [];
  /** The buffers `take` made, by their memory: only those are kept. */
  private readonly made = new WeakMap<ArrayBufferLike, Buffer>();

  constructor(
    /** Smaller buffers come from Buffer.allocUnsafe (Node's shared pool). */
    private readonly minBytes = 64 * 1024,
    /** Buffers kept for reuse at most. */
    private readonly keep = 8,
    /** New buffers are rounded up to a multiple of this, so slightly larger ones fit too. */
    private readonly step = 256 * 1024,
  ) {}

  /**
   * A buffer of at least `size` bytes. Give it (or a part of it) back (`give`) once nothing refers
   * to it any more.
   */
  take(size: number): Buffer {
    if (size < this.minBytes) return Buffer.allocUnsafe(size);
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const b = this.free[i];
      if (b.length >= size && (best < 0 || b.length < this.free[best].length)) best = i;
    }
    if (best >= 0) return this.free.splice(best, 1)[0];
    const made = Buffer.allocUnsafeSlow(Math.ceil(size / this.step) * this.step);
    this.made.set(made.buffer, made);
    return made;
  }

  give(part: Buffer): void {
    const buffer = this.made.get(part.buffer);
    if (!buffer) return;
    if (this.free.length >= this.keep) {
      // Full: the smallest goes, if this one is larger.
      let smallest = 0;
      for (let i = 1; i < this.free.length; i++)
        if (this.free[i].length < this.free[smallest].length) smallest = i;
      if (this.free[smallest].length >= buffer.length) return;
      this.free.splice(smallest, 1);
    }
    this.free.push(buffer);
  }

  /** Bytes held for reuse. */
  get heldBytes(): number {
    return this.free.reduce((n, b) => n + b.length, 0);
  }
}
