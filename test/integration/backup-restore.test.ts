import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentServer } from '../../src/agent/server.js';
import { agentToken } from '../../src/agent/token.js';
import { listShardBackups } from '../../src/backup/catalog.js';
import { DirectoryTarget } from '../../src/backup/directory.js';
import { RESTORE_MARKER_FILE, restoreShard } from '../../src/backup/restore.js';
import { S3Target } from '../../src/backup/s3.js';
import { type BackupSourceInstance, backupShard } from '../../src/backup/shard-backup.js';
import type { Broker } from '../../src/broker/broker.js';
import { Consumer, Producer } from '../../src/client/index.js';
import { createLogger } from '../../src/common/logger.js';
import { withAdmin } from '../../src/shard/connection.js';
import type { LocalShards } from '../../tools/local/cluster.js';
import { LocalMariaDb } from '../../tools/local/mariadbd.js';
import { startBroker, startShards } from '../support/dataplane.js';
import { startS3 } from '../support/s3.js';

/**
 * A full backup of a shard on real mariadbd, taken from its standby through the standby's agent
 * while producers keep writing, to a directory and to a real S3-compatible server; restored into a
 * fresh instance, which a broker then serves: every message acknowledged before the backup is
 * there, none produced after it.
 */
let dir: string;
let cluster: LocalShards;
let broker: Broker;
let agent: Server;
let s3: Awaited<ReturnType<typeof startS3>>;
let s3Target: S3Target;
let directoryTarget: DirectoryTarget;
let restored: LocalMariaDb | undefined;
let restoredBroker: Broker | undefined;
let source: BackupSourceInstance;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mq-backup-restore-'));
  cluster = await startShards('127.0.82', 1);
  broker = await startBroker(cluster);
  const standby = cluster.shards[0]!.standby;
  agent = agentServer({
    token: agentToken(cluster.secrets.admin.password),
    log: createLogger('agent', 'error'),
    source: {
      endpoint: standby.endpoint,
      admin: cluster.secrets.admin,
      dataDir: join(standby.options.dir, 'data'),
      workDir: join(dir, 'agent-work'),
    },
  });
  await new Promise<void>((resolve) => agent.listen(0, standby.endpoint.host, resolve));
  source = {
    name: 'shard-0-standby',
    role: 'standby',
    agent: `${standby.endpoint.host}:${(agent.address() as AddressInfo).port}`,
    endpoint: standby.endpoint,
  };
  s3 = await startS3('mq-backups', '127.0.82.20');
  s3Target = new S3Target({
    bucket: 'mq-backups',
    prefix: 'prod',
    endpoint: s3.endpoint,
    forcePathStyle: true,
    credentials: s3.credentials,
  });
  directoryTarget = new DirectoryTarget(join(dir, 'backups'));
}, 180_000);

