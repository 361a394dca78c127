import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/broker/broker.js';
import { BROKER_DEFAULTS } from '../../src/broker/broker.js';
import { Consumer, Producer, type PublishAck } from '../../src/client/index.js';
import type { LocalShards } from '../../tools/local/cluster.js';
import { holdIds, startBroker, startShards } from '../support/dataplane.js';

/**
 * Ids are assigned when an INSERT runs and become visible when it commits, so concurrent batches
 * on one shard commit out of id order. A consumer reading at the tail must never step past ids
 * whose transaction is still going to commit.
 */
let cluster: LocalShards;
let brokers: Broker[] = [];
/** Commits abandoned after 500 ms: a gap is stepped over after 2 s (see gaps.ts). */
let quickBroker: Broker;
/** A gap would be stepped over only after two minutes: it stays open for the whole test. */
let patientBroker: Broker;

beforeAll(async () => {
  cluster = await startShards('127.0.71');
  // Small batches, several in flight per shard on each of two brokers: many out-of-order commits.
  const writer = { ...BROKER_DEFAULTS.writer, maxBatchMessages: 50, inflightPerShard: 4 };
  brokers = [await startBroker(cluster, { writer }), await startBroker(cluster, { writer })];
  quickBroker = await startBroker(cluster, { writer: { ...writer, commitTimeoutMs: 500 } });
  patientBroker = await startBroker(cluster, { writer: { ...writer, commitTimeoutMs: 60_000 } });
});

afterAll(async () => {
  await Promise.all([...brokers, quickBroker, patientBroker].filter(Boolean).map((b) => b.close()));
  await cluster?.destroy();
});

const key = (shard: string, id: number) => `${shard}/${id}`;

/** Polls until `done` or the (generous) deadline; returns every delivery as shard/id. */
async function consume(consumer: Consumer, done: (got: string[]) => boolean): Promise<string[]> {
  const got: string[] = [];
  const deadline = Date.now() + 30_000;
  while (!done(got) && Date.now() < deadline) {
    for (const m of await consumer.poll()) got.push(key(m.shard, m.id));
    await consumer.commit();
  }
  return got;
}

describe('consumer groups reading while batches commit out of id order', () => {
  it('gives every group every acknowledged message: no id skipped', async () => {
    const urls = brokers.map((b) => b.url);
    const topic = 'gaps-concurrent';
    await new Producer({ brokers: urls }).createTopic(topic);
    const groups = Array.from({ length: 8 }, (_, g) => `g${g}`);
    const consumers = groups.map(
      (group) => new Consumer({ brokers: urls, topic, group, waitMs: 20, maxMessages: 300 }),
    );
    let producing = true;
    const acked = new Set<string>();
    // The groups read at the tail the whole time the producers write.
    const reading = consumers.map((c) => consume(c, (got) => !producing && got.length >= acked.size));
    // Batches of very different sizes, many at once: a big INSERT takes its ids first and commits
    // after the small ones that came later.
    await Promise.all(
      Array.from({ length: 8 }, async (_, p) => {
        const producer = new Producer({ brokers: urls });
        for (let b = 0; b < 25; b++) {
          const size = b % 5 === p % 5 ? 400 : 1 + ((b * 7 + p * 13) % 40);
          const values = Array.from({ length: size }, (_, i) => `p${p}-${b}-${i}-${'x'.repeat(200)}`);
          for (const ack of await producer.sendBatch(topic, values)) acked.add(key(ack.shard, ack.id));
        }
      }),
    );
    producing = false;
    const delivered = await Promise.all(reading);
    await Promise.all(consumers.map((c) => c.close()));

    for (const got of delivered) {
      expect(got.length).toBe(acked.size);
      expect(new Set(got)).toEqual(acked);
    }
  });

  it('waits on ids held by an uncommitted transaction and delivers them once it commits', async () => {
    const topic = 'gaps-held';
    const producer = new Producer({ brokers: [patientBroker.url], lingerMs: 1 });
    await producer.createTopic(topic);
    const before = await producer.sendBatch(topic, ['a', 'b']);
    const shard = cluster.shards.findIndex((s) => s.name === before[0].shard);
    const held = await holdIds(cluster, shard, topic, 3);
    // Later ids on the same shard commit while the held ones are still open.
    const after: PublishAck[] = [];
    while (after.length < 4) {
      const acks = await producer.sendBatch(topic, ['c', 'd']);
      if (acks[0].shard === before[0].shard) after.push(...acks);
    }
    const consumer = new Consumer({ brokers: [patientBroker.url], topic, group: 'g', waitMs: 100 });
    const firstPolls = await consume(consumer, (got) => got.length >= 2);
    for (let i = 0; i < 3; i++) firstPolls.push(...(await consumer.poll()).map((m) => key(m.shard, m.id)));
    // Only what precedes the held ids on that shard; the other shard has nothing for this topic
    // except what the loop above sent there.
    expect(firstPolls.filter((k) => k.startsWith(`${before[0].shard}/`))).toEqual(
      before.map((a) => key(a.shard, a.id)),
    );

    await held.commit();
    const onThatShard = (got: string[]) => got.filter((k) => k.startsWith(`${before[0].shard}/`));
    const rest = await consume(consumer, (got) => onThatShard(got).length >= 3 + after.length);
    await consumer.close();
    expect(onThatShard(rest)).toEqual([...held.ids, ...after.map((a) => key(a.shard, a.id))]);
  });

  it('steps over ids a rolled-back transaction left behind', async () => {
    const topic = 'gaps-hole';
    const producer = new Producer({ brokers: [quickBroker.url], lingerMs: 1 });
    await producer.createTopic(topic);
    const first = await producer.sendBatch(topic, ['a']);
    const shard = cluster.shards.findIndex((s) => s.name === first[0].shard);
    const held = await holdIds(cluster, shard, topic, 5);
    const acked = [...first];
    while (acked.filter((a) => a.shard === first[0].shard).length < 3) {
      acked.push(...(await producer.sendBatch(topic, ['b'])));
    }
    await held.rollback();
    const consumer = new Consumer({ brokers: [quickBroker.url], topic, group: 'g', waitMs: 100 });
    const got = await consume(consumer, (g) => g.length >= acked.length);
    await consumer.close();
    expect(new Set(got)).toEqual(new Set(acked.map((a) => key(a.shard, a.id))));
    expect(got.some((k) => held.ids.includes(k))).toBe(false);
  });
});
