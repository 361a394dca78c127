import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/broker/broker.js';
import { Consumer, type Message, Producer } from '../../src/client/index.js';
import type { LocalShards } from '../../tools/local/cluster.js';
import { setReadOnly } from '../../src/shard/bootstrap.js';
import { probeInstance } from '../../src/shard/probe.js';
import { startBroker, startShards } from '../support/dataplane.js';

let cluster: LocalShards;
let brokers: Broker[] = [];

beforeAll(async () => {
  cluster = await startShards('127.0.21');
  brokers = [await startBroker(cluster), await startBroker(cluster)];
});

afterAll(async () => {
  await Promise.all(brokers.map((b) => b.close()));
  await cluster?.destroy();
});

const urls = () => brokers.map((b) => b.url);

async function consumeAll(consumer: Consumer, expected: number, timeoutMs = 20_000): Promise<Message[]> {
  const got: Message[] = [];
  const deadline = Date.now() + timeoutMs;
  while (got.length < expected && Date.now() < deadline) {
    got.push(...(await consumer.poll()));
    await consumer.commit();
  }
  return got;
}

describe('publish and fetch across two shards', () => {
  it('spreads messages over both shards and delivers every one', async () => {
    const producer = new Producer({ brokers: urls() });
    await producer.createTopic('orders');
    const acks = [];
    for (let i = 0; i < 10; i++) {
      acks.push(
        ...(await producer.sendBatch(
          'orders',
          Array.from({ length: 20 }, (_, j) => `order-${i * 20 + j}`),
        )),
      );
    }
    expect(new Set(acks.map((a) => a.shard))).toEqual(new Set(['shard-0', 'shard-1']));

    const consumer = new Consumer({ brokers: urls(), topic: 'orders', group: 'billing', waitMs: 200 });
    const got = await consumeAll(consumer, 200);
    expect(got.map((m) => m.value).sort()).toEqual(
      Array.from({ length: 200 }, (_, i) => `order-${i}`).sort(),
    );
    await consumer.close();
  });

  it('gives every consumer group every message exactly once when nothing fails', async () => {
    const producer = new Producer({ brokers: urls() });
    await producer.createTopic('events');
    await Promise.all(Array.from({ length: 500 }, (_, i) => producer.send('events', `e${i}`)));
    const groups = ['g-a', 'g-b', 'g-c'];
    const results = await Promise.all(
      groups.map(async (group) => {
        const consumer = new Consumer({
          brokers: urls(),
          topic: 'events',
          group,
          waitMs: 200,
          maxMessages: 64,
        });
        const got = await consumeAll(consumer, 500);
        // One more poll must find nothing new: no duplicates after the end.
        got.push(...(await consumer.poll()));
        await consumer.close();
        return got.map((m) => m.value);
      }),
    );
    for (const values of results) {
      expect(values).toHaveLength(500);
      expect(new Set(values).size).toBe(500);
    }
  });

  it('keeps binary payloads intact', async () => {
    const producer = new Producer({ brokers: urls() });
    await producer.createTopic('blobs');
    const payload = Buffer.from([0, 1, 2, 255, 254, 10, 13, 0]);
    await producer.send('blobs', payload);
    const consumer = new Consumer({
      brokers: urls(),
      topic: 'blobs',
      group: 'raw',
      binary: true,
      waitMs: 500,
    });
    const [m] = await consumeAll(consumer, 1);
    expect(Buffer.compare(m.value as Buffer, payload)).toBe(0);
    await consumer.close();
  });
});

