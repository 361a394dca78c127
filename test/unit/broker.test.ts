import { describe, expect, it } from 'vitest';
import { ByteBudget } from '../../src/broker/byte-budget.js';
import { createServer, get as httpGet } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sendBytes } from '../../src/broker/http-util.js';
import { ReusableBuffers } from '../../src/common/reusable-buffers.js';
import { MqError } from '../../src/common/errors.js';
import {
  type AnswerEncoding,
  FetchCache,
  type FetchedMessage,
  fetchAnswerBody,
  fetchedMessage,
} from '../../src/broker/fetch-cache.js';
import { mergeShardReads } from '../../src/broker/fetcher.js';
import { insertStatement } from '../../src/broker/queue-store.js';
import { decodeFramedAnswer, encodeFrames } from '../../src/common/message-frames.js';
import { STATEMENT_HEADROOM } from '../../src/shard/statement-bytes.js';
import { maxGapAgeMs, readableCount } from '../../src/broker/gaps.js';
import { deadLetterBody } from '../../src/broker/dead-letters.js';
import {
  parseCommit,
  parseCreateTopic,
  parseFetch,
  parseFramedPublish,
  parsePublish,
  parseReset,
  parseTopicPatch,
} from '../../src/broker/requests.js';
import { parseRouting } from '../../src/api/routing.js';
import { writeEligible } from '../../src/broker/shard-health.js';

const msg = (id: number, size = 10, shard = 'a') =>
  fetchedMessage(shard, id, 0, Buffer.alloc(size, 'x'), 'utf8');

describe('routing documents', () => {
  it('accepts a valid document and defaults requireStandbyAck to true', () => {
    const doc = parseRouting({
      version: 3,
      shards: [{ name: 'shard-0', write: { host: '10.0.0.1', port: 3306 }, read: { host: '10.0.0.2' } }],
    });
    expect(doc.shards[0]).toEqual({
      name: 'shard-0',
      write: { host: '10.0.0.1', port: 3306 },
      read: { host: '10.0.0.2', port: 3306 },
      requireStandbyAck: true,
    });
  });

  it.each([
    [{ shards: [] }, /version/],
    [{ version: 1, shards: [{ name: 'A', write: null, read: null }] }, /name/],
    [{ version: 1, shards: [{ name: 'a', write: { host: 'h', port: 0 }, read: null }] }, /port/],
    [{ version: 1, shards: [{ name: 'a', read: null, extra: 1 }] }, /unknown field "extra"/],
    [{ version: 1, shards: [{ name: 'a' }, { name: 'a' }] }, /repeated/],
  ])('rejects %j', (doc, message) => {
    expect(() => parseRouting(doc)).toThrow(message);
  });
});

describe('write eligibility', () => {
  const healthy = { reachable: true, readOnly: false, semiSyncActive: true, semiSyncStandbys: 1 };
  it('needs a connected semi-sync standby when acknowledgements are required', () => {
    expect(writeEligible(healthy, true)).toBe(true);
    expect(writeEligible({ ...healthy, semiSyncStandbys: 0 }, true)).toBe(false);
    expect(writeEligible({ ...healthy, semiSyncActive: false }, true)).toBe(false);
    expect(writeEligible({ ...healthy, semiSyncActive: false, semiSyncStandbys: 0 }, false)).toBe(true);
  });
  it('never writes to a read-only or unreachable instance', () => {
    expect(writeEligible({ ...healthy, readOnly: true }, false)).toBe(false);
    expect(writeEligible({ ...healthy, reachable: false }, false)).toBe(false);
  });
});

