import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BROKER_DEFAULTS, type Broker } from '../../src/broker/broker.js';
import { Consumer, type ConsumerOptions, type Message, Producer } from '../../src/client/index.js';
import { sleep } from '../../src/common/deadline.js';
import { acquireLease } from '../../src/broker/queue-store.js';
import type { LocalShards } from '../../tools/local/cluster.js';
import { committedOffsets, post, startBroker, startShards } from '../support/dataplane.js';

/**
 * Consumer liveness (issue 13): a consumer that dies mid-batch leaves its shards to the rest of
 * the group after one short lease term, while a live consumer whose handler outlasts many lease
 * terms keeps them through its heartbeats. The broker runs with its default lease.
 */
let cluster: LocalShards;
let broker: Broker;
let producer: Producer;
const LEASE_TTL_MS = BROKER_DEFAULTS.fetcher.leaseTtlMs;
/** Issue 13: a dead consumer's shards go to the rest of the group within this (the gap target). */
const TAKEOVER_TARGET_MS = 3000;

beforeAll(async () => {
  cluster = await startShards('127.0.133');
  broker = await startBroker(cluster);
  producer = new Producer({ brokers: [broker.url] });
});

afterAll(async () => {
  await producer?.close();
  await broker?.close();
  await cluster?.destroy();
});

const consumer = (topic: string, consumerId: string, extra: Partial<ConsumerOptions> = {}) =>
  new Consumer({ brokers: [broker.url], topic, group: 'workers', consumerId, waitMs: 100, ...extra });

/** A topic with `n` messages spread over both shards (one publish each, round-robin). */
async function topicWith(topic: string, n: number): Promise<void> {
  await producer.createTopic(topic);
  for (let i = 0; i < n; i++) await producer.send(topic, `m${i}`);
}

/** The group's lease on each shard as its primary stores it, judged by that primary's clock. */
async function leases(topic: string): Promise<Record<string, { owner: string | null; remainingMs: number }>> {
  const out: Record<string, { owner: string | null; remainingMs: number }> = {};
  for (const shard of cluster.shards) {
    const conn = await mysql.createConnection({ ...shard.primary.endpoint, ...cluster.secrets.broker });
    try {
      const [rows] = await conn.query(
        `SELECT g.owner, g.lease_until - CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED) AS remaining
           FROM mq.group_offsets g JOIN mq.topics t ON t.id = g.topic_id
          WHERE t.name = ? AND g.group_name = 'workers'`,
        [topic],
      );
      const [row] = rows as { owner: string | null; remaining: number }[];
      if (row) out[shard.name] = { owner: row.owner, remainingMs: Number(row.remaining) };
    } finally {
      await conn.end();
    }
  }
  return out;
}

const ids = (messages: Message[], shard: string) =>
  messages.filter((m) => m.shard === shard).map((m) => m.id);

