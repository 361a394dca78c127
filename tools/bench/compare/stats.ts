/** Latency samples and percentiles for the comparison benchmark. Pure. */

/**
 * The nearest-rank percentile of an ascending list: the smallest value with at least `p` percent
 * of the samples at or below it. NaN for an empty list.
 */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (p < 0 || p > 100 || Number.isNaN(p)) throw new RangeError(`percentile must be 0-100, got ${p}`);
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  const rank = Math.max(1, Math.ceil((p / 100) * n));
  return sorted[rank - 1];
}

export interface LatencySummary {
  count: number;
  p50: number;
  p99: number;
  max: number;
  mean: number;
}

/** A growable list of numbers (milliseconds), cheap enough for millions of samples. */
export class Samples {
  private values = new Float64Array(1024);
  private n = 0;

  get length(): number {
    return this.n;
  }

  push(value: number): void {
    if (this.n === this.values.length) {
      const bigger = new Float64Array(this.values.length * 2);
      bigger.set(this.values);
      this.values = bigger;
    }
    this.values[this.n++] = value;
  }

  /** A sorted copy; the samples themselves are left as they were. */
  sorted(): Float64Array {
    return this.values.slice(0, this.n).sort();
  }

  summary(): LatencySummary {
    const sorted = this.sorted();
    let sum = 0;
    for (const v of sorted) sum += v;
    return {
      count: this.n,
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      max: this.n ? sorted[this.n - 1] : Number.NaN,
      mean: this.n ? sum / this.n : Number.NaN,
    };
  }
}

/** Events per second; 0 when no time passed. */
export function perSecond(count: number, elapsedMs: number): number {
  return elapsedMs > 0 ? (count * 1000) / elapsedMs : 0;
}
