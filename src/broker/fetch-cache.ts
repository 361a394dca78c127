import { isUtf8 } from 'node:buffer';
import type { MqError } from '../common/errors.js';
import { encodeJsonLines } from '../common/json-lines.js';
import { encodeFramedAnswer, encodeMessageFrame } from '../common/message-frames.js';
import type { Encoding } from './requests.js';

/** How a fetch answer carries its messages: JSON with values in an encoding, or frames. */
export type AnswerEncoding = Encoding | 'frames';

/**
 * A message on its way to consumers, as the fetch path keeps it: its part of a fetch answer,
 * encoded once and shared by every group's answer. The payload itself is not kept.
 */
export interface FetchedMessage {
  shard: string;
  id: number;
  publishedAt: number;
  /** Payload bytes: what a fetch's maxBytes counts. */
  size: number;
  /**
   * Its frame (message-frames.ts), or its element of a JSON answer's `messages`:
   * `{"shard","id","publishedAt","value"}` as JSON.stringify writes it, in the read's encoding.
   */
  encoded: Buffer;
}

export function fetchedMessage(
  shard: string,
  id: number,
  publishedAt: number,
  payload: Buffer,
  encoding: AnswerEncoding,
): FetchedMessage {
  const size = payload.length;
  if (encoding === 'frames') {
    return { shard, id, publishedAt, size, encoded: encodeMessageFrame(shard, id, publishedAt, payload) };
  }
  const head = `{"shard":${JSON.stringify(shard)},"id":${id},"publishedAt":${publishedAt},"value":`;
  let json: Buffer;
  if (encoding === 'base64') {
    // Base64 text needs no escaping: written as it is, not through JSON.stringify.
    json = withValue(head, payload.toString('base64'));
  } else if (copiesAsJson(payload)) {
    // What decoding, JSON.stringify and encoding again would give: the bytes themselves.
    json = withValue(head, payload);
  } else {
    json = Buffer.from(`${head}${JSON.stringify(payload.toString(encoding))}}`);
  }
  return { shard, id, publishedAt, size, encoded: json };
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const CLOSE_BRACE = 0x7d;

/**
 * `head` then `"value"}`, where `value` is what JSON.stringify leaves as it is: ASCII text (one
 * byte per character) or bytes that `copiesAsJson` accepted.
 */
function withValue(head: string, value: string | Buffer): Buffer {
  const at = Buffer.byteLength(head) + 1;
  const json = Buffer.allocUnsafe(at + value.length + 2);
  json.write(head, 0);
  json[at - 1] = QUOTE;
  if (typeof value === 'string') json.write(value, at, 'latin1');
  else json.set(value, at);
  json[at + value.length] = QUOTE;
  json[at + value.length + 1] = CLOSE_BRACE;
  return json;
}

/**
 * Whether `JSON.stringify(payload.toString('utf8'))` is the payload's own bytes between quotes:
 * no byte below 0x20, no `"` or `\`, and valid UTF-8 (an invalid sequence decodes to U+FFFD; a
 * valid one decodes and encodes back to the same bytes, and JSON.stringify escapes no character
 * of it). Looks at four bytes at a time: a message of 1 KiB costs a fraction of the
 * JSON.stringify it saves.
 */
export function copiesAsJson(payload: Buffer): boolean {
  const length = payload.length;
  let high = 0;
  let i = 0;
  const aligned = Math.min(length, (4 - (payload.byteOffset & 3)) & 3);
  for (; i < aligned; i++) {
    const c = payload[i];
    if (c < 0x20 || c === QUOTE || c === BACKSLASH) return false;
    high |= c;
  }
  const words = (length - i) >>> 2;
  if (words > 0) {
    const view = new Int32Array(payload.buffer, payload.byteOffset + i, words);
    for (let j = 0; j < words; j++) {
      const w = view[j];
      const q = w ^ 0x22222222;
      const b = w ^ 0x5c5c5c5c;
      // Per byte: below 0x20, or equal to `"` or `\` (a zero byte in q or b), sets its top bit.
      if ((((w - 0x20202020) & ~w) | ((q - 0x01010101) & ~q) | ((b - 0x01010101) & ~b)) & 0x80808080) {
        return false;
      }
      high |= w;
    }
    i += words * 4;
  }
  for (; i < length; i++) {
    const c = payload[i];
    if (c < 0x20 || c === QUOTE || c === BACKSLASH) return false;
    high |= c;
  }
  return (high & 0x80808080) === 0 || isUtf8(payload);
}

/**
 * A fetch answer's body: `{messages, positions, heldElsewhere, commitError?}` as JSON, the
 * messages' shared JSON copied in one per line (src/common/json-lines.ts), so the SDK parses a
 * large answer in small pieces; or, when `framed` (messages read with encoding 'frames'), the rest
 * as a JSON header followed by the messages' frames (message-frames.ts). Written into
 * `alloc(size)` when given.
 */
export function fetchAnswerBody(
  answer: {
    messages: FetchedMessage[];
    positions: Record<string, number>;
    heldElsewhere: string[];
    generations: Record<string, number>;
    /** Why the offsets committed along with the fetch were not. */
    commitError?: MqError;
  },
  framed: boolean,
  alloc?: (size: number) => Buffer,
): Buffer {
  const error = answer.commitError;
  const header = {
    positions: answer.positions,
    heldElsewhere: answer.heldElsewhere,
    generations: answer.generations,
    commitError: error ? { status: error.status, ...error.toJSON() } : undefined,
  };
  const encoded = answer.messages.map((m) => m.encoded);
  return framed
    ? encodeFramedAnswer(header, encoded, alloc)
    : encodeJsonLines('messages', encoded, header, alloc);
}

/** What a cached message is counted as: its encoding and the objects around it. */
const costOf = (m: FetchedMessage) => m.encoded.length + 120;

/** Messages a read from `after` returned (gap rule applied), ids ascending, `last` the highest. */
interface Run {
  key: string;
  after: number;
  last: number;
  messages: FetchedMessage[];
  bytes: number;
  /** When a reader last took from it (ms since the epoch). */
  used: number;
}

/** Where a shard read's messages came from. */
export type ReadSource = 'cache' | 'shared' | 'query';

/** A query under way: from `after`, for up to `rows` rows. */
interface Flight {
  after: number;
  rows: number;
  /** The caller's count of commits when the query began (see `read`). */
  commitsAtStart: number;
  /** Whether the query answered. */
  done: Promise<boolean>;
}

/**
 * Recently read messages, per shard instance and topic, for every group of every consumer that
 * comes by: ten groups reading the same messages cost one SELECT and one JSON encoding, not ten.
 *
 * A run holds what a read from position `after` returned once the gap rule (gaps.ts) was applied,
 * so from any position inside it, the rest of the run is exactly what a new read would return:
 * committed rows never change, and a gap the rule stepped over is one it would step over again.
 * A reader whose position lies in the range of a query under way waits for that query rather
 * than sending its own (at the tail, groups stand a few messages apart). Oldest runs go first past
 * `maxBytes`, and runs nobody read from for a while go (`dropIdle`).
 */
export class FetchCache {
  /** Per key, runs sorted by `after`. */
  private readonly runs = new Map<string, Run[]>();
  /** Every run, oldest first. */
  private readonly age: Run[] = [];
  private readonly flights = new Map<string, Set<Flight>>();
  private bytes = 0;
  /** The widest id range any run has covered: bounds how far back a run can reach a position. */
  private maxSpan = 0;

  constructor(
    private readonly maxBytes: number,
    /** A run stops growing at this many messages, so eviction stays fine-grained. */
    private readonly maxRunMessages = 2048,
  ) {}

  /** What the cached messages are counted as, in bytes. */
  get sizeBytes(): number {
    return this.bytes;
  }

  /** Up to `limit` messages that follow `position`, as far as the cache knows them. */
  take(key: string, position: number, limit: number): FetchedMessage[] {
    const out: FetchedMessage[] = [];
    let at = position;
    while (out.length < limit) {
      const run = this.find(key, at);
      if (!run) break;
      run.used = Date.now();
      let i = firstAfter(run.messages, at);
      while (i < run.messages.length && out.length < limit) out.push(run.messages[i++]);
      at = out[out.length - 1].id;
    }
    return out;
  }

  /**
   * Up to `limit` messages after `position`: from the cache, else from the query under way that
   * covers `position`, else from `load(position)` (a query of up to `limit` rows with the gap rule
   * applied), which the cache then keeps.
   *
   * `commits` counts the commits this broker made to the key's topic so far. A query under way
   * that found nothing after `position`, with no commit since it began, answers the readers that
   * waited for it: a query of their own would find the same. At the tail, every group's fetch
   * wakes on each commit and reads every shard; without this, each shard the commit did not touch
   * cost one SELECT per group (docs/benchmarks.md, "Issue 12, round 5").
   */
  async read(
    key: string,
    position: number,
    limit: number,
    load: () => Promise<FetchedMessage[]>,
    commits: () => number,
  ): Promise<{ messages: FetchedMessage[]; source: ReadSource }> {
    const cached = this.take(key, position, limit);
    if (cached.length > 0) return { messages: cached, source: 'cache' };
    let flights = this.flights.get(key);
    const covering = flights && [...flights].find((f) => f.after <= position && position < f.after + f.rows);
    if (covering) {
      const answered = await covering.done;
      const shared = this.take(key, position, limit);
      if (shared.length > 0 || (answered && covering.commitsAtStart === commits())) {
        return { messages: shared, source: 'shared' };
      }
    }
    if (!flights) this.flights.set(key, (flights = new Set()));
    const query = load().then((messages) => {
      this.add(key, position, messages);
      return messages;
    });
    const flight: Flight = {
      after: position,
      rows: limit,
      commitsAtStart: commits(),
      done: query.then(
        () => true,
        () => false,
      ),
    };
    flights.add(flight);
    try {
      return { messages: await query, source: 'query' };
    } finally {
      flights.delete(flight);
      if (flights.size === 0 && this.flights.get(key) === flights) this.flights.delete(key);
    }
  }

  private add(key: string, after: number, messages: FetchedMessage[]): void {
    if (messages.length === 0) return;
    const bytes = messages.reduce((n, m) => n + costOf(m), 0);
    const runs = this.runs.get(key) ?? [];
    this.runs.set(key, runs);
    // A read from where the newest run ended continues it.
    let run = runs.find((r) => r.last === after);
    if (run && run.messages.length + messages.length <= this.maxRunMessages) {
      run.messages.push(...messages);
      run.last = messages[messages.length - 1].id;
      run.bytes += bytes;
    } else {
      run = { key, after, last: messages[messages.length - 1].id, messages, bytes, used: Date.now() };
      runs.splice(insertionIndex(runs, after), 0, run);
      this.age.push(run);
    }
    this.maxSpan = Math.max(this.maxSpan, run.last - run.after);
    this.bytes += bytes;
    this.evict();
  }

  /** Drops runs no reader took from for `idleMs`: the groups that read them have moved on. */
  dropIdle(now: number, idleMs: number): void {
    for (const run of this.age.filter((r) => now - r.used >= idleMs)) this.remove(run);
  }

  private evict(): void {
    while (this.bytes > this.maxBytes && this.age.length > 0) this.remove(this.age[0]);
  }

  private remove(run: Run): void {
    this.age.splice(this.age.indexOf(run), 1);
    this.bytes -= run.bytes;
    const runs = this.runs.get(run.key)!;
    runs.splice(runs.indexOf(run), 1);
    if (runs.length === 0) this.runs.delete(run.key);
  }

  /** A run that holds messages after `position` and starts at or before it. */
  private find(key: string, position: number): Run | undefined {
    const runs = this.runs.get(key);
    if (!runs) return undefined;
    for (let i = insertionIndex(runs, position) - 1; i >= 0 && position - runs[i].after < this.maxSpan; i--) {
      if (runs[i].last > position) return runs[i];
    }
    return undefined;
  }
}

/** Index of the first message with an id above `position`. */
function firstAfter(messages: FetchedMessage[], position: number): number {
  let lo = 0;
  let hi = messages.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (messages[mid].id <= position) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Where a run starting at `after` goes in runs sorted by `after` (after any equal ones). */
function insertionIndex(runs: Run[], after: number): number {
  let lo = 0;
  let hi = runs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (runs[mid].after <= after) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
