import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Producer } from '../../src/client/index.js';
import { parseFramedPublish } from '../../src/broker/requests.js';

/**
 * The SDK's batching against a stand-in broker that answers publishes only when the test says so:
 * what goes out, in which requests, is then decided by the Producer alone.
 */
interface Held {
  values: string[];
  answer(): void;
}

let server: Server;
let url = '';
let nextId = 1;
const held: Held[] = [];
let arrived: (() => void) | undefined;

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const limits = { maxMessageBytes: 1 << 20, maxMessagesPerPublish: 1000 };
      const values = parseFramedPublish(Buffer.concat(chunks), limits).payloads.map(String);
      const firstId = nextId;
      nextId += values.length;
      held.push({
        values,
        answer: () => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ shard: 'shard-0', firstId, count: values.length }));
        },
      });
      arrived?.();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

/** Waits until `n` publishes are held by the stand-in broker. */
async function requests(n: number): Promise<string[][]> {
  while (held.length < n) await new Promise<void>((resolve) => (arrived = resolve));
  return held.slice(0, n).map((h) => h.values);
}

describe('Producer batching', () => {
  it('sends at once while a request slot is free, and gathers what comes while every slot is busy', async () => {
    held.length = 0;
    const producer = new Producer({ brokers: [url], lingerMs: 0, maxInflight: 1 });
    const a = producer.send('t', 'a');
    expect(await requests(1)).toEqual([['a']]);
    const rest = ['b', 'c', 'd'].map((v) => producer.send('t', v));
    // Nothing more goes out while the only slot is taken...
    await new Promise((resolve) => setImmediate(resolve));
    expect(held).toHaveLength(1);
    // ...and everything that waited goes out together as soon as it frees.
    held[0].answer();
    expect(await a).toEqual({ shard: 'shard-0', id: expect.any(Number) });
    expect(await requests(2)).toEqual([['a'], ['b', 'c', 'd']]);
    held[1].answer();
    const acks = await Promise.all(rest);
    expect(acks.map((x) => x.id - acks[0].id)).toEqual([0, 1, 2]);
    await producer.close();
  });

  it('cuts a full batch without lingering', async () => {
    held.length = 0;
    const producer = new Producer({ brokers: [url], lingerMs: 60_000, batchMessages: 2, maxInflight: 4 });
    const sent = ['a', 'b', 'c'].map((v) => producer.send('t', v));
    expect(await requests(1)).toEqual([['a', 'b']]);
    // 'c' lingers (a minute here) until close sends it.
    const closed = producer.close();
    expect(await requests(2)).toEqual([['a', 'b'], ['c']]);
    held.forEach((h) => h.answer());
    await Promise.all([...sent, closed]);
  });
});
