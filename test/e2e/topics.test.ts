/**
 * MessageQueueTopic on the embedded control plane: a declared topic is created with its settings
 * on every shard's primary and takes messages; a topic made through the broker shows up as a
 * discovered resource; deleting the declared resource drops the topic's tables on every shard.
 */
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Producer } from '../../src/client/index.js';
import { type Credentials, connectionOptions } from '../../src/shard/connection.js';
import { LOCAL_CLUSTER_SPEC as SPEC, clusterManifest } from '../../tools/local/cluster-manifest.js';
import { type Env, conditionOf, startEnv, waitFor } from '../support/operator.js';

const NS = 'topics';
const NAME = 'q';

let env: Env;

interface TopicJson {
  metadata: { name: string; labels?: Record<string, string>; finalizers?: string[] };
  spec: { topicName?: string; maxDeliveries?: number };
  status?: { shardsReady?: string; conditions?: { type: string; status: string }[] };
}

async function primaryOf(shard: string): Promise<{ name: string; ip: string }> {
  const [pod] = await env.pods(
    NS,
    `mysqlmq.io/cluster=${NAME},mysqlmq.io/shard=${shard},mysqlmq.io/role=primary`,
  );
  return { name: pod!.metadata.name, ip: pod!.status!.podIP! };
}

const primaries = async () =>
  (await env.pods(NS, `mysqlmq.io/cluster=${NAME},mysqlmq.io/role=primary`))
    .filter((p) => p.status?.podIP && p.status.phase === 'Running')
    .map((p) => p.status!.podIP!);
const brokerClient = () => env.brokerClient(NS, NAME, { ready: true });

async function topics(): Promise<TopicJson[]> {
  return (JSON.parse(await env.kubectl(['get', 'mqt', '-n', NS, '-o', 'json'])) as { items: TopicJson[] })
    .items;
}

let admin: Credentials;
async function query<T>(host: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const conn = await mysql.createConnection({
    ...connectionOptions({ host, port: 3306 }, admin),
    connectTimeout: 3000,
  });
  try {
    const [rows] = await conn.query(sql, params);
    return rows as T[];
  } finally {
    await conn.end();
  }
}

beforeAll(async () => {
  env = await startEnv('127.0.91');
  await env.kubectl(['create', 'namespace', NS]);
  env.startOperator({ env: { TOPIC_DISCOVERY_PERIOD: '1s' } });
  await env.apply(clusterManifest(NS, NAME, SPEC));
  await waitFor(
    'the cluster to be Ready',
    async () => conditionOf(await env.getCluster(NS, NAME), 'Ready')?.status === 'True',
    240_000,
    500,
  );
  admin = await env.mysqlCredentials(NS, NAME);
}, 600_000);

afterAll(async () => {
  await env?.stop();
});

