/**
 * Reading an auto-increment table while INSERTs commit concurrently: ids are handed out when a
 * statement runs but become visible when its transaction commits, and concurrent transactions
 * (several batches in flight on one shard, or two brokers) commit out of id order. A reader that
 * jumps to the highest id it saw skips, for good, the rows of a transaction that commits later with
 * lower ids. So a reader stops at the first gap and waits for it to fill. A gap can also stay open
 * forever (a rolled-back or abandoned INSERT), so it is stepped over once it is old enough that the
 * missing rows can no longer belong to an acknowledged publish. Pure.
 */

export interface IdRow {
  id: number;
  /**
   * When the row's INSERT began on the shard's primary, by the primary's clock (ms since the
   * epoch). Brokers' clocks play no part: a broker whose clock is off cannot make rows look old.
   */
  publishedAt: number;
}

/**
 * How long a gap must be open before it is stepped over, given the writer's commit deadline.
 *
 * The missing ids were assigned before those of the row after the gap, so their INSERT reached
 * the database no later than that row's did; and a publish is acknowledged only when its commit
 * returned within `commitTimeoutMs` of the INSERT being sent. Two deadlines keep the margin the
 * rule had when rows were stamped by the broker before sending; `clockSkewMs` covers a standby
 * whose clock disagrees with its primary's (reads from a standby judge the primary's stamps).
 */
export function maxGapAgeMs(commitTimeoutMs: number, clockSkewMs = 1000): number {
  return 2 * commitTimeoutMs + clockSkewMs;
}

/**
 * How many of `rows` (ascending ids, all > `after`) the reader may take now: up to the first gap
 * (a row whose id does not follow the previous row's, or `after`) whose next row was published
 * less than `maxAgeMs` before `nowMs`. `nowMs` is the read instance's clock, taken before the read
 * began, so a transaction that committed after the read's snapshot cannot be mistaken for one that
 * never will.
 */
export function readableCount(
  rows: readonly IdRow[],
  after: number,
  nowMs: number,
  maxAgeMs: number,
): number {
  let previous = after;
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i];
    if (row.id !== previous + 1 && nowMs - row.publishedAt < maxAgeMs) return i;
    previous = row.id;
  }
  return rows.length;
}
