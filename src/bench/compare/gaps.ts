/**
 * Reading an auto-increment table while INSERTs commit concurrently: ids are handed out when a
 * statement starts but become visible when its transaction commits, and concurrent transactions
 * (several batches in flight on one shard, or two brokers) can commit out of id order. A reader
 * that jumps to the highest id it saw skips the rows of a transaction that commits later with
 * lower ids, for good. A reader must stop at the first gap and wait for it to fill; a gap that
 * stays open longer than any commit can take (a rolled-back or abandoned INSERT leaves a permanent
 * hole) is stepped over. Pure.
 */

export interface GapState {
  /** When the reader first found the gap right after its position, if it is waiting on one. */
  openSince?: number;
}

/**
 * How many of `ids` (ascending, all > `after`) the reader may take now: the run that continues
 * `after` without a hole. If the first id does not continue `after`, nothing is taken until the
 * gap has been open `maxWaitMs`; then the run starting at the first id is taken.
 */
export function readableCount(
  ids: readonly number[],
  after: number,
  state: GapState,
  nowMs: number,
  maxWaitMs: number,
): number {
  if (ids.length === 0) return 0;
  if (ids[0] !== after + 1) {
    state.openSince ??= nowMs;
    if (nowMs - state.openSince < maxWaitMs) return 0;
  }
  state.openSince = undefined;
  let n = 1;
  while (n < ids.length && ids[n] === ids[n - 1] + 1) n++;
  return n;
}
