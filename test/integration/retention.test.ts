import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/broker/broker.js';
import { Consumer, Producer } from '../../src/client/index.js';
import { createLogger } from '../../src/common/logger.js';
import type { LocalShards } from '../../src/local/cluster.js';
import { standbyBehindPurge } from '../../src/operator/retention/binlog-policy.js';
import { type RetentionPolicy, type RetentionShard, RetentionJob } from '../../src/operator/retention/job.js';
import { HOUR_MS } from '../../src/operator/retention/policy.js';
import { listBinlogs } from '../../src/shard/binlogs.js';
import { type Endpoint, queryRows, withAdmin } from '../../src/shard/connection.js';
import { probeInstance } from '../../src/shard/probe.js';
import { startBroker, startShards } from '../support/dataplane.js';

/**
 * Retention and binlog purge on real mariadbd: one shard (primary + semi-sync standby), a broker,
 * and the operator's retention job run directly (the operator runs the same job every
 * `spec.retention.intervalSeconds`).
 */
let cluster: LocalShards;
let broker: Broker;
let primary: Endpoint;
let standby: Endpoint;
const log = createLogger('retention-test', process.env.MQ_LOG_LEVEL ?? 'error');
let job: RetentionJob;
const DEFAULT_POLICY: RetentionPolicy = { maxAgeMs: 720 * HOUR_MS, binlogMinAgeMs: 0 };

beforeAll(async () => {
  cluster = await startShards('127.0.24', 1);
  primary = cluster.shards[0].primary.endpoint;
  standby = cluster.shards[0].standby.endpoint;
  job = new RetentionJob(cluster.secrets.admin, log, { chunkRows: 100, pauseMs: 0, passBudgetMs: 30_000 });
  broker = await startBroker(cluster);
});

afterAll(async () => {
  await broker?.close();
  await cluster?.destroy();
});

const admin = <T>(e: Endpoint, fn: Parameters<typeof withAdmin<T>>[2]) =>
  withAdmin(e, cluster.secrets.admin, fn);
const sql = (e: Endpoint, q: string, params: unknown[] = []) => admin(e, (c) => queryRows(c, q, params));

async function shardView(): Promise<RetentionShard> {
  const [p, s] = await Promise.all([primary, standby].map((e) => probeInstance(e, cluster.secrets.admin)));
  return {
    shard: 'shard-0',
    writablePrimary: primary,
    instances: [
      { name: 'primary', endpoint: primary, position: p.gtidCurrentPos },
      { name: 'standby', endpoint: standby, position: s.gtidCurrentPos },
    ],
  };
}

async function topicId(topic: string): Promise<number> {
  const [row] = await sql(primary, 'SELECT id FROM mq.topics WHERE name = ?', [topic]);
  return Number(row.id);
}

async function ids(e: Endpoint, topic: string): Promise<number[]> {
  return (await sql(e, `SELECT id FROM mq.m_${await topicId(topic)} ORDER BY id`)).map((r) => Number(r.id));
}

/** Waits until the standby has applied everything the primary has written. */
async function standbyCaughtUp(): Promise<void> {
  const [{ pos }] = await sql(primary, 'SELECT @@gtid_binlog_pos AS pos');
  const [{ r }] = await sql(standby, 'SELECT MASTER_GTID_WAIT(?, 60) AS r', [pos]);
  expect(Number(r)).toBe(0);
}

async function publish(topic: string, n: number, size = 100): Promise<void> {
  const producer = new Producer({ brokers: [broker.url] });
  await producer.createTopic(topic);
  const values = Array.from({ length: n }, (_, i) => `${i}`.padEnd(size, '.'));
  for (let i = 0; i < n; i += 500) await producer.sendBatch(topic, values.slice(i, i + 500));
  await producer.close();
}

describe('message retention', () => {
  it('deletes messages older than the limit on the primary, the standby follows, newer ones stay', async () => {
    await publish('aged', 300);
    const table = `mq.m_${await topicId('aged')}`;
    // The first 200 were published two days ago (as far as retention can tell).
    await sql(primary, `UPDATE ${table} SET published_at = published_at - ? WHERE id <= 200`, [48 * HOUR_MS]);

    // A read-only instance is never written, even over an admin connection that could.
    const onStandby = await job.run(
      { ...(await shardView()), writablePrimary: standby },
      {
        ...DEFAULT_POLICY,
        maxAgeMs: 24 * HOUR_MS,
      },
    );
    expect(onStandby.topics).toEqual([]);
    expect(await ids(primary, 'aged')).toHaveLength(300);

    const report = await job.run(await shardView(), { ...DEFAULT_POLICY, maxAgeMs: 24 * HOUR_MS });
    const aged = report.topics.find((t) => t.topic === 'aged')!;
    expect(aged).toMatchObject({ deleted: 200, deletedThrough: 200, rows: 100 });
    expect(aged.oldestAgeSeconds).toBeLessThan(3600);
    expect((await ids(primary, 'aged'))[0]).toBe(201);
    await standbyCaughtUp();
    expect(await ids(standby, 'aged')).toEqual(await ids(primary, 'aged'));

    // The default 30 days keep the rest.
    const again = await job.run(await shardView(), DEFAULT_POLICY);
    expect(again.topics.find((t) => t.topic === 'aged')!.deleted).toBe(0);
  });

  it('keeps a topic within its own size limit, newest messages first, other topics untouched', async () => {
    await publish('sized', 1000, 200);
    await publish('unlimited', 500, 200);
    await sql(primary, `UPDATE mq.topics SET settings = ? WHERE name = 'sized'`, [
      JSON.stringify({ retentionMaxBytesPerShard: 50_000 }),
    ]);
    const report = await job.run(await shardView(), DEFAULT_POLICY);
    const kept = await ids(primary, 'sized');
    // 50,000 bytes of 200-byte payloads.
    expect(kept.length).toBe(250);
    expect(kept.at(-1)).toBe(1000);
    expect(report.topics.find((t) => t.topic === 'sized')!.deleted).toBe(750);
    expect(await ids(primary, 'unlimited')).toHaveLength(500);
  });

  it('a group whose committed offset was deleted resumes at the oldest kept message and is told how many it missed', async () => {
    await publish('resume', 300);
    const consumer = new Consumer({
      brokers: [broker.url],
      topic: 'resume',
      group: 'slow',
      maxMessages: 50,
      waitMs: 200,
    });
    const first = await consumer.poll();
    expect(first.length).toBeGreaterThan(0);
    await consumer.commit();
    await consumer.close();
    const committed = Math.max(...first.map((m) => m.id));

    await sql(primary, `UPDATE mq.m_${await topicId('resume')} SET published_at = 0 WHERE id <= 200`);
    await job.run(await shardView(), { ...DEFAULT_POLICY, maxAgeMs: 24 * HOUR_MS });

    const res = await fetch(`${broker.url}/v1/topics/resume/groups/slow/offsets`);
    const body = (await res.json()) as {
      shards: { shard: string; committed: number; missed: number; deletedThrough: number }[];
    };
    expect(body.shards[0]).toMatchObject({ committed, deletedThrough: 200, missed: 200 - committed });

    const next = new Consumer({
      brokers: [broker.url],
      topic: 'resume',
      group: 'slow',
      maxMessages: 50,
      waitMs: 200,
    });
    const resumed = await next.poll();
    await next.close();
    expect(resumed[0]?.id).toBe(201);
  });
});

