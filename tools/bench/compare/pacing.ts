/**
 * A fixed offered load: message `i` is due at `start + i / rate`. The sender sends whatever is due
 * whenever it wakes, and latencies are measured from each message's scheduled time, not from when
 * a late sender got round to it, so a stalled system cannot hide its stalls (no coordinated
 * omission). Pure.
 */

/** How many messages are due `elapsedMs` after the start, at `ratePerSecond`, capped at `total`. */
export function dueBy(elapsedMs: number, ratePerSecond: number, total = Infinity): number {
  if (elapsedMs < 0 || ratePerSecond <= 0) return 0;
  // Message 0 is due at once, message i at i * 1000 / rate.
  return Math.min(total, Math.floor((elapsedMs * ratePerSecond) / 1000) + 1);
}

/** When message `index` is due, in the same clock as `startMs`. */
export function scheduledAt(startMs: number, index: number, ratePerSecond: number): number {
  return startMs + (index * 1000) / ratePerSecond;
}

export interface PacingPlan {
  /** Messages offered in all. */
  total: number;
  ratePerSecond: number;
  durationMs: number;
}

/** The plan for `durationMs` at `ratePerSecond`. */
export function pacingPlan(ratePerSecond: number, durationMs: number): PacingPlan {
  if (!(ratePerSecond > 0) || !(durationMs > 0)) {
    throw new RangeError('rate and duration must be positive');
  }
  return { total: Math.floor((ratePerSecond * durationMs) / 1000), ratePerSecond, durationMs };
}

/**
 * What the sender does when it wakes: send the messages from `sent` up to what is due, unless more
 * than `maxOutstanding` are still unacknowledged (the system fell behind by that much: those
 * messages are skipped and counted, rather than queued without bound in the client).
 */
export function nextSends(
  plan: PacingPlan,
  elapsedMs: number,
  sent: number,
  outstanding: number,
  maxOutstanding: number,
): { send: number; skip: number } {
  const due = dueBy(elapsedMs, plan.ratePerSecond, plan.total);
  const wanted = Math.max(0, due - sent);
  const room = Math.max(0, maxOutstanding - outstanding);
  const send = Math.min(wanted, room);
  return { send, skip: wanted - send };
}
