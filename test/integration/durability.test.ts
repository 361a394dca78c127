import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/broker/broker.js';
import { Consumer, Producer, type PublishAck } from '../../src/client/index.js';
import type { LocalShards } from '../../tools/local/cluster.js';
import { attachStandby } from '../../src/shard/bootstrap.js';
import { startBroker, startShards } from '../support/dataplane.js';

let cluster: LocalShards;
let brokers: Broker[] = [];

beforeAll(async () => {
  cluster = await startShards('127.0.23');
  brokers = [
    await startBroker(cluster, {
      writer: { maxBatchMessages: 500, maxBatchBytes: 1 << 20, inflightPerShard: 2, commitTimeoutMs: 1500 },
    }),
  ];
});

afterAll(async () => {
  await Promise.all(brokers.map((b) => b.close()));
  await cluster?.destroy();
});

async function drain(
  urls: string[],
  topic: string,
  group: string,
  expected: Set<string>,
): Promise<Set<string>> {
  const consumer = new Consumer({ brokers: urls, topic, group, waitMs: 300, maxMessages: 2000 });
  const seen = new Set<string>();
  const deadline = Date.now() + 30_000;
  while ([...expected].some((v) => !seen.has(v)) && Date.now() < deadline) {
    for (const m of await consumer.poll()) seen.add(String(m.value));
    await consumer.commit();
  }
  await consumer.close();
  return seen;
}

const until = async (check: () => boolean, timeoutMs = 15_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
};

describe('a shard whose standby is away (durability: required)', () => {
  it('stops taking writes, other shards take them, and the producer sees no error', async () => {
    const url = brokers[0].url;
    const producer = new Producer({ brokers: [url], lingerMs: 2 });
    await producer.createTopic('standby-away');
    const shard0 = cluster.shards[0];

    const acked: PublishAck[] = [];
    const values: string[] = [];
    let failures = 0;
    let n = 0;
    let stop = false;
    const load = (async () => {
      while (!stop) {
        const batch = Array.from({ length: 20 }, () => `m-${n++}`);
        await Promise.all(
          batch.map((v) =>
            producer.send('standby-away', v).then(
              (ack) => {
                acked.push(ack);
                values.push(v);
              },
              () => failures++,
            ),
          ),
        );
      }
    })();

    await new Promise((r) => setTimeout(r, 500));
    await shard0.standby.kill();
    await until(() => !brokers[0].router.shards().find((s) => s.name === 'shard-0')!.writable);
    const before = acked.length;
    await until(() => acked.length > before + 200);
    const sinceKill = acked.slice(before + 50);
    expect(sinceKill.every((a) => a.shard === 'shard-1')).toBe(true);

    // The standby returns; the control plane re-attaches it and the shard takes writes again.
    await shard0.standby.restart();
    await attachStandby(shard0.standby.endpoint, shard0.primary.endpoint, cluster.secrets);
    await until(() => brokers[0].router.shards().find((s) => s.name === 'shard-0')!.writable);
    const back = acked.length;
    await until(() => acked.slice(back).some((a) => a.shard === 'shard-0'));

    stop = true;
    await load;
    expect(failures).toBe(0);
    const seen = await drain([url], 'standby-away', 'audit', new Set(values));
    const lost = values.filter((v) => !seen.has(v));
    expect(lost).toEqual([]);
  });
});

describe('graceful shutdown', () => {
  it('answers every accepted publish with the truth before the broker exits', async () => {
    const victim = await startBroker(cluster);
    const producer = new Producer({ brokers: [victim.url], timeoutMs: 1000, requestTimeoutMs: 1000 });
    await producer.createTopic('shutdown');
    const outcomes: Promise<{ value: string; ok: boolean }>[] = [];
    for (let i = 0; i < 60; i++) {
      const values = Array.from({ length: 50 }, (_, j) => `s-${i}-${j}`);
      outcomes.push(
        ...values.map((value) =>
          producer.send('shutdown', value).then(
            () => ({ value, ok: true }),
            () => ({ value, ok: false }),
          ),
        ),
      );
      if (i === 30) void victim.close();
      await new Promise((r) => setImmediate(r));
    }
    const results = await Promise.all(outcomes);
    const acknowledged = new Set(results.filter((r) => r.ok).map((r) => r.value));
    expect(acknowledged.size).toBeGreaterThan(0);
    const seen = await drain([brokers[0].url], 'shutdown', 'audit', acknowledged);
    expect([...acknowledged].filter((v) => !seen.has(v))).toEqual([]);
  });
});
