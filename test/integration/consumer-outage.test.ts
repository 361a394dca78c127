import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/broker/broker.js';
import type { RoutingDocument } from '../../src/api/routing.js';
import { BROKER_DEFAULTS } from '../../src/broker/broker.js';
import { Consumer, type Message, Producer } from '../../src/client/index.js';
import type { LocalShards } from '../../tools/local/cluster.js';
import { bootstrapShard } from '../../src/shard/bootstrap.js';
import { post, startBroker, startShards } from '../support/dataplane.js';

/**
 * Consumer groups across a primary's kill -9 and return, on real mariadbd: offsets committed while
 * the shard's reads came from its standby, and a consumer that closed meanwhile. Routing changes
 * are what the operator would push (reads to the standby, then back to the restarted primary).
 */
/** Long enough that a lease left behind outlasts every wait of these tests. */
const LEASE_TTL_MS = 60_000;
let cluster: LocalShards;
let broker: Broker;
let version = 1;

beforeAll(async () => {
  cluster = await startShards('127.0.74');
  broker = await startBroker(cluster, {
    fetcher: { ...BROKER_DEFAULTS.fetcher, leaseTtlMs: LEASE_TTL_MS },
  });
});

afterAll(async () => {
  await broker?.close();
  await cluster?.destroy();
});

function route(change: (doc: RoutingDocument) => void = () => undefined): void {
  const doc = cluster.routing(++version);
  change(doc);
  expect(broker.router.update(doc)).toBe(true);
}

/** kill -9 of shard-0's primary; its reads go to the standby, its writes nowhere. */
async function killShard0Primary(): Promise<void> {
  const shard = cluster.shards[0];
  await shard.primary.kill();
  route((doc) => {
    doc.shards[0].write = null;
    doc.shards[0].read = shard.standby.endpoint;
  });
}

/** The primary restarts (read-only, as always), is opened again and gets its routing back. */
async function recoverShard0(): Promise<void> {
  const shard = cluster.shards[0];
  await shard.primary.restart();
  await bootstrapShard(shard.primary.endpoint, shard.standby.endpoint, cluster.secrets);
  route();
}

async function offsets(topic: string, group: string) {
  const res = await fetch(`${broker.url}/v1/topics/${topic}/groups/${group}/offsets`);
  expect(res.status).toBe(200);
  const body = (await res.json()) as { shards: { shard: string; committed: number; latest: number }[] };
  return Object.fromEntries(body.shards.map((s) => [s.shard, s]));
}

async function pollUntil(consumer: Consumer, done: (seen: Message[]) => boolean, ms: number) {
  const seen: Message[] = [];
  const deadline = Date.now() + ms;
  while (!done(seen) && Date.now() < deadline) seen.push(...(await consumer.poll()));
  return seen;
}

describe('a primary down and back', () => {
  it(
    'keeps what a group committed during the outage: none of it comes again',
    { timeout: 120_000 },
    async () => {
      const topic = 'outage-offsets';
      const producer = new Producer({ brokers: [broker.url] });
      await producer.createTopic(topic);
      // Only shard-0 takes the 200 messages.
      route((doc) => (doc.shards[1].write = null));
      const values = Array.from({ length: 200 }, (_, i) => `m${i}`);
      const acks = await producer.sendBatch(topic, values);
      expect(new Set(acks.map((a) => a.shard))).toEqual(new Set(['shard-0']));
      const lastId = Math.max(...acks.map((a) => a.id));

      await killShard0Primary();
      const reader = new Consumer({
        brokers: [broker.url],
        topic,
        group: 'g',
        waitMs: 200,
        maxMessages: 500,
      });
      const read = await pollUntil(reader, (seen) => seen.length >= 200, 30_000);
      expect(read.map((m) => m.value).sort()).toEqual([...values].sort());
      await reader.commit();
      // Shown at once, although shard-0 could not record it yet.
      expect((await offsets(topic, 'g'))['shard-0']).toMatchObject({ committed: lastId, latest: lastId });
      await reader.close();

      await recoverShard0();
      await producer.sendBatch(topic, ['after']);
      const again = new Consumer({ brokers: [broker.url], topic, group: 'g', waitMs: 200 });
      const after = await pollUntil(again, (seen) => seen.some((m) => m.value === 'after'), 20_000);
      expect(after.map((m) => m.value)).toEqual(['after']);
      await again.close();
      expect((await offsets(topic, 'g'))['shard-0'].committed).toBeGreaterThanOrEqual(lastId);
      await producer.close();
    },
  );

  it(
    "gives a consumer's shards to the rest of its group soon after recovery when it closed during the outage",
    { timeout: 120_000 },
    async () => {
      const topic = 'outage-leases';
      const producer = new Producer({ brokers: [broker.url] });
      await producer.createTopic(topic);
      // One publish at a time: the broker sends each to the next shard.
      const fill = async (prefix: string) => {
        for (let i = 0; i < 10; i++) await producer.sendBatch(topic, [`${prefix}${i}`]);
      };
      await fill('before');
      const first = new Consumer({ brokers: [broker.url], topic, group: 'h', waitMs: 200 });
      const held = await pollUntil(first, (seen) => new Set(seen.map((m) => m.shard)).size === 2, 20_000);
      expect(new Set(held.map((m) => m.shard))).toEqual(new Set(['shard-0', 'shard-1']));

      await killShard0Primary();
      // The standby still shows whose shard it is: nobody else commits for it meanwhile.
      const shard0 = held.filter((m) => m.shard === 'shard-0').at(-1)!;
      const intruder = await post(`${broker.url}/v1/topics/${topic}/groups/h/offsets`, {
        consumer: 'intruder',
        offsets: { 'shard-0': shard0.id },
      });
      expect(intruder).toMatchObject({ status: 409, body: { code: 'not_lease_holder' } });
      await first.close();
      await recoverShard0();
      const recovered = Date.now();
      await fill('after');

      const second = new Consumer({ brokers: [broker.url], topic, group: 'h', waitMs: 200 });
      const got = await pollUntil(second, (seen) => seen.some((m) => m.shard === 'shard-0'), 30_000);
      const waited = Date.now() - recovered;
      expect(got.some((m) => m.shard === 'shard-0')).toBe(true);
      // Without the release the lease would run for most of LEASE_TTL_MS after recovery.
      expect(waited).toBeLessThan(15_000);
      await second.close();
      await producer.close();
    },
  );
});