/** Rows written straight to the primary: replication, not the broker, is what these tests are about. */
async function write(rows: number): Promise<void> {
  await sql(
    primary,
    'CREATE TABLE IF NOT EXISTS mq.filler (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(200))',
  );
  const values = Array.from({ length: rows }, () => "('" + 'x'.repeat(200) + "')").join(',');
  await sql(primary, `INSERT INTO mq.filler (v) VALUES ${values}`);
}

describe('binlog purge', () => {
  it('purges on both instances only what the other instance has applied, so the standby always resumes', async () => {
    const flush = async (e: Endpoint) => sql(e, 'FLUSH BINARY LOGS');
    for (let i = 0; i < 3; i++) {
      await write(200);
      await flush(primary);
      await flush(standby);
    }
    await standbyCaughtUp();
    // The standby stops applying (a slow or paused replica); the primary writes on, in new files.
    await sql(standby, 'STOP SLAVE');
    await sql(primary, 'SET GLOBAL rpl_semi_sync_master_wait_no_slave = OFF');
    await sql(primary, 'SET GLOBAL rpl_semi_sync_master_timeout = 100');
    for (let i = 0; i < 3; i++) {
      await write(50);
      await flush(primary);
    }
    const names = (files: { name: string }[]) => files.map((f) => f.name);
    const binlogNames = async (e: Endpoint) => names(await admin(e, listBinlogs));
    const before = await admin(primary, listBinlogs);
    const standbyBefore = await admin(standby, listBinlogs);

    // Without the standby's position nothing goes.
    const blind = await shardView();
    delete blind.instances[1].position;
    await job.run(blind, DEFAULT_POLICY);
    expect(await binlogNames(primary)).toEqual(names(before));

    // A minimum age keeps files closed too recently.
    await job.run(await shardView(), { ...DEFAULT_POLICY, binlogMinAgeMs: HOUR_MS });
    expect(await binlogNames(primary)).toEqual(names(before));

    const report = await job.run(await shardView(), DEFAULT_POLICY);
    const after = await admin(primary, listBinlogs);
    expect(after.length).toBeLessThan(before.length);
    // The files written while the standby was stopped (3 flushes: 3 closed files and the current one) stay.
    expect(after.length).toBeGreaterThanOrEqual(4);
    // The standby's own binlogs (log_slave_updates) are all on the primary: they went too.
    expect((await admin(standby, listBinlogs)).length).toBeLessThan(standbyBefore.length);
    expect(
      standbyBehindPurge(
        report.binlogs[0].oldestStartState,
        (await shardView()).instances[1].position,
        undefined,
      ),
    ).toBeUndefined();

    await sql(standby, 'START SLAVE');
    await standbyCaughtUp();
    const count = 'SELECT COUNT(*) AS n FROM mq.filler';
    expect(await sql(standby, count)).toEqual(await sql(primary, count));
  });

  it('reports a standby that needs binlogs the primary purged (a standby that lost its volume)', async () => {
    // The standby starts over with no data, as after a lost volume; the primary purged its first
    // binlogs in the test before, so replaying "from the start" is no longer possible.
    await sql(standby, 'STOP SLAVE');
    await sql(standby, 'RESET MASTER');
    await sql(standby, "SET GLOBAL gtid_slave_pos = ''");
    const view = await shardView();
    const report = await job.run(view, DEFAULT_POLICY);
    expect(report.binlogs[0]).toMatchObject({ instance: 'primary' });
    const reason = standbyBehindPurge(
      report.binlogs[0].oldestStartState,
      view.instances[1].position,
      undefined,
    );
    expect(reason).toMatch(/binlogs start after/);

    await sql(standby, 'START SLAVE');
    let probe = await probeInstance(standby, cluster.secrets.admin);
    const deadline = Date.now() + 20_000;
    while (!probe.replica?.lastError && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      probe = await probeInstance(standby, cluster.secrets.admin);
    }
    expect(standbyBehindPurge(undefined, probe.gtidCurrentPos, probe.replica)).toMatch(
      /no longer has the binlogs/,
    );
  });
});
