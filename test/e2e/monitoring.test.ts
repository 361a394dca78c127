/**
 * Operating a cluster, end to end on the embedded control plane:
 * - the opt-in mysqld_exporter sidecar (spec.monitoring.mysqldExporter): its /metrics on every
 *   MariaDB pod says the server is up, the standby replicates and semi-sync is on; the cluster's
 *   credentials Secret, written by an older operator without `monitor-password` and
 *   `root-password`, gets the keys;
 * - dead letters are visible: a handler that throws on one message forever does not stall the
 *   shard, the message ends in `<topic>.dlq`, and a Warning Event `DeadLettered` on the
 *   MessageQueueTopic says which message, which group and why.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Consumer, Producer } from '../../src/client/index.js';
import { LOCAL_CLUSTER_SPEC, clusterManifest } from '../../tools/local/cluster-manifest.js';
import { parseSamples } from '../../tools/local/mysqld-exporter.js';
import { type Env, conditionOf, startEnv, waitFor } from '../support/operator.js';

const NS = 'monitoring';
const NAME = 'mon';
const SPEC = `${LOCAL_CLUSTER_SPEC}
monitoring:
  mysqldExporter:
    enabled: true
`;

let env: Env;

interface EventJson {
  type: string;
  reason: string;
  message: string;
  involvedObject: { kind: string; name: string };
}

/** Running pods with an IP. */
async function pods(selector: string) {
  return (await env.pods(NS, selector)).filter((p) => p.status?.podIP && p.status.phase === 'Running');
}