afterAll(async () => {
  agent?.close();
  await restoredBroker?.close();
  await restored?.destroy();
  await broker?.close();
  await cluster?.destroy();
  s3Target?.close();
  await s3?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const options = (target: DirectoryTarget | S3Target, now: Date, keep = 3) => ({
  target,
  cluster: 'orders',
  shard: 'shard-0',
  source,
  admin: cluster.secrets.admin,
  agentToken: agentToken(cluster.secrets.admin.password),
  keep,
  now,
});

async function produce(producer: Producer, topic: string, prefix: string, n: number): Promise<string[]> {
  const values = Array.from({ length: n }, (_, i) => `${prefix}-${i}-${'x'.repeat(200)}`);
  await Promise.all(values.map((v) => producer.send(topic, v)));
  return values;
}

describe('backup and restore of a shard', () => {
  it('restores every message acknowledged before the backup, and none produced after it', async () => {
    const producer = new Producer({ brokers: [broker.url], lingerMs: 2 });
    await producer.createTopic('orders');
    const before = await produce(producer, 'orders', 'before', 3000);
    // Writes go on while the copy streams: they may or may not be in it, but never break it.
    let writing = true;
    let during = 0;
    const writer = (async () => {
      while (writing) during += (await produce(producer, 'orders', 'during', 50)).length;
    })();
    const toDirectory = await backupShard(options(directoryTarget, new Date('2026-01-01T00:00:00Z')));
    const toS3 = await backupShard(options(s3Target, new Date('2026-01-01T00:00:00Z')));
    writing = false;
    await writer;
    expect(during).toBeGreaterThan(0);
    const after = await produce(producer, 'orders', 'after', 500);
    await producer.close();

    for (const r of [toDirectory, toS3]) {
      expect(r.manifest).toMatchObject({ cluster: 'orders', shard: 'shard-0', role: 'standby' });
      expect(r.manifest.bytes).toBeGreaterThan(1_000_000);
      expect(r.manifest.gtidAtStart).toMatch(/^\d+-\d+-\d+/);
    }

    // Restore from S3 into a fresh instance's data directory, start it, and serve it with a broker.
    const dataDir = join(dir, 'restored', 'data');
    const { manifest } = await restoreShard({
      target: s3Target,
      cluster: 'orders',
      shard: 'shard-0',
      dataDir,
    });
    expect(manifest.startedAt).toBe(toS3.manifest.startedAt);
    expect(JSON.parse(await readFile(join(dataDir, RESTORE_MARKER_FILE), 'utf8'))).toMatchObject({
      backup: toS3.prefix,
    });
    restored = await LocalMariaDb.start({
      dir: join(dir, 'restored'),
      host: '127.0.82.9',
      serverId: 9,
      admin: cluster.secrets.admin,
    });
    // Every instance starts read-only; the restored one is the primary of its new shard.
    await withAdmin(restored.endpoint, cluster.secrets.admin, (c) => c.query('SET GLOBAL read_only = OFF'));
    restoredBroker = await startBroker(undefined, {
      db: cluster.secrets.broker,
      routing: {
        version: 1,
        shards: [
          { name: 'shard-0', write: restored.endpoint, read: restored.endpoint, requireStandbyAck: false },
        ],
      },
    });
    const consumer = new Consumer({
      brokers: [restoredBroker.url],
      topic: 'orders',
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
    expect(before.filter((v) => !seen.has(v))).toEqual([]);
    expect(after.filter((v) => seen.has(v))).toEqual([]);
  });

  it('keeps the newest `keep` backups of a shard', async () => {
    for (const at of ['2026-01-02T00:00:00Z', '2026-01-03T00:00:00Z', '2026-01-04T00:00:00Z']) {
      await backupShard(options(directoryTarget, new Date(at), 2));
    }
    const { complete, incomplete } = await listShardBackups(directoryTarget, 'orders', 'shard-0');
    expect(complete).toEqual(['orders/shard-0/20260103T000000Z/', 'orders/shard-0/20260104T000000Z/']);
    expect(incomplete).toEqual([]);
  });

  it('fails with the reason and leaves nothing behind when the agent cannot be reached', async () => {
    const broken = { ...options(directoryTarget, new Date('2026-01-05T00:00:00Z')) };
    broken.source = { ...source, agent: '127.0.82.2:1' };
    await expect(backupShard(broken)).rejects.toThrow(/ECONNREFUSED/);
    const { complete, incomplete } = await listShardBackups(directoryTarget, 'orders', 'shard-0');
    expect(complete.some((p) => p.includes('20260105'))).toBe(false);
    expect(incomplete).toEqual([]);
  });

  it('refuses to restore a backup that does not exist, naming the ones that do', async () => {
    await expect(
      restoreShard({
        target: directoryTarget,
        cluster: 'orders',
        shard: 'shard-0',
        stamp: '20250101T000000Z',
        dataDir: join(dir, 'never'),
      }),
    ).rejects.toThrow(/no finished backup 20250101T000000Z .*there are: 20260103T000000Z, 20260104T000000Z/);
  });
});