describe('offsets', () => {
  it('survive a broker restart: a new consumer resumes after the last commit', async () => {
    const producer = new Producer({ brokers: urls() });
    await producer.createTopic('resume');
    await producer.sendBatch(
      'resume',
      Array.from({ length: 50 }, (_, i) => `r${i}`),
    );

    const first = new Consumer({
      brokers: [brokers[0].url],
      topic: 'resume',
      group: 'resumers',
      waitMs: 200,
    });
    const firstBatch = await consumeAll(first, 50);
    expect(firstBatch).toHaveLength(50);
    await first.close();

    await brokers[0].close();
    brokers[0] = await startBroker(cluster);
    await producer.sendBatch('resume', ['after-restart']);

    const second = new Consumer({
      brokers: [brokers[0].url],
      topic: 'resume',
      group: 'resumers',
      waitMs: 500,
    });
    const secondBatch = await consumeAll(second, 1);
    expect(secondBatch.map((m) => m.value)).toEqual(['after-restart']);
    await second.close();
  });

  it('lets one consumer of a group read a shard at a time', async () => {
    const producer = new Producer({ brokers: urls() });
    await producer.createTopic('shared');
    await producer.sendBatch('shared', ['x']);
    const a = new Consumer({ brokers: urls(), topic: 'shared', group: 'pair', waitMs: 100 });
    const b = new Consumer({ brokers: urls(), topic: 'shared', group: 'pair', waitMs: 100 });
    await a.poll();
    await b.poll();
    const gotA = await consumeAll(a, 1, 2000);
    const gotB = await consumeAll(b, 1, 500);
    // 'x' went to one shard; only the consumer holding that shard may see it.
    expect(gotA.length + gotB.length).toBeLessThanOrEqual(1);
    await a.close();
    await b.close();
  });
});

describe('shard failures', () => {
  it('skips a shard whose primary refuses writes, with no error reaching the producer', async () => {
    const shard0 = cluster.shards[0];
    await setReadOnly(shard0.primary.endpoint, cluster.secrets.admin, true);
    try {
      const producer = new Producer({ brokers: urls() });
      await producer.createTopic('skip');
      const acks = await Promise.all(Array.from({ length: 100 }, (_, i) => producer.send('skip', `s${i}`)));
      expect(acks.every((a) => a.shard === 'shard-1')).toBe(true);
    } finally {
      await setReadOnly(shard0.primary.endpoint, cluster.secrets.admin, false);
    }
  });

  it('replicates rows to the standby, which refuses writes', async () => {
    const producer = new Producer({ brokers: urls() });
    await producer.createTopic('replicated');
    const acks = await producer.sendBatch('replicated', ['one', 'two', 'three']);
    const shard = cluster.shards.find((s) => s.name === acks[0].shard)!;

    const standby = await mysql.createConnection({
      ...shard.standby.endpoint,
      ...cluster.secrets.broker,
      database: 'mq',
    });
    try {
      const [[topic]] = (await standby.query('SELECT id FROM topics WHERE name = ?', ['replicated'])) as any;
      // Semi-sync (AFTER_SYNC) means the standby received the rows before the ack; applying them is quick.
      let rows: any[] = [];
      for (let i = 0; i < 50 && rows.length < 3; i++) {
        [rows] = (await standby.query(`SELECT payload FROM m_${topic.id} WHERE id >= ? ORDER BY id`, [
          acks[0].id,
        ])) as any;
        if (rows.length < 3) await new Promise((r) => setTimeout(r, 100));
      }
      expect(rows.map((r) => r.payload.toString())).toEqual(['one', 'two', 'three']);
      await expect(
        standby.query(`INSERT INTO m_${topic.id} (published_at, payload) VALUES (0, 'x')`),
      ).rejects.toThrow(/read-only|READ-ONLY|--read-only/);
    } finally {
      await standby.end();
    }
    const probe = await probeInstance(shard.standby.endpoint, cluster.secrets.admin);
    expect(probe.readOnly).toBe(true);
    expect(probe.replica?.ioRunning && probe.replica?.sqlRunning).toBe(true);
  });

  it('moves the SDK to the next broker when one is stopped', async () => {
    const spare = await startBroker(cluster);
    const producer = new Producer({ brokers: [spare.url, brokers[1].url], requestTimeoutMs: 2000 });
    await producer.createTopic('failover-sdk');
    await spare.close();
    const acks = await Promise.all(
      Array.from({ length: 20 }, (_, i) => producer.send('failover-sdk', `f${i}`)),
    );
    expect(acks).toHaveLength(20);
    const consumer = new Consumer({
      brokers: [spare.url, brokers[1].url],
      topic: 'failover-sdk',
      group: 'g',
      waitMs: 200,
    });
    expect(await consumeAll(consumer, 20)).toHaveLength(20);
    await consumer.close();
  });
});
