/**
 * `spec.restore` on the embedded control plane: a source cluster backs up to a directory under
 * load and archives its binlogs; a new cluster restored from it to a point between two publish
 * batches holds every message acknowledged before the point and none after it, with its own
 * credentials, a standby that follows, and the Restored condition and Events. A new cluster whose
 * shard count differs from the source's gets a condition and an Event, and no Pod.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Consumer, Producer } from '../../src/client/index.js';
import { connectionOptions } from '../../src/shard/connection.js';
import { clusterManifest } from '../../tools/local/cluster-manifest.js';
import { eventReasons } from '../../tools/local/kubectl.js';
import { type Env, conditionOf, sleep, startEnv, waitFor } from '../support/operator.js';

const NS = 'restore';
const TOPIC = 'orders';
let env: Env;
let backups: string;

const spec = (extra: string) => `
shards: 1
mysql:
  storage:
    size: 1Gi
brokers:
  replicas: 1
failover:
  probePeriodSeconds: 1
  failureThreshold: 3
${extra}`;

const pods = (cluster: string, selector = '') => env.pods(NS, `mysqlmq.io/cluster=${cluster}${selector}`);

async function waitReady(cluster: string): Promise<void> {
  await waitFor(
    `${cluster} to be Ready`,
    async () => conditionOf(await env.getCluster(NS, cluster), 'Ready')?.status === 'True',
    300_000,
    500,
  );
}

const secretValue = (cluster: string, key: string) => env.secretValue(NS, `${cluster}-credentials`, key);

/** Publishes numbered values until `until` resolves; returns every acknowledged value. */
async function publishUntil(producer: Producer, prefix: string, until: Promise<unknown>): Promise<string[]> {
  const acked: string[] = [];
  let done = false;
  void until.finally(() => (done = true));
  for (let batch = 0; !done; batch++) {
    const values = Array.from({ length: 20 }, (_, i) => `${prefix}-${batch}-${i}`);
    await producer.sendBatch(TOPIC, values);
    acked.push(...values);
  }
  return acked;
}

/** Every message of the topic on `cluster`, read by a new group until a fetch comes back empty. */
async function consumeAll(cluster: string): Promise<string[]> {
  const consumer = new Consumer({
    ...(await env.brokerClient(NS, cluster)),
    topic: TOPIC,
    group: `check-${Date.now()}`,
    waitMs: 1000,
  });
  const values: string[] = [];
  try {
    for (;;) {
      const messages = await consumer.poll();
      if (!messages.length) break;
      values.push(...messages.map((m) => String(m.value)));
    }
  } finally {
    await consumer.close();
  }
  return values;
}

beforeAll(async () => {
  backups = await mkdtemp(join(tmpdir(), 'mq-e2e-restore-backups-'));
  env = await startEnv('127.0.150');
  await env.kubectl(['create', 'namespace', NS]);
  env.startOperator();
}, 600_000);

afterAll(async () => {
  await env?.stop();
  if (backups) await rm(backups, { recursive: true, force: true });
});

