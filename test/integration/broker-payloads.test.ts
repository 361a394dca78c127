import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/broker/broker.js';
import { Consumer, Producer } from '../../src/client/index.js';
import type { LocalShards } from '../../tools/local/cluster.js';
import { startBroker, startShards } from '../support/dataplane.js';

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
    const bytes = [Buffer.from([0, 1, 2, 0x27, 0x5c, 0xff, 0xfe, 0x80]), Buffer.alloc(0)];
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