describe('merging shard reads', () => {
  it('interleaves shards and reports positions after what is returned', () => {
    const result = mergeShardReads(
      [
        { kind: 'read', shard: 'a', start: 0, generation: 7, messages: [msg(1), msg(2), msg(3)] },
        { kind: 'read', shard: 'b', start: 40, generation: 8, messages: [msg(41, 10, 'b')] },
        { kind: 'held', shard: 'c' },
      ],
      { maxMessages: 3, maxBytes: 1000 },
    );
    expect(result.messages.map((m) => `${m.shard}${m.id}`)).toEqual(['a1', 'b41', 'a2']);
    expect(result.positions).toEqual({ a: 2, b: 41 });
    expect(result.heldElsewhere).toEqual(['c']);
    expect(result.generations).toEqual({ a: 7, b: 8 });
  });

  it('respects maxBytes but always returns at least one message', () => {
    const big = mergeShardReads(
      [{ kind: 'read', shard: 'a', start: 5, generation: 0, messages: [msg(6, 500), msg(7, 500)] }],
      {
        maxMessages: 10,
        maxBytes: 100,
      },
    );
    expect(big.messages.map((m) => m.id)).toEqual([6]);
    expect(big.positions).toEqual({ a: 6 });
  });

  it('reports the start position of a shard with nothing new', () => {
    const none = mergeShardReads([{ kind: 'read', shard: 'a', start: 9, generation: 3, messages: [] }], {
      maxMessages: 1,
      maxBytes: 1,
    });
    expect(none).toEqual({ messages: [], positions: { a: 9 }, heldElsewhere: [], generations: { a: 3 } });
  });
});

describe('reading past concurrently committing INSERTs', () => {
  const AGE = 5000;
  const NOW = 1_000_000;
  /** Rows with the given ids, published `ageMs` before NOW. */
  const rows = (ids: number[], ageMs = 0) => ids.map((id) => ({ id, publishedAt: NOW - ageMs }));

  it('takes every row that continues the position', () => {
    expect(readableCount(rows([1, 2, 3]), 0, NOW, AGE)).toBe(3);
    expect(readableCount(rows([11, 12, 13]), 10, NOW, AGE)).toBe(3);
    expect(readableCount([], 10, NOW, AGE)).toBe(0);
  });

  it('stops before a young gap: a transaction with lower ids may still commit', () => {
    expect(readableCount(rows([1, 2, 3, 1001, 1002]), 0, NOW, AGE)).toBe(3);
    // Rows 1001.. committed before 1..1000: nothing yet.
    expect(readableCount(rows([1001, 1002]), 0, NOW, AGE)).toBe(0);
  });

  it('steps over a gap once the row after it is older than the limit (a rolled-back INSERT)', () => {
    expect(readableCount(rows([5, 6, 8], AGE - 1), 2, NOW, AGE)).toBe(0);
    expect(readableCount(rows([5, 6, 8], AGE), 2, NOW, AGE)).toBe(3);
  });

  it('judges each gap by the row right after it', () => {
    const list = [...rows([4, 5], AGE + 1), ...rows([9, 10], 10), ...rows([20], 5)];
    // 4 follows an old gap after 1, 9 a young one after 5.
    expect(readableCount(list, 1, NOW, AGE)).toBe(2);
    expect(readableCount(list, 1, NOW + AGE, AGE)).toBe(5);
  });

  it('never steps over a gap when told to wait for good', () => {
    expect(readableCount(rows([7, 8], 1e9), 2, NOW, Infinity)).toBe(0);
  });

  it('allows two commit deadlines and clock skew', () => {
    expect(maxGapAgeMs(2000)).toBe(5000);
    expect(maxGapAgeMs(2000, 0)).toBe(4000);
  });
});

describe('the publish byte budget', () => {
  it('lets requests in while they fit, then one by one in arrival order as bytes are released', async () => {
    const budget = new ByteBudget(10);
    const order: string[] = [];
    const take = (name: string, bytes: number) => budget.acquire(bytes).then(() => order.push(name));
    await take('a', 6);
    const waiting = [take('b', 6), take('c', 1)];
    await Promise.resolve();
    // 'c' would fit, but 'b' came first.
    expect(order).toEqual(['a']);
    budget.release(6);
    await Promise.all(waiting);
    expect(order).toEqual(['a', 'b', 'c']);
  });

  it('lets a request larger than the whole budget in alone', async () => {
    const budget = new ByteBudget(10);
    await budget.acquire(50);
    let second = false;
    const next = budget.acquire(1).then(() => (second = true));
    await Promise.resolve();
    expect(second).toBe(false);
    budget.release(50);
    await next;
    expect(second).toBe(true);
  });
});

