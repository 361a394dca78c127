/**
 * Benchmark payloads: ASCII text of exactly `size` bytes that starts with the time it was meant to
 * be published (performance.now() of the benchmark process, in ms), so a consumer in the same
 * process can compute end-to-end latency from the message alone. Pure.
 */

/** Width of the time stamp: 15 digits with 3 decimals, then '|'. */
export const STAMP_WIDTH = 16;
export const MIN_PAYLOAD_BYTES = STAMP_WIDTH + 1;

const fillers = new Map<number, string>();

export function stampedPayload(size: number, stampMs: number): string {
  if (!Number.isInteger(size) || size < MIN_PAYLOAD_BYTES) {
    throw new RangeError(`payload size must be an integer >= ${MIN_PAYLOAD_BYTES}, got ${size}`);
  }
  if (!(stampMs >= 0) || stampMs >= 1e11) throw new RangeError(`time stamp out of range: ${stampMs}`);
  let filler = fillers.get(size);
  if (filler === undefined) fillers.set(size, (filler = 'x'.repeat(size - STAMP_WIDTH)));
  return stampMs.toFixed(3).padStart(STAMP_WIDTH - 1, '0') + '|' + filler;
}

/** The time stamp of a stamped payload, or NaN if it has none. */
export function readStamp(value: string | Buffer | Uint8Array): number {
  const head =
    typeof value === 'string'
      ? value.slice(0, STAMP_WIDTH)
      : Buffer.from(value.buffer, value.byteOffset, Math.min(STAMP_WIDTH, value.byteLength)).toString(
          'latin1',
        );
  if (head.length < STAMP_WIDTH || head[STAMP_WIDTH - 1] !== '|') return Number.NaN;
  return Number(head.slice(0, STAMP_WIDTH - 1));
}