describe('a consumer killed mid-batch', () => {
  it(
    'its shards go to the rest of the group one short lease term later, from its first uncommitted message',
    { timeout: 60_000 },
    async () => {
      const topic = 'liveness-killed';
      await topicWith(topic, 20);
      const dead = consumer(topic, 'dead');
      const batch = await dead.poll();
      expect(new Set(batch.map((m) => m.shard))).toEqual(new Set(['shard-0', 'shard-1']));
      // Gone without a commit or a release, as a killed process: no more fetches or heartbeats.
      dead.stop();

      // What it leaves behind runs out within the target by the shards' own clocks (15 s before
      // consumers heartbeat: the group waited that long).
      const left = await leases(topic);
      for (const shard of ['shard-0', 'shard-1']) {
        expect(left[shard].owner).toBe('dead');
        expect(left[shard].remainingMs).toBeLessThanOrEqual(Math.min(LEASE_TTL_MS, TAKEOVER_TARGET_MS));
      }

      // The rest of the group gets every message the dead consumer had in flight, each shard
      // from its first one on, in order.
      const survivor = consumer(topic, 'survivor');
      const got: Message[] = [];
      const deadline = Date.now() + 45_000;
      while (got.length < 20 && Date.now() < deadline) got.push(...(await survivor.poll()));
      for (const shard of ['shard-0', 'shard-1']) {
        expect(ids(got, shard).slice(0, ids(batch, shard).length)).toEqual(ids(batch, shard));
      }
      expect(got.map((m) => m.value).sort()).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`).sort());
      const taken = await leases(topic);
      expect(taken['shard-0'].owner).toBe('survivor');
      expect(taken['shard-1'].owner).toBe('survivor');
      await survivor.close();
    },
  );
});

describe('a live consumer whose handler is slower than a lease term', () => {
  it(
    'keeps its shards: nothing goes to another member, and its batch is committed',
    { timeout: 60_000 },
    async () => {
      const topic = 'liveness-slow';
      await topicWith(topic, 10);
      const slow = consumer(topic, 'slow');
      let handed: Message[] = [];
      let handlerDone = false;
      const running = slow.run(async (messages) => {
        handed = messages;
        // Three lease terms, while the other member fetches all along.
        await sleep(3 * LEASE_TTL_MS);
        handlerDone = true;
        slow.stop();
      });
      while (handed.length === 0) await sleep(20);
      expect(new Set(handed.map((m) => m.shard))).toEqual(new Set(['shard-0', 'shard-1']));
      const other = consumer(topic, 'other');
      const otherGot: Message[] = [];
      while (!handlerDone) otherGot.push(...(await other.poll()));
      await running;

      expect(handed.length).toBeGreaterThan(0);
      expect(otherGot).toEqual([]);
      const last: Record<string, number> = {};
      for (const m of handed) last[m.shard] = m.id;
      expect(await committedOffsets(broker.url, topic, 'workers')).toMatchObject(last);
      await other.close();
      await slow.close();
    },
  );

  it(
    'whose handler never returns loses its shards after maxPollIntervalMs, and cannot commit then',
    { timeout: 60_000 },
    async () => {
      const topic = 'liveness-stuck';
      await topicWith(topic, 10);
      const stuck = consumer(topic, 'stuck', { maxPollIntervalMs: 1500 });
      let handed: Message[] = [];
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      const running = stuck.run(async (messages) => {
        handed = messages;
        await released;
        stuck.stop();
      });

      while (handed.length === 0) await sleep(20);
      const other = consumer(topic, 'other');
      const got: Message[] = [];
      const deadline = Date.now() + 45_000;
      while (got.length < 10 && Date.now() < deadline) got.push(...(await other.poll()));
      expect(got.map((m) => m.value).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `m${i}`).sort());
      await other.commit();

      // The stuck handler returns at last: its commit is refused, the group's offsets stay.
      const before = await committedOffsets(broker.url, topic, 'workers');
      release();
      await expect(running).rejects.toMatchObject({ status: 409, code: 'not_lease_holder' });
      expect(await committedOffsets(broker.url, topic, 'workers')).toEqual(before);
      await other.close();
      await stuck.close({ commit: false });
    },
  );
});

describe('POST .../consumers/{id}/heartbeat', () => {
  it('renews the shards the consumer holds; 409 no_lease_held when it holds none', async () => {
    const topic = 'liveness-route';
    await topicWith(topic, 4);
    const group = `${broker.url}/v1/topics/${topic}/groups/workers`;
    const beat = (id: string) => post(`${group}/consumers/${id}/heartbeat`, '');

    const nobody = await beat('nobody');
    expect(nobody.status).toBe(409);
    expect(nobody.body).toMatchObject({ code: 'no_lease_held' });

    const fetched = await post(`${group}/fetch`, { consumer: 'raw', waitMs: 0 });
    expect(fetched.status).toBe(200);
    const held = await beat('raw');
    expect(held.status).toBe(200);
    expect((held.body as { shards: string[] }).shards.sort()).toEqual(['shard-0', 'shard-1']);

    // A consumer that left gave its shards up: a late heartbeat does not take them back.
    const left = await fetch(`${group}/consumers/raw`, { method: 'DELETE' });
    expect(left.status).toBe(204);
    expect((await beat('raw')).status).toBe(409);
  });
});

describe('a lease taken in the millisecond of its holder renewal', () => {
  it('stays with its live holder', async () => {
    const topic = 'liveness-same-ms';
    await producer.createTopic(topic);
    const conn = await mysql.createConnection({
      ...cluster.shards[0].primary.endpoint,
      ...cluster.secrets.broker,
      database: 'mq',
    });
    try {
      const [found] = await conn.query('SELECT id FROM mq.topics WHERE name = ?', [topic]);
      const topicId = (found as { id: number }[])[0].id;
      // Both statements see the same NOW(3): the taker's new deadline equals the holder's.
      await conn.query('SET timestamp = UNIX_TIMESTAMP(NOW(3))');
      expect((await acquireLease(conn, 'same-ms', topicId, 'holder', LEASE_TTL_MS)).owner).toBe('holder');
      expect((await acquireLease(conn, 'same-ms', topicId, 'taker', LEASE_TTL_MS)).owner).toBe('holder');
    } finally {
      await conn.end();
    }
  });
});
