import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/broker/broker.js';
import { Consumer, type Message, Producer } from '../../src/client/index.js';
import type { LocalShards } from '../../tools/local/cluster.js';
import { startBroker, startShards } from '../support/dataplane.js';

/** Consumer.run commits each handled batch along with the next fetch, and what is left at the end. */
let cluster: LocalShards;
let broker: Broker;

beforeAll(async () => {
  cluster = await startShards('127.0.73');
  broker = await startBroker(cluster);
});

afterAll(async () => {
  await broker?.close();
  await cluster?.destroy();
});

async function committed(topic: string, group: string): Promise<Record<string, number>> {
  const res = await fetch(`${broker.url}/v1/topics/${topic}/groups/${group}/offsets`);
  const body = (await res.json()) as { shards: { shard: string; committed: number }[] };
  return Object.fromEntries(body.shards.map((s) => [s.shard, s.committed]));
}

const lastIds = (messages: Message[]) => Object.fromEntries(messages.map((m) => [m.shard, m.id]));

describe('Consumer.run', () => {
  it('commits a handled batch with the next fetch, and the last one when it stops', async () => {
    const topic = 'run-commits';
    const producer = new Producer({ brokers: [broker.url] });
    await producer.createTopic(topic);
    await producer.sendBatch(topic, ['a']);
    const consumer = new Consumer({ brokers: [broker.url], topic, group: 'g', waitMs: 100 });
    const batches: Message[][] = [];
    const seenAtSecond: Record<string, number>[] = [];
    await consumer.run(async (messages) => {
      batches.push(messages);
      if (batches.length === 1) {
        await producer.sendBatch(topic, ['b']);
        return;
      }
      // This batch came with the fetch that committed the first one.
      seenAtSecond.push(await committed(topic, 'g'));
      consumer.stop();
    });
    expect(batches.map((b) => b.map((m) => m.value))).toEqual([['a'], ['b']]);
    expect(seenAtSecond[0]).toMatchObject(lastIds(batches[0]));
    expect(await committed(topic, 'g')).toMatchObject(lastIds(batches[1]));
    await consumer.close();
  });

  it('does not commit the batch whose handler threw: the group gets it again', async () => {
    const topic = 'run-throws';
    const producer = new Producer({ brokers: [broker.url] });
    await producer.createTopic(topic);
    await producer.sendBatch(topic, ['first']);
    const consumer = new Consumer({ brokers: [broker.url], topic, group: 'g', waitMs: 100 });
    let calls = 0;
    const failure = consumer.run(async () => {
      if (++calls === 1) {
        await producer.sendBatch(topic, ['second']);
        return;
      }
      throw new Error('handler failed');
    });
    await expect(failure).rejects.toThrow('handler failed');
    await consumer.close();

    const again = new Consumer({ brokers: [broker.url], topic, group: 'g', waitMs: 100 });
    const values: string[] = [];
    await again.run((messages) => {
      values.push(...messages.map((m) => String(m.value)));
      again.stop();
    });
    expect(values).toEqual(['second']);
    await again.close();
  });
});
