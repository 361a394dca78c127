import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentServer } from '../../src/agent/server.js';
import { agentToken } from '../../src/agent/token.js';
import {
  type ArchiveSource,
  archiveShardBinlogs,
  listArchivedBinlogs,
} from '../../src/backup/binlog-archive.js';
import { DirectoryTarget } from '../../src/backup/directory.js';
import { RESTORE_MARKER_FILE, restoreShard } from '../../src/backup/restore.js';
import { type BackupSourceInstance, backupShard } from '../../src/backup/shard-backup.js';
import type { Broker } from '../../src/broker/broker.js';
import { Consumer, Producer } from '../../src/client/index.js';
import { createLogger } from '../../src/common/logger.js';
import { withAdmin } from '../../src/shard/connection.js';
import type { LocalShards } from '../../tools/local/cluster.js';
import type { LocalMariaDb } from '../../tools/local/mariadbd.js';
import { LocalMariaDb as MariaDb } from '../../tools/local/mariadbd.js';
import { startBroker, startShards } from '../support/dataplane.js';

/**
 * Point-in-time restore on real mariadbd: a full backup from the standby, binlogs of the primary
 * archived through its agent, and a restore to a time between two batches of messages into a fresh
 * data directory: every message acknowledged before the point is there, none produced after it.
 */
let dir: string;
let cluster: LocalShards;
let broker: Broker;
const agents: Server[] = [];
let target: DirectoryTarget;
const restoredServers: LocalMariaDb[] = [];
const restoredBrokers: Broker[] = [];
let backupSource: BackupSourceInstance;
let archiveSource: ArchiveSource;
let token: string;

async function startAgent(db: LocalMariaDb, name: string): Promise<string> {
  const agent = agentServer({
    token,
    log: createLogger('agent', 'error'),
    source: {
      endpoint: db.endpoint,
      admin: cluster.secrets.admin,
      dataDir: join(db.options.dir, 'data'),
      workDir: join(dir, `${name}-work`),
    },
  });
  agents.push(agent);
  await new Promise<void>((resolve) => agent.listen(0, db.endpoint.host, resolve));
  return `${db.endpoint.host}:${(agent.address() as AddressInfo).port}`;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mq-pitr-'));
  cluster = await startShards('127.0.84', 1);
  token = agentToken(cluster.secrets.admin.password);
  broker = await startBroker(cluster);
  const { primary, standby } = cluster.shards[0]!;
  backupSource = {
    name: 'shard-0-standby',
    role: 'standby',
    agent: await startAgent(standby, 'standby'),
    endpoint: standby.endpoint,
  };
  archiveSource = {
    name: 'shard-0-primary',
    agent: await startAgent(primary, 'primary'),
    endpoint: primary.endpoint,
  };
  target = new DirectoryTarget(join(dir, 'backups'));
}, 180_000);

