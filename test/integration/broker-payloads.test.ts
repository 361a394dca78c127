import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/broker/broker.js';
import { Consumer, Producer } from '../../src/client/index.js';
import type { LocalShards } from '../../tools/local/cluster.js';
import { post, startBroker, startShards } from '../support/dataplane.js';

/** The broker renders its own INSERTs: every byte must come back as it was published. */
let cluster: LocalShards;
let broker: Broker;

beforeAll(async () => {
  cluster = await startShards('127.0.72');
  broker = await startBroker(cluster);
});

afterAll(async () => {
  await broker?.close();
  await cluster?.destroy();
});

async function readAll(group: string, topic: string, count: number, binary: boolean) {
  const consumer = new Consumer({ brokers: [broker.url], topic, group, waitMs: 200, binary });
  const got: { id: string; value: string | Buffer }[] = [];
  const deadline = Date.now() + 30_000;
  while (got.length < count && Date.now() < deadline) {
    for (const m of await consumer.poll()) got.push({ id: `${m.shard}/${m.id}`, value: m.value });
    await consumer.commit();
  }
  await consumer.close();
  return got;
}

describe('payloads through the broker', () => {
  it('returns text and bytes exactly as published, whatever they contain', async () => {
    const producer = new Producer({ brokers: [broker.url] });
    const topic = 'payloads';
    await producer.createTopic(topic);
    const texts = [
      "it's",
      'back\\slash \\0 \\n',
      'nul\u0000inside',
      '"quoted" and `ticked`',
      'line\nbreak\r\n\u001a',
      'é ü 中文 🎉',
      '',
      "'); DROP TABLE mq.topics; --",
    ];
    const bytes = [
      Buffer.from([0, 1, 2, 0x27, 0x5c, 0xff, 0xfe, 0x80]),
      Buffer.alloc(0),
      Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
      // A UTF-8 lead byte before an escaped quote or backslash: the escape is not part of a character.
      Buffer.from([0xc3, 0x27, 0xe2, 0x82, 0x5c, 0xf0, 0x9f, 0x27, 0x00, 0xc3]),
    ];
    const textAcks = await producer.sendBatch(topic, texts);
    const byteAcks = await producer.sendBatch(topic, bytes);
    const ids = [...textAcks, ...byteAcks].map((a) => `${a.shard}/${a.id}`);
    const expected = [...texts.map((t) => Buffer.from(t)), ...bytes];

    for (const binary of [false, true]) {
      const got = await readAll(`g-${binary}`, topic, ids.length, binary);
      const byId = new Map(got.map((m) => [m.id, m.value]));
      expect(got).toHaveLength(ids.length);
      ids.forEach((id, i) => {
        const value = byId.get(id)!;
        if (binary) expect(value).toEqual(expected[i]);
        // Bytes that are not UTF-8 come back as text with replacement characters, as they always did.
        else expect(value).toBe(expected[i].toString('utf8'));
      });
    }
  });
});