describe('spec.restore into a new cluster', () => {
  let before: string[] = [];
  let after: string[] = [];
  let point = '';

  it('restores a cluster to a point between two publish batches', async () => {
    await env.apply(
      clusterManifest(
        NS,
        'src',
        spec(`backup:
  schedule: "*/20 * * * * *"
  keep: 50
  binlogArchiveIntervalSeconds: 10
  target:
    directory:
      path: ${backups}`),
      ),
    );
    await waitReady('src');
    const producer = new Producer(await env.brokerClient(NS, 'src'));
    await producer.createTopic(TOPIC);
    const loadStart = new Date().toISOString();
    // Batch 1 runs until a backup finished while it was publishing (a backup under load).
    before = await publishUntil(
      producer,
      'before',
      waitFor(
        'a backup taken under load',
        async () => {
          const last = (await env.getCluster(NS, 'src')).status?.backup?.lastBackupTime;
          return last !== undefined && last > loadStart;
        },
        180_000,
        500,
      ),
    );
    // Binlog event times are whole seconds: the point is the second after the last acknowledgement.
    const pointMs = Math.ceil((Date.now() + 1) / 1000) * 1000 + 1000;
    point = new Date(pointMs).toISOString().replace('.000Z', 'Z');
    await sleep(pointMs - Date.now() + 1000);
    after = await publishUntil(producer, 'after', sleep(2000));
    await producer.close();
    const afterDone = new Date().toISOString();
    await waitFor(
      'the binlog archive to reach past the second batch',
      async () => {
        const last = (await env.getCluster(NS, 'src')).status?.backup?.lastBinlogArchiveTime;
        return last !== undefined && last > afterDone;
      },
      120_000,
      500,
    );

    await env.apply(
      clusterManifest(
        NS,
        'dst',
        spec(`restore:
  from:
    cluster: src
    target:
      directory:
        path: ${backups}
        # As in a real cluster, where the backups are on a volume of their own: mounted into the
        # restoring step (a hostPath here; the test kubelet reads it in place).
        volume:
          hostPath:
            path: ${backups}
  pointInTime: "${point}"`),
      ),
    );
    await waitReady('dst');
    const dst = await env.getCluster(NS, 'dst');
    expect(conditionOf(dst, 'Restored')?.status).toBe('True');
    expect(dst.status?.restore?.from).toBe(`src in directory ${backups}`);
    expect(dst.status?.restore?.pointInTime).toBe(point);
    expect(dst.status?.restore?.completedTime).toBeTruthy();
    const restoring = JSON.parse(
      await env.kubectl(['get', 'pod', '-n', NS, 'dst-shard-0-0', '-o', 'json']),
    ) as {
      spec: { volumes: unknown[] };
    };
    expect(restoring.spec.volumes).toContainEqual(
      expect.objectContaining({
        name: 'restore-source',
        hostPath: expect.objectContaining({ path: backups }),
      }),
    );
    const reasons = await eventReasons((args) => env.kubectl(args), NS, 'dst');
    expect(reasons).toContain('RestoreStarted');
    expect(reasons).toContain('RestoreCompleted');

    const restored = await consumeAll('dst');
    expect(before.length).toBeGreaterThan(0);
    expect(after.length).toBeGreaterThan(0);
    expect(new Set(restored)).toEqual(new Set(before));
  }, 900_000);

  it('gives the restored cluster its own credentials and a standby that follows', async () => {
    const [primary] = await pods('dst', ',mysqlmq.io/role=primary');
    const [standby] = await pods('dst', ',mysqlmq.io/role=standby');
    const admin = await env.mysqlCredentials(NS, 'dst');
    expect(admin.password).not.toBe(await secretValue('src', 'admin-password'));
    const query = async (host: string, statement: string) => {
      const conn = await mysql.createConnection(connectionOptions({ host, port: 3306 }, admin));
      try {
        return ((await conn.query(statement))[0] as Record<string, unknown>[])[0]!;
      } finally {
        conn.destroy();
      }
    };
    // New messages on the restored cluster reach its standby.
    const producer = new Producer(await env.brokerClient(NS, 'dst'));
    await producer.sendBatch(TOPIC, ['new-1', 'new-2']);
    await producer.close();
    await waitFor(
      'the standby to hold what the primary holds',
      async () => {
        const p = await query(primary!.status!.podIP!, 'SELECT @@gtid_binlog_pos AS pos');
        const s = await query(standby!.status!.podIP!, 'SELECT @@gtid_current_pos AS pos');
        return p.pos === s.pos;
      },
      60_000,
      500,
    );
    const count = `SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = 'mq'`;
    expect((await query(standby!.status!.podIP!, count)).n).toEqual(
      (await query(primary!.status!.podIP!, count)).n,
    );
  }, 300_000);

  it('refuses a source with a different number of shards, creating nothing', async () => {
    await env.apply(
      clusterManifest(
        NS,
        'wide',
        `${spec(`restore:
  from:
    cluster: src
    target:
      directory:
        path: ${backups}`).replace('shards: 1', 'shards: 2')}`,
      ),
    );
    const condition = await waitFor(
      'the Restored condition',
      async () => {
        const c = conditionOf(await env.getCluster(NS, 'wide'), 'Restored');
        return c?.status === 'False' ? c : undefined;
      },
      60_000,
      500,
    );
    expect(condition.reason).toBe('SourceUnusable');
    expect(condition.message).toContain('spec.shards 2');
    expect(await eventReasons((args) => env.kubectl(args), NS, 'wide')).toContain('RestoreFailed');
    expect(await pods('wide')).toEqual([]);
  }, 120_000);

  it('fails the init step of a restore the archive cannot reach yet, with a condition, an Event and a log that say why', async () => {
    // Backups finished before this point exist, so the operator's check passes; the archive does not
    // reach an hour from now, which only the restore itself finds out.
    const future = new Date(Date.now() + 3_600_000).toISOString().replace(/\.\d+Z$/, 'Z');
    await env.apply(
      clusterManifest(
        NS,
        'early',
        spec(`restore:
  from:
    cluster: src
    target:
      directory:
        path: ${backups}
  pointInTime: "${future}"`),
      ),
    );
    const condition = await waitFor(
      'the restore to fail',
      async () => {
        const c = conditionOf(await env.getCluster(NS, 'early'), 'Restored');
        return c?.reason === 'RestoreFailed' ? c : undefined;
      },
      120_000,
      500,
    );
    expect(condition.message).toContain('`kubectl logs -n restore early-shard-0-0 -c seed` says why');
    expect(await eventReasons((args) => env.kubectl(args), NS, 'early')).toContain('RestoreFailed');
    const log = await readFile(join(env.stateDir, 'pods', NS, 'early-shard-0-0', 'logs', 'seed.log'), 'utf8');
    expect(log).toContain('restoring src/shard-0 from directory');
    expect(log).toContain('wait for the next binlog archive run');
    // Its standby waits for a primary that holds the restored data.
    expect((await pods('early')).map((p) => p.metadata.name)).not.toContain('early-shard-0-1');
  }, 180_000);
});