describe('the fetch answer budget', () => {
  it('gives the room left, held past the limit if need be, back as answers go', () => {
    const budget = new ByteBudget(10);
    expect(budget.room).toBe(10);
    budget.hold(6);
    expect(budget.room).toBe(4);
    // An answer carries at least one message, whatever the room.
    budget.hold(9);
    expect(budget.room).toBe(0);
    budget.release(9);
    expect(budget.room).toBe(4);
    budget.release(6);
    expect(budget.room).toBe(10);
  });
});

describe('the fetch cache', () => {
  const run = (ids: number[], size = 10) => ids.map((id) => msg(id, size));
  const ids = (ms: FetchedMessage[]) => ms.map((m) => m.id);
  const noCommits = () => 0;
  const never = async (): Promise<FetchedMessage[]> => {
    throw new Error('the cache should have answered');
  };

  it('serves the rest of a read to any position inside it, and continues runs that follow', async () => {
    const cache = new FetchCache(1 << 20);
    const first = await cache.read('k', 10, 100, async () => run([11, 12, 13]), noCommits);
    expect([ids(first.messages), first.source]).toEqual([[11, 12, 13], 'query']);
    expect(await cache.read('k', 12, 100, never, noCommits)).toEqual({
      messages: [msg(13)],
      source: 'cache',
    });
    expect(ids(cache.take('k', 10, 100))).toEqual([11, 12, 13]);
    expect(ids(cache.take('k', 11, 1))).toEqual([12]);
    // Nothing is known after the last message, nor before the read's position, nor for other keys.
    expect(cache.take('k', 13, 100)).toEqual([]);
    expect(cache.take('k', 9, 100)).toEqual([]);
    expect(cache.take('other', 10, 100)).toEqual([]);
    // A stepped-over hole (14..19) is part of the run that read past it.
    await cache.read('k', 13, 100, async () => run([20, 21]), noCommits);
    expect(ids(cache.take('k', 10, 100))).toEqual([11, 12, 13, 20, 21]);
    expect(ids(cache.take('k', 15, 100))).toEqual([20, 21]);
  });

  it('lets readers whose position a query under way covers wait for it instead of querying', async () => {
    const cache = new FetchCache(1 << 20);
    let release!: () => void;
    const slow = async () => {
      await new Promise<void>((r) => (release = r));
      return run([1, 2, 3]);
    };
    const reads = [
      cache.read('k', 0, 100, slow, noCommits),
      cache.read('k', 0, 100, never, noCommits),
      cache.read('k', 2, 100, never, noCommits),
      // Beyond what the first query may return (100 rows): a query of its own.
      cache.read('k', 500, 100, async () => run([501]), noCommits),
    ];
    await new Promise((r) => setImmediate(r));
    release();
    const [a, b, c, d] = await Promise.all(reads);
    expect([ids(a.messages), a.source]).toEqual([[1, 2, 3], 'query']);
    expect([ids(b.messages), b.source]).toEqual([[1, 2, 3], 'shared']);
    expect([ids(c.messages), c.source]).toEqual([[3], 'shared']);
    expect([ids(d.messages), d.source]).toEqual([[501], 'query']);
    // After the shared query: a position it did not reach queries again.
    expect(ids((await cache.read('k', 3, 100, async () => run([4]), noCommits)).messages)).toEqual([4]);
  });

  it('answers readers that waited for an empty query with nothing, unless a commit came since it began', async () => {
    const cache = new FetchCache(1 << 20);
    let commits = 0;
    const counted = () => commits;
    let release!: () => void;
    const emptyTail = async () => {
      await new Promise<void>((r) => (release = r));
      return [];
    };
    // Ten groups at the tail of a shard the last commit did not touch: one SELECT.
    const first = [cache.read('k', 7, 100, emptyTail, counted), cache.read('k', 7, 100, never, counted)];
    await new Promise((r) => setImmediate(r));
    release();
    expect(await Promise.all(first)).toEqual([
      { messages: [], source: 'query' },
      { messages: [], source: 'shared' },
    ]);
    // A commit while the query was under way: what it found may be stale, so the waiter asks again.
    const second = [
      cache.read('k', 7, 100, emptyTail, counted),
      cache.read('k', 7, 100, async () => run([8]), counted),
    ];
    await new Promise((r) => setImmediate(r));
    commits++;
    release();
    const [, again] = await Promise.all(second);
    expect([ids(again.messages), again.source]).toEqual([[8], 'query']);
    // A failed query answers nobody else either.
    const failing = cache.read('k', 8, 100, async () => Promise.reject(new Error('lost')), counted);
    const waiting = cache.read('k', 8, 100, async () => run([9]), counted);
    await expect(failing).rejects.toThrow('lost');
    expect(ids((await waiting).messages)).toEqual([9]);
  });

  it('keeps nothing from an empty read and drops the oldest runs past its size', async () => {
    // What one of these messages counts as: its JSON and some room for the objects.
    const each = msg(1, 100).encoded.length + 120;
    const cache = new FetchCache(3 * each, 2);
    await cache.read('k', 0, 10, async () => [], noCommits);
    expect(cache.sizeBytes).toBe(0);
    await cache.read('k', 0, 10, async () => run([1, 2], 100), noCommits);
    expect(cache.sizeBytes).toBe(2 * each);
    // Runs hold at most 2 messages here, so this is a second run; the first goes.
    await cache.read('k', 2, 10, async () => run([3, 4], 100), noCommits);
    expect(cache.sizeBytes).toBe(2 * each);
    expect(cache.take('k', 0, 10)).toEqual([]);
    expect(ids(cache.take('k', 2, 10))).toEqual([3, 4]);
  });

  it('drops what no reader took for a while', async () => {
    const cache = new FetchCache(1 << 20);
    await cache.read('old', 0, 10, async () => run([1, 2]), noCommits);
    await cache.read('new', 0, 10, async () => run([1, 2]), noCommits);
    const now = Date.now();
    cache.take('new', 0, 10);
    cache.dropIdle(now + 4000, 5000);
    expect(ids(cache.take('old', 0, 10))).toEqual([1, 2]);
    cache.dropIdle(Date.now() + 5000, 5000);
    expect(cache.take('old', 0, 10)).toEqual([]);
    expect(cache.take('new', 0, 10)).toEqual([]);
    expect(cache.sizeBytes).toBe(0);
  });
});