afterAll(async () => {
  for (const a of agents) a.close();
  for (const b of restoredBrokers) await b.close();
  for (const r of restoredServers) await r.destroy();
  await broker?.close();
  await cluster?.destroy();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function produce(producer: Producer, prefix: string, n: number): Promise<string[]> {
  const values = Array.from({ length: n }, (_, i) => `${prefix}-${i}-${'x'.repeat(100)}`);
  await Promise.all(values.map((v) => producer.send('orders', v)));
  return values;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const archive = () =>
  archiveShardBinlogs({
    target,
    cluster: 'orders',
    shard: 'shard-0',
    source: archiveSource,
    admin: cluster.secrets.admin,
    agentToken: token,
  });

/** Starts mariadbd on `<dir>/<name>/data` as its shard's primary, with a broker in front. */
async function serveRestored(name: string, host: string, serverId: number) {
  const db = await MariaDb.start({ dir: join(dir, name), host, serverId, admin: cluster.secrets.admin });
  restoredServers.push(db);
  // Every instance starts read-only; the restored one is the primary of its new shard.
  await withAdmin(db.endpoint, cluster.secrets.admin, (c) => c.query('SET GLOBAL read_only = OFF'));
  const restoredBroker = await startBroker(undefined, {
    db: cluster.secrets.broker,
    routing: {
      version: 1,
      shards: [{ name: 'shard-0', write: db.endpoint, read: db.endpoint, requireStandbyAck: false }],
    },
  });
  restoredBrokers.push(restoredBroker);
  return { endpoint: db.endpoint, broker: restoredBroker };
}

/** Every message of `topic` the broker serves. */
async function readTopic(from: Broker, topic: string): Promise<Set<string>> {
  const consumer = new Consumer({
    brokers: [from.url],
    topic,
    group: 'audit',
    waitMs: 200,
    maxMessages: 2000,
  });
  const seen = new Set<string>();
  for (;;) {
    const batch = await consumer.poll();
    if (!batch.length) break;
    for (const m of batch) seen.add(String(m.value));
    await consumer.commit();
  }
  await consumer.close();
  return seen;
}

describe('point-in-time restore of a shard', () => {
  it('restores every message acknowledged before the point, and none after it', async () => {
    const producer = new Producer({ brokers: [broker.url], lingerMs: 2 });
    await producer.createTopic('orders');
    const beforeBackup = await produce(producer, 'before-backup', 1000);
    const backup = await backupShard({
      target,
      cluster: 'orders',
      shard: 'shard-0',
      source: backupSource,
      admin: cluster.secrets.admin,
      agentToken: token,
      keep: 3,
    });
    expect(backup.manifest.role).toBe('standby');

    // Two batches after the backup, one archive run in between so the replay spans several files.
    const early = await produce(producer, 'early', 500);
    // An account statement in the binlog replays too (the replay session has the grant tables).
    await withAdmin(cluster.shards[0]!.primary.endpoint, cluster.secrets.admin, (c) =>
      c.query("CREATE USER 'pitr_probe'@'%' IDENTIFIED BY 'probe'"),
    );
    const first = await archive();
    expect(first.archived.length).toBeGreaterThan(0);
    const middle = await produce(producer, 'middle', 500);
    // The point is a whole second after the last acknowledgement (binlog times are seconds).
    const point = new Date(Math.ceil(Date.now() / 1000) * 1000 + 1000);
    await sleep(point.getTime() - Date.now() + 1100);
    const late = await produce(producer, 'late', 500);
    await producer.close();
    const second = await archive();
    expect(second.archived.length).toBeGreaterThan(0);
    const archived = await listArchivedBinlogs(target, 'orders', 'shard-0');
    expect(archived.length).toBe(first.archived.length + second.archived.length);
    // A run with nothing new archives nothing (an idle primary's binlog is not flushed).
    expect((await archive()).archived).toEqual([]);

    const dataDir = join(dir, 'restored', 'data');
    const { manifest, replay } = await restoreShard({
      target,
      cluster: 'orders',
      shard: 'shard-0',
      pointInTime: point,
      dataDir,
      workDir: join(dir, 'restore-work'),
    });
    expect(manifest.startedAt).toBe(backup.manifest.startedAt);
    expect(replay!.binlogs.length).toBeGreaterThanOrEqual(2);
    expect(JSON.parse(await readFile(join(dataDir, RESTORE_MARKER_FILE), 'utf8'))).toMatchObject({
      pointInTime: point.toISOString(),
    });

    const restored = await serveRestored('restored', '127.0.84.9', 9);
    const probe = await withAdmin(restored.endpoint, cluster.secrets.admin, (c) =>
      c.query("SELECT COUNT(*) AS n FROM mysql.user WHERE user = 'pitr_probe'"),
    );
    expect((probe[0] as { n: number }[])[0]!.n).toBe(1);
    const seen = await readTopic(restored.broker, 'orders');
    expect([...beforeBackup, ...early, ...middle].filter((v) => !seen.has(v))).toEqual([]);
    expect(late.filter((v) => seen.has(v))).toEqual([]);
  }, 240_000);

  it('under steady load, with the backup taken during it: acknowledged before the point is there, sent after it is not', async () => {
    const producer = new Producer({ brokers: [broker.url], lingerMs: 2 });
    await producer.createTopic('load');
    const sent: { value: string; sentAt: number; ackedAt?: number }[] = [];
    let running = true;
    const writers = Array.from({ length: 8 }, async () => {
      while (running) {
        const m = { value: `load-${sent.length}`, sentAt: Date.now() } as (typeof sent)[number];
        sent.push(m);
        await producer.send('load', m.value);
        m.ackedAt = Date.now();
      }
    });
    await sleep(500);
    await backupShard({
      target,
      cluster: 'orders',
      shard: 'shard-0',
      source: backupSource,
      admin: cluster.secrets.admin,
      agentToken: token,
      keep: 3,
    });
    await archive();
    const point = new Date(Math.ceil(Date.now() / 1000) * 1000 + 1000);
    await sleep(point.getTime() - Date.now() + 1500);
    running = false;
    await Promise.all(writers);
    await producer.close();
    await archive();

    await restoreShard({
      target,
      cluster: 'orders',
      shard: 'shard-0',
      pointInTime: point,
      dataDir: join(dir, 'restored-load', 'data'),
      workDir: join(dir, 'restore-work'),
    });
    const seen = await readTopic((await serveRestored('restored-load', '127.0.84.10', 10)).broker, 'load');
    const acked = sent.filter((m) => m.ackedAt! < point.getTime());
    const later = sent.filter((m) => m.sentAt >= point.getTime());
    expect(acked.length).toBeGreaterThan(100);
    expect(later.length).toBeGreaterThan(100);
    expect(acked.filter((m) => !seen.has(m.value))).toEqual([]);
    expect(later.filter((m) => seen.has(m.value))).toEqual([]);
  }, 240_000);

  it('the agent serves binlog files only, and only with its token', async () => {
    const url = (file: string) => `http://${archiveSource.agent}/v1/binlog?file=${file}`;
    const auth = { authorization: `Bearer ${token}` };
    expect((await fetch(url('mysql-bin.000001'))).status).toBe(401);
    const bad = await fetch(url('ibdata1'), { headers: auth });
    expect([bad.status, ((await bad.json()) as { code: string }).code]).toEqual([400, 'bad_file']);
    expect((await fetch(url('..%2Fmy.cnf'), { headers: auth })).status).toBe(400);
    expect((await fetch(url('mysql-bin.999999'), { headers: auth })).status).toBe(404);
    const ok = await fetch(url('mysql-bin.000001'), { headers: auth });
    expect(ok.status).toBe(200);
    // Every binlog file starts with the magic bytes 0xfe 'bin'.
    expect(Buffer.from(await ok.arrayBuffer()).subarray(0, 4)).toEqual(Buffer.from([0xfe, 0x62, 0x69, 0x6e]));
  });

  it('names what is missing when no backup is old enough or the archive does not reach the point', async () => {
    const options = {
      target,
      cluster: 'orders',
      shard: 'shard-0',
      dataDir: join(dir, 'never', 'data'),
      workDir: join(dir, 'never-work'),
    };
    await expect(restoreShard({ ...options, pointInTime: new Date('2020-01-01T00:00:00Z') })).rejects.toThrow(
      /no backup finished before 2020-01-01T00:00:00.000Z/,
    );
    await expect(restoreShard({ ...options, pointInTime: new Date(Date.now() + 3_600_000) })).rejects.toThrow(
      /archived binlogs reach .* not .*wait for the next binlog archive run/,
    );
  }, 120_000);
});