async function events(): Promise<EventJson[]> {
  return (JSON.parse(await env.kubectl(['get', 'events', '-n', NS, '-o', 'json'])) as { items: EventJson[] })
    .items;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

beforeAll(async () => {
  env = await startEnv('127.0.153');
  await env.kubectl(['create', 'namespace', NS]);
  // The credentials Secret as an operator before the exporter wrote it: four keys, no monitor-password.
  await env.apply(`apiVersion: v1
kind: Secret
metadata:
  name: ${NAME}-credentials
  namespace: ${NS}
  labels:
    app.kubernetes.io/name: mysqlmq
    app.kubernetes.io/instance: ${NAME}
    app.kubernetes.io/managed-by: mysqlmq-operator
    app.kubernetes.io/component: credentials
    mysqlmq.io/cluster: ${NAME}
type: Opaque
data:
  admin-password: ${b64('old-admin-password-0123456789')}
  replication-password: ${b64('old-replication-password-0123')}
  broker-password: ${b64('old-broker-password-012345678')}
  admin-token: ${b64('old-admin-token-0123456789abc')}
`);
  env.startOperator({ env: { TOPIC_DISCOVERY_PERIOD: '1s' } });
  await env.apply(clusterManifest(NS, NAME, SPEC));
  await waitFor(
    'the cluster to be Ready',
    async () => conditionOf(await env.getCluster(NS, NAME), 'Ready')?.status === 'True',
    240_000,
    500,
  );
}, 600_000);

afterAll(async () => {
  await env?.stop();
});

describe('the mysqld_exporter sidecar', () => {
  it('adds monitor-password and root-password to a Secret an older operator wrote, keeping its passwords', async () => {
    const secret = JSON.parse(
      await env.kubectl(['get', 'secret', `${NAME}-credentials`, '-n', NS, '-o', 'json']),
    ) as { data: Record<string, string> };
    expect(Object.keys(secret.data).sort()).toEqual([
      'admin-password',
      'admin-token',
      'broker-password',
      'monitor-password',
      'replication-password',
      'root-password',
    ]);
    expect(secret.data['admin-password']).toBe(b64('old-admin-password-0123456789'));
    for (const key of ['monitor-password', 'root-password'])
      expect(Buffer.from(secret.data[key]!, 'base64').toString()).toMatch(/^[A-Za-z0-9_-]{32}$/);
    const reasons = (await events()).map((e) => e.reason);
    expect(reasons).toContain('CredentialsUpdated');
  });

  it('serves mysql_up 1 on every MariaDB pod, replication metrics on standbys and semi-sync on primaries', async () => {
    const instances = await pods(`mysqlmq.io/cluster=${NAME},app.kubernetes.io/component=mysql`);
    expect(instances).toHaveLength(4);
    for (const pod of instances) {
      const exporter = pod.spec.containers.find((c) => c.name === 'mysqld-exporter');
      expect(exporter?.ports).toEqual([expect.objectContaining({ name: 'metrics', containerPort: 9104 })]);
      const role = pod.metadata.labels?.['mysqlmq.io/role'];
      const samples = await waitFor(
        `${pod.metadata.name}'s exporter to report replication`,
        async () => {
          const res = await fetch(`http://${pod.status!.podIP}:9104/metrics`);
          const s = parseSamples(await res.text());
          const ready =
            s.get('mysql_up') === 1 &&
            (role === 'primary'
              ? s.get('mysql_global_status_rpl_semi_sync_master_clients') === 1
              : [...s.keys()].some((k) => k.startsWith('mysql_slave_status_slave_sql_running')));
          return ready && s;
        },
        30_000,
        500,
      );
      const find = (name: string) => [...samples.entries()].find(([k]) => k.startsWith(`${name}{`))?.[1];
      if (role === 'primary') {
        expect(samples.get('mysql_global_status_rpl_semi_sync_master_status')).toBe(1);
      } else {
        expect(find('mysql_slave_status_slave_io_running')).toBe(1);
        expect(find('mysql_slave_status_slave_sql_running')).toBe(1);
        expect(find('mysql_slave_status_seconds_behind_master')).toBeGreaterThanOrEqual(0);
        expect(samples.get('mysql_global_status_rpl_semi_sync_slave_status')).toBe(1);
      }
    }
  });
});

describe('a poison message', () => {
  it('goes to <topic>.dlq while the rest of its shard flows, and a DeadLettered Event names it', async () => {
    await env.apply(`apiVersion: mysqlmq.io/v1alpha1
kind: MessageQueueTopic
metadata:
  name: orders
  namespace: ${NS}
spec:
  cluster: ${NAME}
  maxDeliveries: 3
`);
    await waitFor(
      'the topic to be Ready',
      async () => {
        const t = JSON.parse(await env.kubectl(['get', 'mqt', 'orders', '-n', NS, '-o', 'json'])) as {
          status?: { conditions?: { type: string; status: string }[] };
        };
        return t.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
      },
      60_000,
      300,
    );
    const client = await env.brokerClient(NS, NAME, { ready: true });
    const producer = new Producer(client);
    // Batches of 10 land on one shard each: the poison message has ok messages after it on its shard.
    const values = Array.from({ length: 40 }, (_, i) => (i === 3 ? 'poison' : `ok${i}`));
    const acks = [];
    for (let i = 0; i < values.length; i += 10)
      acks.push(...(await producer.sendBatch('orders', values.slice(i, i + 10))));
    const poisonShard = acks[3]!.shard;
    expect(acks.filter((a) => a.shard === poisonShard).length).toBeGreaterThan(1);

    const consumer = new Consumer({ ...client, topic: 'orders', group: 'billing', waitMs: 200 });
    const handled = new Set<string>();
    const deadline = Date.now() + 120_000;
    await consumer.run((messages) => {
      if (Date.now() > deadline) consumer.stop();
      if (messages.some((m) => m.value === 'poison')) throw new Error('cannot parse order');
      for (const m of messages) handled.add(String(m.value));
      if (handled.size === values.length - 1) consumer.stop();
    });
    await consumer.close();
    expect([...handled].sort()).toEqual(values.filter((v) => v !== 'poison').sort());

    const reader = new Consumer({ ...client, topic: 'orders.dlq', group: 'ops', waitMs: 500 });
    const dead = (await reader.poll()).map((m) => JSON.parse(String(m.value)) as Record<string, unknown>);
    await reader.close();
    expect(dead).toEqual([
      expect.objectContaining({
        topic: 'orders',
        group: 'billing',
        shard: poisonShard,
        value: 'poison',
        reason: 'handler_failed',
        deliveries: 3,
        error: 'cannot parse order',
      }),
    ]);

    const event = await waitFor(
      'the DeadLettered Event',
      async () => (await events()).find((e) => e.reason === 'DeadLettered'),
      30_000,
      500,
    );
    expect(event.type).toBe('Warning');
    expect(event.involvedObject).toMatchObject({ kind: 'MessageQueueTopic', name: 'orders' });
    expect(event.message).toBe(
      `message ${poisonShard}/${String(dead[0]!.id)} of topic orders set aside for group billing: the handler failed 3 times; last error: cannot parse order; the copy is in orders.dlq`,
    );
    // One Event per dead letter: the ok messages made none.
    expect((await events()).filter((e) => e.reason === 'DeadLettered')).toHaveLength(1);
  });
});