describe('fetch answers', () => {
  it('are the JSON of the answer, one message per line, whatever the payload holds', () => {
    const stored = [
      { shard: 'shard-0', id: 7, publishedAt: 0, payload: Buffer.from('quote " back \\ nl \n é 🎉 \u0001') },
      { shard: 'shard-1', id: 9, publishedAt: 1700000000123, payload: Buffer.from([0xff, 0, 1]) },
    ];
    const positions = { 'shard-0': 7, 'shard-1': 9 };
    const heldElsewhere = ['shard-2'];
    for (const encoding of ['utf8', 'base64'] as const) {
      const messages = stored.map((m) => fetchedMessage(m.shard, m.id, m.publishedAt, m.payload, encoding));
      expect(messages.map((m) => m.size)).toEqual(stored.map((m) => m.payload.length));
      const expected = stored.map((m) => ({
        shard: m.shard,
        id: m.id,
        publishedAt: m.publishedAt,
        value: m.payload.toString(encoding),
      }));
      const generations = { 'shard-0': 2 };
      const body = fetchAnswerBody({ messages, positions, heldElsewhere, generations }, false).toString();
      expect(JSON.parse(body)).toEqual({ messages: expected, positions, heldElsewhere, generations });
      // Each message's JSON exactly as JSON.stringify writes it, on a line of its own.
      const lines = body.split('\n');
      expect(lines.slice(1, -1).map((l) => l.replace(/,$/, ''))).toEqual(
        expected.map((m) => JSON.stringify(m)),
      );
    }
    expect(
      fetchAnswerBody({ messages: [], positions: {}, heldElsewhere: [], generations: {} }, false).toString(),
    ).toBe('{"messages":[],"positions":{},"heldElsewhere":[],"generations":{}}');
  });

  it('carry each payload exactly as JSON.stringify of its decoded text, at any offset in memory', () => {
    // The reference: what the broker wrote before payloads were copied as they are.
    const reference = (payload: Buffer, encoding: 'utf8' | 'base64') =>
      Buffer.from(
        `{"shard":"shard-0","id":42,"publishedAt":1700000000123,"value":${JSON.stringify(payload.toString(encoding))}}`,
      );
    const texts = [
      '',
      'x',
      "plain ASCII text of some length, ~!@#$%^&*()_+{}|:<>?`-=[];',.".repeat(9),
      'quote " inside',
      'back \\ slash',
      'tab\there',
      'newline\n',
      '\u0000 NUL first',
      'DEL \u007f is not escaped',
      'é non-ASCII 🎉 UTF-8 ✓',
      'x'.repeat(1000) + '"',
      'x'.repeat(1000) + '\u001f',
      'x'.repeat(1003) + 'é',
    ];
    const payloads = [
      ...texts.map((t) => Buffer.from(t)),
      Buffer.from([0xff, 0, 1]), // invalid UTF-8
      Buffer.from([0x61, 0xc3]), // truncated sequence
      Buffer.from([0xc0, 0xaf]), // overlong '/'
      Buffer.from([0xed, 0xa0, 0x80]), // an encoded surrogate
      Buffer.from([0xf4, 0x90, 0x80, 0x80]), // past U+10FFFF
      Buffer.from('abc\u2028\u2029def'), // line separators: JSON.stringify leaves them
    ];
    // Every byte value, alone and inside ASCII text, so each falls in every lane of a 4-byte word.
    for (let b = 0; b < 256; b++) {
      payloads.push(Buffer.from([b]));
      for (let lane = 0; lane < 4; lane++) {
        const p = Buffer.alloc(11, 'a');
        p[4 + lane] = b;
        payloads.push(p);
      }
    }
    for (const payload of payloads) {
      for (let offset = 0; offset < 4; offset++) {
        // The payload at each alignment inside a larger buffer, as mysql2 hands rows over.
        const backing = Buffer.alloc(payload.length + 8, 0x22);
        payload.copy(backing, offset);
        const at = backing.subarray(offset, offset + payload.length);
        for (const encoding of ['utf8', 'base64'] as const) {
          const m = fetchedMessage('shard-0', 42, 1700000000123, at, encoding);
          expect(
            m.encoded.equals(reference(payload, encoding)),
            `${encoding} ${payload.toString('hex')} +${offset}`,
          ).toBe(true);
          expect(m.size).toBe(payload.length);
        }
      }
    }
  });

  it('name a shard as JSON.stringify does, whatever its name', () => {
    const m = fetchedMessage('shärd "1"', 1, 2, Buffer.from('v'), 'utf8');
    expect(m.encoded.toString()).toBe(
      JSON.stringify({ shard: 'shärd "1"', id: 1, publishedAt: 2, value: 'v' }),
    );
    const b = fetchedMessage('shärd "1"', 1, 2, Buffer.from([0xff]), 'base64');
    expect(b.encoded.toString()).toBe(
      JSON.stringify({ shard: 'shärd "1"', id: 1, publishedAt: 2, value: '/w==' }),
    );
  });

  it('say why the offsets sent along were not committed', () => {
    const commitError = new MqError(503, 'offsets_unavailable', 'no shard takes writes now');
    expect(
      JSON.parse(
        fetchAnswerBody(
          {
            messages: [],
            positions: {},
            heldElsewhere: [],
            generations: {},
            commitError,
          },
          false,
        ).toString(),
      ),
    ).toEqual({
      messages: [],
      positions: {},
      heldElsewhere: [],
      generations: {},
      commitError: { status: 503, code: 'offsets_unavailable', message: 'no shard takes writes now' },
    });
  });
});

