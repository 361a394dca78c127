/**
 * Messages as length-prefixed bytes instead of JSON, between the SDK and the brokers: no
 * per-message string is built, escaped or parsed on either side (docs/benchmarks.md, "Issue 12,
 * round 5"). Brokers take and give JSON as well (curl, other languages, older SDKs). Pure.
 *
 * A publish body is, per message, its size in bytes (4 bytes, big-endian) then its bytes; the
 * broker copies each payload straight from the request into its INSERT.
 *
 * A fetch answer is its size-prefixed JSON header (`{positions, heldElsewhere, generations,
 * commitError?}`, as in the JSON answer) followed by one frame per message: payload size (4
 * bytes), id and publish time (8-byte doubles), shard name size (2 bytes), shard name (UTF-8),
 * payload. A frame is built once per message and shared by every group's answer.
 */
export const FRAMES_CONTENT_TYPE = 'application/vnd.mysqlmq.frames';

export const FRAME_HEADER_BYTES = 4;

/** The framed publish body of `values` (text as its UTF-8), written into `alloc(size)`. */
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

/** Payload size, id, publish time, shard name size. */
const MESSAGE_HEADER_BYTES = 4 + 8 + 8 + 2;

/** One message's frame of a fetch answer. */
export function encodeMessageFrame(shard: string, id: number, publishedAt: number, payload: Buffer): Buffer {
  const shardBytes = Buffer.byteLength(shard);
  const frame = Buffer.allocUnsafe(MESSAGE_HEADER_BYTES + shardBytes + payload.length);
  frame.writeUInt32BE(payload.length, 0);
  frame.writeDoubleBE(id, 4);
  frame.writeDoubleBE(publishedAt, 12);
  frame.writeUInt16BE(shardBytes, 20);
  frame.write(shard, MESSAGE_HEADER_BYTES);
  frame.set(payload, MESSAGE_HEADER_BYTES + shardBytes);
  return frame;
}

/** A framed fetch answer: `header` as JSON, then the messages' frames. */
export function encodeFramedAnswer(
  header: Record<string, unknown>,
  frames: readonly Buffer[],
  alloc: (size: number) => Buffer = Buffer.allocUnsafe,
): Buffer {
  const json = JSON.stringify(header);
  const jsonBytes = Buffer.byteLength(json);
  let size = FRAME_HEADER_BYTES + jsonBytes;
  for (const f of frames) size += f.length;
  const body = alloc(size);
  body.writeUInt32BE(jsonBytes, 0);
  let at = FRAME_HEADER_BYTES + body.write(json, FRAME_HEADER_BYTES);
  for (const f of frames) {
    // TypedArray#set: Buffer#copy's argument handling cost several times more per element.
    body.set(f, at);
    at += f.length;
  }
  return body.subarray(0, at);
}

export interface FramedMessage<V> {
  shard: string;
  id: number;
  publishedAt: number;
  value: V;
}

/**
 * The header and messages of a framed fetch answer; values as text, or as copies of their bytes
 * (the answer's buffer is not kept alive by them). Throws on a body cut short.
 */
export function decodeFramedAnswer(
  body: Buffer,
  binary: boolean,
): { header: unknown; messages: FramedMessage<string | Buffer>[] } {
  const fail = () => new Error(`framed answer cut short (${body.length} bytes)`);
  if (body.length < FRAME_HEADER_BYTES) throw fail();
  const jsonEnd = FRAME_HEADER_BYTES + body.readUInt32BE(0);
  if (jsonEnd > body.length) throw fail();
  const header = JSON.parse(body.toString('utf8', FRAME_HEADER_BYTES, jsonEnd)) as unknown;
  const messages: FramedMessage<string | Buffer>[] = [];
  // Consecutive messages mostly come from the same shard: its name decoded once per run.
  let shard = '';
  let shardStart = -1;
  let shardEnd = -1;
  for (let at = jsonEnd; at < body.length;) {
    if (at + MESSAGE_HEADER_BYTES > body.length) throw fail();
    const size = body.readUInt32BE(at);
    const id = body.readDoubleBE(at + 4);
    const publishedAt = body.readDoubleBE(at + 12);
    const nameStart = at + MESSAGE_HEADER_BYTES;
    const nameEnd = nameStart + body.readUInt16BE(at + 20);
    const end = nameEnd + size;
    if (end > body.length) throw fail();
    if (shardStart < 0 || body.compare(body, nameStart, nameEnd, shardStart, shardEnd) !== 0) {
      shard = body.toString('utf8', nameStart, nameEnd);
    }
    [shardStart, shardEnd] = [nameStart, nameEnd];
    const value = binary ? Buffer.from(body.subarray(nameEnd, end)) : body.toString('utf8', nameEnd, end);
    messages.push({ shard, id, publishedAt, value });
    at = end;
  }
  return { header, messages };
}
