/**
 * Jittered exponential backoff for reconnect loops (informer watches).
 *
 * Why jitter: after an API server restart every informer of every operator replica
 * reconnects; without jitter they all retry in lock-step ("thundering herd"). "Equal
 * jitter" keeps at least half of the computed delay so a flapping server still gets relief.
 */
export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
  factor?: number;
  /** Source of randomness in [0, 1); tests pass a constant. */
  random?: () => number;
}

export class Backoff {
  private attempt = 0;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly factor: number;
  private readonly random: () => number;

  constructor(opts: BackoffOptions = {}) {
    this.initialMs = opts.initialMs ?? 800;
    this.maxMs = opts.maxMs ?? 30_000;
    this.factor = opts.factor ?? 2;
    this.random = opts.random ?? Math.random;
  }

  /** The delay before the next attempt; each call grows the following one. */
  next(): number {
    const d = Math.min(this.maxMs, this.initialMs * this.factor ** this.attempt);
    this.attempt++;
    return Math.round(d / 2 + (this.random() * d) / 2);
  }

  /** Call after a success so the next failure starts from the initial delay again. */
  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}
