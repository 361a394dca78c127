/**
 * Publish bodies as length-prefixed messages: per message its size in bytes (4 bytes, big-endian),
 * then its bytes. The SDK publishes this way rather than as JSON: no per-message string is built,
 * escaped or parsed on either side, and the broker copies each payload straight from the request
 * into its INSERT (docs/benchmarks.md, "Issue 12, round 5"). Brokers accept JSON as well.
 */
export const FRAMES_CONTENT_TYPE = 'application/vnd.mysqlmq.frames';

export const FRAME_HEADER_BYTES = 4;

/** The framed body of `values` (text as its UTF-8), written into `alloc(size)`. Pure. */
export function encodeFrames(
  values: readonly (Buffer | string)[],
  alloc: (size: number) => Buffer = Buffer.allocUnsafe,
): Buffer {
  const sizes = values.map((v) => (typeof v === 'string' ? Buffer.byteLength(v) : v.length));
  let total = 0;
  for (const size of sizes) total += FRAME_HEADER_BYTES + size;
  const body = alloc(total);
  let at = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    body.writeUInt32BE(sizes[i], at);
    at += FRAME_HEADER_BYTES;
    if (typeof v === 'string') at += body.write(v, at);
    else {
      body.set(v, at);
      at += v.length;
    }
  }
  return body.subarray(0, at);
}