describe('reusable buffers', () => {
  it('serve small bodies from the shared pool and large ones again once given back', () => {
    const buffers = new ReusableBuffers(1024, 2, 4096);
    expect(buffers.take(100).length).toBe(100);
    const a = buffers.take(5000);
    expect(a.length).toBe(8192);
    expect(buffers.take(5000)).not.toBe(a);
    buffers.give(a);
    expect(buffers.heldBytes).toBe(8192);
    expect(buffers.take(9000)).not.toBe(a);
    expect(buffers.take(8000)).toBe(a);
    expect(buffers.heldBytes).toBe(0);
    // The smallest fitting one; at most `keep` kept, larger ones preferred.
    const [b, c, d] = [buffers.take(2000), buffers.take(6000), buffers.take(10000)];
    buffers.give(d);
    buffers.give(b);
    expect(buffers.take(1500)).toBe(b);
    buffers.give(b);
    buffers.give(c);
    expect(buffers.heldBytes).toBe(d.length + c.length);
    buffers.give(buffers.take(100));
    expect(buffers.heldBytes).toBe(d.length + c.length);
    // Only what `take` made is kept: a part of it counts as the whole, another buffer not at all.
    const e = buffers.take(20000);
    buffers.give(Buffer.allocUnsafeSlow(50000));
    expect(buffers.heldBytes).toBe(d.length + c.length);
    buffers.give(e.subarray(100, 200));
    expect(buffers.take(20000)).toBe(e);
  });

  it('are used again only once the socket has taken the answer, however slowly the client reads', async () => {
    const buffers = new ReusableBuffers(1024, 2, 64 * 1024);
    const size = 12 << 20; // beyond what a loopback socket takes at once
    const server = createServer((req, res) => {
      const fill = Number(req.url!.slice(1));
      const backing = buffers.take(size);
      sendBytes(res, 200, 'application/json', backing.subarray(0, size).fill(fill), () =>
        buffers.give(backing),
      );
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    try {
      const get = (fill: number, pauseMs: number) =>
        new Promise<Buffer>((resolve, reject) => {
          httpGet({ host: '127.0.0.1', port, path: `/${fill}`, agent: false }, (res) => {
            const chunks: Buffer[] = [];
            res.pause();
            setTimeout(() => res.resume(), pauseMs);
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => resolve(Buffer.concat(chunks)));
            res.on('error', reject);
          }).on('error', reject);
        });
      const bodies = await Promise.all(Array.from({ length: 6 }, (_, i) => get(i + 1, (i % 3) * 100)));
      bodies.forEach((b, i) => {
        expect(b.length).toBe(size);
        expect(b.every((x) => x === i + 1)).toBe(true);
      });
      expect(buffers.heldBytes).toBeGreaterThan(0);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('take the fetch answer written into them', () => {
    const buffers = new ReusableBuffers(16, 2, 64);
    const messages = [fetchedMessage('shard-0', 1, 2, Buffer.from('v'), 'utf8')];
    const answer = { messages, positions: { 'shard-0': 1 }, heldElsewhere: [], generations: {} };
    let backing: Buffer | undefined;
    const body = fetchAnswerBody(answer, false, (size) => (backing = buffers.take(size)));
    expect(body.buffer).toBe(backing!.buffer);
    expect(body.equals(fetchAnswerBody(answer, false))).toBe(true);
  });

  it('framed, carry the same header and messages as the JSON answer, whatever the payload and shard name', () => {
    const stored = [
      { shard: 'shard-0', id: 7, publishedAt: 1700000000123, payload: Buffer.from('plain') },
      { shard: 'shard-0', id: 8, publishedAt: 1700000000124, payload: Buffer.from([0, 0xff, 0x22, 0x5c]) },
      { shard: 'shärd "1"', id: 2 ** 40, publishedAt: 5, payload: Buffer.alloc(0) },
      { shard: 'shard-0', id: 9, publishedAt: 6, payload: Buffer.from('é') },
    ];
    const answer = (encoding: AnswerEncoding) => ({
      messages: stored.map((m) => fetchedMessage(m.shard, m.id, m.publishedAt, m.payload, encoding)),
      positions: { 'shard-0': 9 },
      heldElsewhere: ['shard-2'],
      generations: { 'shard-0': 1 },
      commitError: new MqError(503, 'offsets_unavailable', 'later'),
    });
    const json = JSON.parse(fetchAnswerBody(answer('base64'), false).toString()) as Record<string, unknown>;
    const binary = decodeFramedAnswer(fetchAnswerBody(answer('frames'), true), true);
    const { messages, ...header } = json;
    expect(binary.header).toEqual(header);
    expect(binary.messages).toEqual(
      (messages as { value: string }[]).map((m) => ({ ...m, value: Buffer.from(m.value, 'base64') })),
    );
    const text = decodeFramedAnswer(fetchAnswerBody(answer('frames'), true), false);
    expect(text.messages.map((m) => m.value)).toEqual(stored.map((m) => m.payload.toString()));
    const body = fetchAnswerBody(answer('frames'), true);
    expect(() => decodeFramedAnswer(body.subarray(0, body.length - 1), true)).toThrow(/cut short/);
  });
});

describe('the multi-row INSERT', () => {
  it('quotes text, escaping only quote, backslash and NUL, writes bytes as a binary literal, stamps by the shard', () => {
    const statement = insertStatement('mq.m_9', [
      'ab',
      'it\'s \\ \0 "é"',
      Buffer.from([0, 0x27, 0xff, 0x5c]),
      Buffer.from('plain'),
    ]);
    // The shard's time computed once, in the first row; the others take it from the variable.
    // Bytes go in as a binary literal, escaped like text.
    expect(statement.subarray(STATEMENT_HEADROOM).toString('latin1')).toBe(
      'INSERT INTO mq.m_9 (published_at, payload) VALUES ' +
        `(@mq_now:=UNIX_TIMESTAMP(NOW(3))*1000,'ab'),(@mq_now,'it\\'s \\\\ \\0 "Ã©"'),` +
        `(@mq_now,_binary'\\0\\'\xff\\\\'),(@mq_now,_binary'plain')`,
    );
  });
});

describe('request parsing', () => {
  const limits = { maxMessageBytes: 4, maxMessagesPerPublish: 2 };
  it('decodes base64 and enforces limits', () => {
    expect(parsePublish({ messages: [{ value: 'AAEC' }], encoding: 'base64' }, limits)).toEqual({
      payloads: [Buffer.from([0, 1, 2])],
      bytes: 3,
    });
    // Text stays a string; its size is its UTF-8 length.
    expect(parsePublish({ messages: [{ value: 'é' }, { value: 'ab' }] }, limits)).toEqual({
      payloads: ['é', 'ab'],
      bytes: 4,
    });
    expect(() => parsePublish({ messages: [{ value: 'ééé' }] }, limits)).toThrow(/6 bytes; the limit is 4/);
    expect(() => parsePublish({ messages: [{ value: 'abcde' }] }, limits)).toThrow(/limit is 4/);
    expect(() =>
      parsePublish({ messages: [{ value: 'a' }, { value: 'b' }, { value: 'c' }] }, limits),
    ).toThrow(/at most 2/);
  });
  it('splits what encodeFrames writes back into the messages, and enforces the same limits', () => {
    const body = encodeFrames(['é', Buffer.from([0, 1]), '']);
    const { payloads, bytes } = parseFramedPublish(body, { ...limits, maxMessagesPerPublish: 3 });
    expect(payloads).toEqual([Buffer.from('é'), Buffer.from([0, 1]), Buffer.alloc(0)]);
    expect(bytes).toBe(4);
    expect(() => parseFramedPublish(Buffer.alloc(0), limits)).toThrow(/at least one message/);
    expect(() => parseFramedPublish(encodeFrames(['abcde']), limits)).toThrow(
      /message 0 is 5 bytes; the limit is 4/,
    );
    expect(() => parseFramedPublish(encodeFrames(['a', 'b', 'c']), limits)).toThrow(/at most 2/);
    expect(() => parseFramedPublish(body.subarray(0, 11), limits)).toThrow(
      /message 1 is 2 bytes but the body ends 1 bytes after its size/,
    );
  });
  it('fills fetch defaults', () => {
    expect(parseFetch({ consumer: 'c1' })).toMatchObject({
      consumer: 'c1',
      positions: {},
      commit: {},
      waitMs: 1000,
      maxBytes: 1 << 20,
      encoding: 'utf8',
    });
    expect(parseFetch({ consumer: 'c1', commit: { 'shard-0': 4 } }).commit).toEqual({ 'shard-0': 4 });
    expect(() => parseFetch({ consumer: 'c1', commit: { 'shard-0': -1 } })).toThrow(/commit.shard-0/);
  });
  it('requires offsets and the committing consumer on commit', () => {
    expect(() => parseCommit({})).toThrow(/offsets is required/);
    expect(() => parseCommit({ offsets: { 'shard-0': 12 } })).toThrow(/consumer must be/);
    expect(parseCommit({ consumer: 'c1', offsets: { 'shard-0': 12 } })).toEqual({
      consumer: 'c1',
      offsets: { 'shard-0': 12 },
      generations: {},
    });
    expect(
      parseCommit({ consumer: 'c1', offsets: { 'shard-0': 12 }, generations: { 'shard-0': 5 } }).generations,
    ).toEqual({ 'shard-0': 5 });
  });
  it('accepts the four reset targets and nothing else', () => {
    expect(parseReset({ to: 'earliest' })).toEqual({ to: 'earliest', force: false });
    expect(parseReset({ to: 'latest', force: true })).toEqual({ to: 'latest', force: true });
    expect(parseReset({ to: { timestamp: 1700000000000 } }).to).toEqual({ timestamp: 1700000000000 });
    expect(parseReset({ to: { offsets: { 'shard-0': 41 } } }).to).toEqual({ offsets: { 'shard-0': 41 } });
    expect(() => parseReset({ to: 'newest' })).toThrow(/to must be "earliest"/);
    expect(() => parseReset({ to: { timestamp: 'today' } })).toThrow(/timestamp must be/);
    expect(() => parseReset({ to: { offsets: { 'shard-0': -1 } } })).toThrow(/offsets.shard-0/);
    expect(() => parseReset({ to: 'latest', force: 'yes' })).toThrow(/force must be/);
    expect(() => parseReset({ to: { timestamp: 1, offsets: {} } })).toThrow(/to must be/);
  });
  it('takes handler failures with a fetch, and settings a topic may have', () => {
    expect(
      parseFetch({ consumer: 'c1', failed: [{ shard: 'shard-0', id: 3, error: 'boom' }] }).failed,
    ).toEqual([{ shard: 'shard-0', id: 3, error: 'boom' }]);
    expect(() => parseFetch({ consumer: 'c1', failed: [{ shard: 'shard-0' }] })).toThrow(/failed\[0\]/);
    expect(parseCreateTopic({ name: 't', settings: { maxDeliveries: 5 } })).toEqual({
      name: 't',
      settings: { maxDeliveries: 5 },
    });
    expect(parseTopicPatch({ settings: { maxDeliveries: null } }, 't')).toEqual({ maxDeliveries: null });
    expect(() => parseTopicPatch({ settings: { maxDeliveries: 0 } }, 't')).toThrow(/positive integer/);
    expect(() => parseTopicPatch({ settings: { ttl: 1 } }, 't')).toThrow(/unknown field/);
    expect(() => parseTopicPatch({ settings: { maxDeliveries: 3 } }, 'x'.repeat(126))).toThrow(/\.dlq/);
  });
});

describe('dead letters', () => {
  const base = {
    topic: 'orders',
    group: 'billing',
    shard: 'shard-1',
    reason: 'handler_failed' as const,
    deliveries: 5,
    error: 'boom',
  };
  it('carry the message, where it came from and why it was set aside', () => {
    const body = JSON.parse(
      deadLetterBody({ ...base, message: { id: 7, publishedAt: 1000, payload: Buffer.from('héllo') } }),
    );
    expect(body).toEqual({ ...base, id: 7, publishedAt: 1000, encoding: 'utf8', value: 'héllo' });
  });
  it('keep bytes that are not UTF-8 in base64', () => {
    const payload = Buffer.from([0xff, 0x00, 0xfe]);
    const body = JSON.parse(deadLetterBody({ ...base, message: { id: 1, publishedAt: 0, payload } }));
    expect(body).toMatchObject({ encoding: 'base64', value: payload.toString('base64') });
  });
});
