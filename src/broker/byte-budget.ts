/**
 * Bytes the broker holds for requests under way, with a ceiling: a request that would pass it
 * waits (its body stays in the socket, so TCP slows the client down) until earlier ones finish.
 * First come, first served; a request larger than the whole budget runs once nothing else does.
 */
export class ByteBudget {
  private used = 0;
  private readonly waiting: { bytes: number; go: () => void }[] = [];

  constructor(private readonly limit: number) {}

  acquire(bytes: number): Promise<void> {
    if (this.waiting.length === 0 && this.fits(bytes)) {
      this.used += bytes;
      return Promise.resolve();
    }
    return new Promise((go) => this.waiting.push({ bytes, go }));
  }

  /**
   * Holds `bytes` at once, past the limit if need be: for holders that shrink to fit `room` rather
   * than wait (fetch answers).
   */
  hold(bytes: number): void {
    this.used += bytes;
  }

  /** What fits before the limit. */
  get room(): number {
    return Math.max(0, this.limit - this.used);
  }

  release(bytes: number): void {
    this.used -= bytes;
    while (this.waiting.length > 0 && this.fits(this.waiting[0].bytes)) {
      const next = this.waiting.shift()!;
      this.used += next.bytes;
      next.go();
    }
  }

  private fits(bytes: number): boolean {
    return this.used === 0 || this.used + bytes <= this.limit;
  }
}