describe('MessageQueueTopic', () => {
  it('creates a declared topic with its settings on every shard, and producers can publish to it', async () => {
    await env.apply(`apiVersion: mysqlmq.io/v1alpha1
kind: MessageQueueTopic
metadata:
  name: orders
  namespace: ${NS}
spec:
  cluster: ${NAME}
  maxDeliveries: 4
  retention:
    maxAgeHours: 12
`);
    const ready = await waitFor(
      'the topic to be Ready',
      async () => {
        const t = (await topics()).find((x) => x.metadata.name === 'orders');
        return t?.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True' ? t : undefined;
      },
      60_000,
      300,
    );
    expect(ready.status?.shardsReady).toBe('2/2');
    expect(ready.metadata.finalizers).toContain('mysqlmq.io/topic-cleanup');
    const hosts = await primaries();
    expect(hosts).toHaveLength(2);
    for (const host of hosts) {
      const [row] = await query<{ id: number; settings: string }>(
        host,
        'SELECT id, settings FROM mq.topics WHERE name = ?',
        ['orders'],
      );
      expect(JSON.parse(row!.settings)).toEqual({ retentionMaxAgeHours: 12, maxDeliveries: 4 });
      const tables = await query(
        host,
        'SELECT 1 FROM information_schema.tables WHERE table_schema = ? AND table_name = ?',
        ['mq', `m_${row!.id}`],
      );
      expect(tables).toHaveLength(1);
    }
    const producer = new Producer(await brokerClient());
    try {
      const acks = await Promise.all(Array.from({ length: 20 }, (_, i) => producer.send('orders', `m${i}`)));
      expect(acks).toHaveLength(20);
    } finally {
      await producer.close();
    }
  });

  it('lists a topic made through the broker as a discovered resource without finalizer', async () => {
    const producer = new Producer(await brokerClient());
    try {
      await producer.createTopic('ad_hoc', { maxDeliveries: 7 });
    } finally {
      await producer.close();
    }
    const found = await waitFor(
      'a discovered MessageQueueTopic for ad_hoc',
      async () => (await topics()).find((t) => t.spec.topicName === 'ad_hoc'),
      60_000,
      300,
    );
    expect(found.metadata.labels?.['mysqlmq.io/discovered']).toBe('true');
    expect(found.metadata.finalizers ?? []).toEqual([]);
    expect(found.spec.maxDeliveries).toBe(7);
    // The declared topic is not listed twice.
    expect((await topics()).filter((t) => (t.spec.topicName ?? t.metadata.name) === 'orders')).toHaveLength(
      1,
    );
  });

  it('grants rights only to users of the cluster: another name leaves the topic not Ready, with an Event', async () => {
    const manifest = (actions: string) => `apiVersion: mysqlmq.io/v1alpha1
kind: MessageQueueTopic
metadata:
  name: audit
  namespace: ${NS}
spec:
  cluster: ${NAME}
  rights:
    - user: billing
      actions: [${actions}]
`;
    // The schema refuses an action that does not exist.
    await expect(env.apply(manifest('read'))).rejects.toThrow(/Unsupported value: "read"/);
    await env.apply(manifest('consume'));
    const refused = await waitFor(
      'the topic to be refused for its unknown user',
      async () => {
        const t = (await topics()).find((x) => x.metadata.name === 'audit');
        const ready = t?.status?.conditions?.find((c) => c.type === 'Ready') as
          { status: string; reason?: string; message?: string } | undefined;
        return ready?.reason === 'UnknownUser' ? ready : undefined;
      },
      60_000,
      300,
    );
    expect(refused.status).toBe('False');
    expect(refused.message).toMatch(/billing, not in spec.users of MessageQueueCluster q/);
    const events = await env.kubectl([
      'get',
      'events',
      '-n',
      NS,
      '--field-selector',
      'involvedObject.name=audit,reason=UnknownUser',
      '-o',
      'name',
    ]);
    expect(events.trim()).not.toBe('');
    await env.kubectl(['delete', 'mqt', 'audit', '-n', NS, '--wait=false']);
  });

  it("deleting the declared resource drops the topic's table and rows on every shard", async () => {
    const hosts = await primaries();
    const ids = await Promise.all(
      hosts.map(
        async (h) =>
          (await query<{ id: number }>(h, 'SELECT id FROM mq.topics WHERE name = ?', ['orders']))[0]!.id,
      ),
    );
    await env.kubectl(['delete', 'mqt', 'orders', '-n', NS, '--timeout=60s']);
    for (const [i, host] of hosts.entries()) {
      expect(await query(host, 'SELECT 1 FROM mq.topics WHERE name = ?', ['orders'])).toHaveLength(0);
      const tables = await query(
        host,
        'SELECT 1 FROM information_schema.tables WHERE table_schema = ? AND table_name = ?',
        ['mq', `m_${ids[i]}`],
      );
      expect(tables).toHaveLength(0);
      // The discovered topic's data stays.
      expect(await query(host, 'SELECT 1 FROM mq.topics WHERE name = ?', ['ad_hoc'])).toHaveLength(1);
    }
    // Brokers that had the topic's tables cached recreate it on the next publish rather than
    // failing on the dropped table; it is then listed as discovered.
    const producer = new Producer(await brokerClient());
    try {
      await waitFor(
        'a publish to the deleted topic to succeed',
        async () => {
          try {
            await producer.send('orders', 'again');
            return true;
          } catch {
            return false;
          }
        },
        30_000,
        500,
      );
    } finally {
      await producer.close();
    }
    await waitFor(
      'orders discovered again',
      async () =>
        (await topics()).some(
          (t) => t.spec.topicName === 'orders' && t.metadata.labels?.['mysqlmq.io/discovered'] === 'true',
        ),
      30_000,
      300,
    );
  });

  it('a shard whose primary is down keeps the finalizer until it is back; then the topic is dropped there too', async () => {
    await env.apply(`apiVersion: mysqlmq.io/v1alpha1
kind: MessageQueueTopic
metadata:
  name: payments
  namespace: ${NS}
spec:
  cluster: ${NAME}
`);
    await waitFor('payments Ready', async () =>
      (await topics()).some(
        (t) =>
          t.metadata.name === 'payments' &&
          t.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
      ),
    );
    const [shard0, shard1] = [await primaryOf('shard-0'), await primaryOf('shard-1')];
    // SIGSTOP: the operator's probe fails and shard-1 takes no writes (promoteForWrites is off).
    await env.kubelet.killContainer(NS, shard1.name, 'mariadb', 'SIGSTOP');
    try {
      await waitFor(
        'shard-1 to stop taking writes',
        async () => (await env.getCluster(NS, NAME)).status?.shards?.[1]?.writable === false,
        60_000,
        300,
      );
      await env.kubectl(['delete', 'mqt', 'payments', '-n', NS, '--wait=false']);
      const pending = await waitFor(
        'the deletion to wait for shard-1',
        async () => {
          const t = (await topics()).find((x) => x.metadata.name === 'payments');
          return t?.status && (t.status as { pendingShards?: string[] }).pendingShards?.includes('shard-1')
            ? t
            : undefined;
        },
        30_000,
        300,
      );
      expect(pending.metadata.finalizers).toContain('mysqlmq.io/topic-cleanup');
      expect(await query(shard0.ip, 'SELECT 1 FROM mq.topics WHERE name = ?', ['payments'])).toHaveLength(0);
    } finally {
      await env.kubelet.killContainer(NS, shard1.name, 'mariadb', 'SIGCONT');
    }
    await waitFor(
      'the resource to be gone once shard-1 is back',
      async () => !(await topics()).some((t) => t.metadata.name === 'payments'),
      90_000,
      500,
    );
    const back = await primaryOf('shard-1');
    expect(await query(back.ip, 'SELECT 1 FROM mq.topics WHERE name = ?', ['payments'])).toHaveLength(0);
  }, 240_000);
});
