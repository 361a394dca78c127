import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/broker/broker.js';
import { Consumer, Producer } from '../../src/client/index.js';
import type { LocalShards } from '../../src/local/cluster.js';
import { startBroker, startShards } from '../support/dataplane.js';

/** Consumer lag on the broker's /metrics, per topic, group and shard, in messages and seconds. */
let cluster: LocalShards;
let broker: Broker;

beforeAll(async () => {
  cluster = await startShards('127.0.66');
  broker = await startBroker(cluster);
});

afterAll(async () => {
  await broker?.close();
  await cluster?.destroy();
});

/** `name{labels} value` lines of the metrics page, by their `group` label, summed over shards. */
async function lagByGroup(name: string, topic: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${broker.url}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = new RegExp(`^${name}\\{(.*)\\} (\\S+)$`).exec(line);
    if (!m || !m[1]!.includes(`topic="${topic}"`)) continue;
    const group = /group="([^"]+)"/.exec(m[1]!)![1]!;
    expect(m[1]).toMatch(/shard="shard-[01]"/);
    out[group] = (out[group] ?? 0) + Number(m[2]);
  }
  return out;
}

async function consumeAndCommit(topic: string, group: string, count: number): Promise<void> {
  const consumer = new Consumer({ brokers: [broker.url], topic, group, waitMs: 100 });
  let got = 0;
  while (got < count) got += (await consumer.poll(count - got)).length;
  await consumer.commit();
  await consumer.close();
}

describe('consumer lag metrics', () => {
  it('reports, per group, the messages not yet committed and the age of the oldest', async () => {
    const topic = 'lagged';
    const producer = new Producer({ brokers: [broker.url] });
    await producer.createTopic(topic);
    await producer.sendBatch(
      topic,
      Array.from({ length: 100 }, (_, i) => `m${i}`),
    );
    await consumeAndCommit(topic, 'audit', 100);
    await consumeAndCommit(topic, 'billing', 30);
    await new Promise((r) => setTimeout(r, 300));

    expect(await lagByGroup('mq_broker_consumer_lag_messages', topic)).toEqual({ audit: 0, billing: 70 });
    const seconds = await lagByGroup('mq_broker_consumer_lag_seconds', topic);
    expect(seconds.audit).toBe(0);
    expect(seconds.billing).toBeGreaterThan(0.2);
  });
});