describe('publish bodies', () => {
  const FRAMED = { 'content-type': 'application/vnd.mysqlmq.frames' };
  const publish = (topic: string, body: unknown, headers: Record<string, string> = {}) =>
    post(`${broker.url}/v1/topics/${topic}/messages`, body, headers);
  const frame = (payload: Buffer, size = payload.length) => {
    const header = Buffer.alloc(4);
    header.writeUInt32BE(size);
    return Buffer.concat([header, payload]);
  };

  it('takes length-prefixed messages and JSON alike, and stores the same bytes', async () => {
    const producer = new Producer({ brokers: [broker.url] });
    const topic = 'bodies';
    await producer.createTopic(topic);
    const framed = await publish(
      topic,
      Buffer.concat([frame(Buffer.from('first')), frame(Buffer.from([0x27, 0])), frame(Buffer.alloc(0))]),
      FRAMED,
    );
    expect(framed.status).toBe(200);
    expect(framed.body).toMatchObject({ count: 3 });
    const json = await publish(topic, { messages: [{ value: 'JwA=' }], encoding: 'base64' });
    expect(json.body).toMatchObject({ count: 1 });
    // A fetch without the SDK's Accept header is answered in JSON, values as asked for.
    const values: string[] = [];
    let positions = {};
    for (let i = 0; i < 20 && values.length < 4; i++) {
      const plain = await fetch(`${broker.url}/v1/topics/${topic}/groups/curl/fetch`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ consumer: 'curl-1', encoding: 'base64', waitMs: 200, positions }),
      });
      expect(plain.headers.get('content-type')).toBe('application/json');
      const answer = (await plain.json()) as { messages: { value: string }[]; positions: object };
      values.push(...answer.messages.map((m) => m.value));
      positions = answer.positions;
    }
    expect(values.sort()).toEqual(['', 'JwA=', 'JwA=', 'Zmlyc3Q=']);
    const got = await readAll('bodies', topic, 4, true);
    expect(got.map((m) => m.value).sort(Buffer.compare)).toEqual(
      [Buffer.from('first'), Buffer.from([0x27, 0]), Buffer.alloc(0), Buffer.from([0x27, 0])].sort(
        Buffer.compare,
      ),
    );
  });

  it('refuses a framed body that is cut short or too large with a 4xx the caller can act on', async () => {
    const cut = await publish('bodies', frame(Buffer.from('abc'), 10), FRAMED);
    expect(cut.status).toBe(400);
    expect(cut.body).toEqual({
      code: 'invalid_messages',
      message: 'message 0 is 10 bytes but the body ends 3 bytes after its size',
    });
    const halfHeader = await publish('bodies', Buffer.from([0, 0]), FRAMED);
    expect(halfHeader.body).toMatchObject({ code: 'invalid_messages' });
    const large = await publish(
      'bodies',
      Buffer.concat([frame(Buffer.from('ok')), frame(Buffer.alloc(2 << 20))]),
      FRAMED,
    );
    expect(large.status).toBe(413);
    expect(large.body).toMatchObject({ code: 'message_too_large' });
  });

  it('lets the SDK fall back to JSON when a broker predates framed publishes and answers', async () => {
    // What a broker from before frames answers: it reads every body as JSON and answers JSON.
    const seen: string[] = [];
    const older = createServer((req, res) => {
      const framed = req.headers['content-type'] !== 'application/json';
      req.resume();
      req.on('end', () => {
        if (req.url?.endsWith('/fetch')) {
          res.writeHead(200, { 'content-type': 'application/json' });
          const messages = [{ shard: 'shard-0', id: 7, publishedAt: 1, value: 'YQ==' }];
          res.end(
            JSON.stringify({ messages, positions: { 'shard-0': 7 }, heldElsewhere: [], generations: {} }),
          );
          return;
        }
        seen.push(String(req.headers['content-type']));
        if (framed) {
          res.writeHead(400, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ code: 'malformed_json', message: 'request body is not valid JSON' }));
        } else {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ shard: 'shard-0', firstId: 7, count: 2 }));
        }
      });
    });
    await new Promise<void>((resolve) => older.listen(0, '127.0.72.9', resolve));
    const { port } = older.address() as AddressInfo;
    try {
      const producer = new Producer({ brokers: [`http://127.0.72.9:${port}`] });
      expect(await producer.sendBatch('t', ['a', 'b'])).toEqual([
        { shard: 'shard-0', id: 7 },
        { shard: 'shard-0', id: 8 },
      ]);
      await producer.sendBatch('t', ['c', 'd']);
      expect(seen).toEqual(['application/vnd.mysqlmq.frames', 'application/json', 'application/json']);
      const consumer = new Consumer({
        brokers: [`http://127.0.72.9:${port}`],
        topic: 't',
        group: 'g',
        binary: true,
      });
      expect(await consumer.poll()).toEqual([
        { shard: 'shard-0', id: 7, publishedAt: 1, value: Buffer.from('a') },
      ]);
    } finally {
      older.close();
    }
  });
});
