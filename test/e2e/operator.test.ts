/**
 * The operator on a real kube-apiserver: a MessageQueueCluster becomes running MariaDB shards with
 * semi-sync replication and brokers that move messages; scaling, spec edits, operator restarts and
 * deletion behave as a platform engineer expects.
 */
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Consumer, Producer } from '../../src/client/index.js';
import { Transport } from '../../src/client/transport.js';
import type { MessageQueueCluster } from '../../src/operator/api/types.js';
import { type Credentials, connectionOptions } from '../../src/shard/connection.js';
import { LOCAL_CLUSTER_SPEC as BASE_SPEC, clusterManifest } from '../../tools/local/cluster-manifest.js';
import { type Env, type OperatorProcess, conditionOf, startEnv, waitFor } from '../support/operator.js';

const NS = 'e2e';
const NAME = 'orders';

let env: Env;
let operator: OperatorProcess;

const clusterYaml = (spec: string, name = NAME) => clusterManifest(NS, name, spec);

const pods = (selector: string) => env.pods(NS, selector);

async function cluster(name = NAME): Promise<MessageQueueCluster> {
  return env.getCluster(NS, name);
}

async function waitReady(name = NAME, timeoutMs = 240_000): Promise<MessageQueueCluster> {
  return waitFor(
    `cluster ${name} to be Ready`,
    async () => {
      const cr = await cluster(name);
      const ready = conditionOf(cr, 'Ready');
      return cr.status?.observedGeneration === cr.metadata.generation && ready?.status === 'True'
        ? cr
        : undefined;
    },
    timeoutMs,
    500,
  );
}

/** The ready brokers and the admin user's token: authentication is on by default. */
const brokerClient = () => env.brokerClient(NS, NAME, { ready: true });

/** A key of the cluster's generated credentials Secret. */
const secretKey = (key: string, name = NAME) => env.secretValue(NS, `${name}-credentials`, key);

const admin = (name = NAME) => env.mysqlCredentials(NS, name);

async function query<T>(host: string, creds: Credentials, sql: string): Promise<T[]> {
  const conn = await mysql.createConnection({
    ...connectionOptions({ host, port: 3306 }, creds),
    connectTimeout: 3000,
  });
  try {
    const [rows] = await conn.query(sql);
    return rows as T[];
  } finally {
    await conn.end();
  }
}

beforeAll(async () => {
  env = await startEnv('127.0.60');
  await env.kubectl(['create', 'namespace', NS]);
  operator = env.startOperator();
}, 600_000);

afterAll(async () => {
  if (operator && process.env.MQ_E2E_OPERATOR_LOG) process.stderr.write(operator.logs());
  await env?.stop();
});

describe('operator end to end', () => {
  it('turns a MessageQueueCluster into replicated shards and working brokers', async () => {
    await env.apply(clusterYaml(BASE_SPEC));
    const cr = await waitReady();
    expect(cr.status?.phase).toBe('Ready');
    expect(cr.status?.shardsReady).toBe(2);
    expect(cr.status?.writableShards).toBe(2);
    expect(cr.status?.brokersReady).toBe(2);
    expect(cr.metadata.finalizers).toContain('mysqlmq.io/finalizer');
    for (const shard of cr.status!.shards!) {
      expect(shard).toMatchObject({ readsFrom: 'primary', writable: true, semiSync: 'active' });
    }

    // Replication really runs: every standby replicates from its shard's primary, read-only.
    const creds = await admin();
    const { password } = creds;
    for (const s of [0, 1]) {
      const [primary] = await pods(
        `mysqlmq.io/cluster=${NAME},mysqlmq.io/shard=shard-${s},mysqlmq.io/role=primary`,
      );
      const [standby] = await pods(
        `mysqlmq.io/cluster=${NAME},mysqlmq.io/shard=shard-${s},mysqlmq.io/role=standby`,
      );
      const [replica] = await query<Record<string, string>>(
        standby!.status!.podIP!,
        creds,
        'SHOW SLAVE STATUS',
      );
      expect(replica).toMatchObject({
        Slave_IO_Running: 'Yes',
        Slave_SQL_Running: 'Yes',
        Master_Host: primary!.status!.podIP,
      });
      const [ro] = await query<{ ro: number }>(standby!.status!.podIP!, creds, 'SELECT @@read_only AS ro');
      expect(ro!.ro).toBe(1);
      const [semi] = await query<{ Value: string }>(
        primary!.status!.podIP!,
        creds,
        "SHOW STATUS LIKE 'Rpl_semi_sync_master_status'",
      );
      expect(semi!.Value).toBe('ON');

      // The admin and monitor users on both instances; root only on localhost, refused over TCP.
      for (const pod of [primary!, standby!]) {
        const users = await query<{ user: string; host: string }>(
          pod.status!.podIP!,
          creds,
          "SELECT User AS user, Host AS host FROM mysql.user WHERE User IN ('root', 'mysqlmq-admin', 'mq_monitor') ORDER BY User, Host",
        );
        expect(users).toEqual([
          { user: 'mq_monitor', host: '%' },
          { user: 'mysqlmq-admin', host: '%' },
          { user: 'root', host: 'localhost' },
        ]);
        const root = { ...creds, user: 'root', password: await secretKey('root-password') };
        await expect(
          mysql.createConnection(connectionOptions({ host: pod.status!.podIP!, port: 3306 }, root)),
        ).rejects.toMatchObject({ errno: 1045 });
      }
    }

    // By default the two instances of every shard run on different nodes, and status says so.
    for (const s of [0, 1]) {
      const nodes = (await pods(`mysqlmq.io/cluster=${NAME},mysqlmq.io/shard=shard-${s}`)).map(
        (p) => p.spec?.nodeName,
      );
      expect(new Set(nodes).size, `shard-${s} on ${nodes.join(', ')}`).toBe(2);
    }
    expect(conditionOf(cr, 'InstancesSeparated')).toMatchObject({ status: 'True', reason: 'SeparateNodes' });

    // The generated passwords are in the Secret, never in a ConfigMap or in status.
    const configMaps = await env.kubectl(['get', 'configmaps', '-n', NS, '-o', 'json']);
    expect(configMaps).not.toContain(password);
    expect(JSON.stringify(cr.status)).not.toContain(password);

    // Messages move through the brokers the operator deployed.
    const client = await brokerClient();
    expect(client.brokers).toHaveLength(2);
    const producer = new Producer(client);
    await producer.createTopic('events');
    for (let i = 0; i < 50; i++) await producer.send('events', `m${i}`);
    const consumer = new Consumer({ ...client, topic: 'events', group: 'billing' });
    const seen = new Set<string>();
    await waitFor('50 messages consumed', async () => {
      for (const m of await consumer.poll()) seen.add(String(m.value));
      await consumer.commit();
      return seen.size === 50;
    });
    await consumer.close();

    // Authentication is on without spec.users: a client without a token is refused, the token of
    // the admin user in Secret orders-user-admin (what brokerClient read) works.
    const broker = { ...client, brokers: client.brokers.slice(0, 1) };
    await expect(
      new Transport({ ...broker, token: undefined }).call('GET', '/v1/topics'),
    ).rejects.toMatchObject({
      status: 401,
      code: 'unauthenticated',
    });
    await expect(
      new Producer({ ...client, token: undefined }).send('events', 'anonymous'),
    ).rejects.toMatchObject({
      status: 401,
      code: 'unauthenticated',
    });
    await expect(new Transport(broker).call('GET', '/v1/topics')).resolves.toBeDefined();
    const [brokerPod] = await pods(`mysqlmq.io/cluster=${NAME},app.kubernetes.io/component=broker`);
    expect(brokerPod!.spec.containers[0]!.args).toContain('--users');
    expect(brokerPod!.spec.containers[0]!.args).not.toContain('--no-auth');
    // TLS is on by default for a new cluster: brokers serve HTTPS (brokerClient verified them) and
    // the instances require TLS (every query above went over it).
    expect(brokerPod!.spec.containers[0]!.args).toContain('--tls-cert');
    expect((await env.getCluster(NS, NAME)).status?.tls).toEqual({ brokers: true, mysql: true });

    const describe = await env.kubectl(['describe', 'mqc', NAME, '-n', NS]);
    expect(describe).toContain('Ready');
    const get = await env.kubectl(['get', 'mqc', '-n', NS]);
    expect(get).toMatch(/orders\s+True\s+Ready/);
  }, 900_000);

  it('scales brokers through the scale subresource', async () => {
    await env.kubectl(['scale', 'mqc', NAME, '-n', NS, '--replicas=3']);
    await waitFor(
      '3 ready brokers in status',
      async () => (await cluster()).status?.brokersReady === 3,
      120_000,
    );
    expect((await brokerClient()).brokers).toHaveLength(3);
    await env.kubectl(['scale', 'mqc', NAME, '-n', NS, '--replicas=2']);
    await waitFor('2 broker pods', async () => (await brokerClient()).brokers.length === 2, 120_000);
  }, 900_000);

  it('rolls out a spec edit: brokers by their Deployment, MariaDB pods one at a time', async () => {
    // The hash covers each instance's own my.cnf (server-id), so every Pod has its own.
    const hashBefore = new Map(
      (await pods(`mysqlmq.io/cluster=${NAME},app.kubernetes.io/component=mysql`)).map((p) => [
        p.metadata.name,
        p.metadata.annotations!['mysqlmq.io/config-hash'],
      ]),
    );
    await env.apply(
      clusterYaml(
        BASE_SPEC.replace('    size: 1Gi\n', '    size: 1Gi\n  config:\n    max_connections: "300"\n'),
      ),
    );
    await waitFor(
      'every MariaDB pod recreated with the new config',
      async () => {
        const now = await pods(`mysqlmq.io/cluster=${NAME},app.kubernetes.io/component=mysql`);
        return (
          now.length === 4 &&
          now.every(
            (p) => p.metadata.annotations!['mysqlmq.io/config-hash'] !== hashBefore.get(p.metadata.name),
          ) &&
          now.every((p) => p.status?.containerStatuses?.every((c) => c.ready))
        );
      },
      600_000,
      1000,
    );
    await waitReady(NAME, 300_000);
    const creds = await admin();
    for (const p of await pods(`mysqlmq.io/cluster=${NAME},app.kubernetes.io/component=mysql`)) {
      const [row] = await query<{ v: number }>(p.status!.podIP!, creds, 'SELECT @@max_connections AS v');
      expect(row!.v).toBe(300);
    }
    // The messages published before the roll are all still there.
    const consumer = new Consumer({ ...(await brokerClient()), topic: 'events', group: 'audit' });
    const seen = new Set<string>();
    await waitFor('the 50 earlier messages after the roll', async () => {
      for (const m of await consumer.poll()) seen.add(String(m.value));
      return seen.size === 50;
    });
    await consumer.close();
  }, 900_000);

  it('converges after an operator restart without recreating or restarting anything', async () => {
    const snapshot = async () =>
      (await pods(`mysqlmq.io/cluster=${NAME}`))
        .map(
          (p) =>
            `${p.metadata.name}/${p.metadata.uid}/${p.status?.containerStatuses?.map((c) => c.restartCount).join(',')}`,
        )
        .sort();
    const objects = async () =>
      (
        await env.kubectl([
          'get',
          'configmaps,services,secrets,deployments,pvc,pdb',
          '-n',
          NS,
          '-l',
          `mysqlmq.io/cluster=${NAME}`,
          '-o',
          'name',
        ])
      )
        .trim()
        .split('\n')
        .sort();
    // Start from a settled cluster: the same routing for a few seconds.
    let lastVersion: number | undefined;
    let sameSince = Date.now();
    await waitFor('routing to settle', async () => {
      const v = (await cluster()).status?.routingVersion;
      if (v !== lastVersion) [lastVersion, sameSince] = [v, Date.now()];
      return Date.now() - sameSince > 4000;
    });
    const podsBefore = await snapshot();
    const objectsBefore = await objects();
    const routingBefore = (await cluster()).status?.routingVersion;
    await operator.stop('SIGTERM');
    expect(await operator.exited).toBe(0);
    operator = env.startOperator();
    await waitFor('the new operator to reconcile', () => operator.logs().includes('caches synced'), 60_000);
    // Give the new operator several shard-loop ticks and reconciles to do something wrong.
    await new Promise((r) => setTimeout(r, 8000));
    await waitReady();
    expect(await snapshot()).toEqual(podsBefore);
    expect(await objects()).toEqual(objectsBefore);
    expect((await cluster()).status?.routingVersion).toBe(routingBefore);
  }, 900_000);

  it('reports a spec the existing data cannot follow, and keeps serving', async () => {
    // Two mistakes at once: a shrink, and a shared token while turning authentication off.
    await env.apply(
      clusterYaml(
        BASE_SPEC.replace('shards: 2', 'shards: 1').replace(
          '  replicas: 2\n',
          '  replicas: 2\n  authSecretName: shared-token\n  auth:\n    enabled: false\n',
        ),
      ),
    );
    const cr = await waitFor('an InvalidSpec condition', async () => {
      const c = await cluster();
      return conditionOf(c, 'Ready')?.reason === 'InvalidSpec' ? c : undefined;
    });
    expect(conditionOf(cr, 'Ready')?.message).toContain('spec.shards cannot shrink from 2 to 1');
    expect(conditionOf(cr, 'Ready')?.message).toContain(
      'spec.brokers.authSecretName is set but spec.brokers.auth.enabled is false',
    );
    const events = await env.kubectl([
      'get',
      'events',
      '-n',
      NS,
      '--field-selector',
      `involvedObject.name=${NAME},reason=InvalidSpec`,
      '-o',
      'name',
    ]);
    expect(events.trim()).not.toBe('');
    // Both shards keep taking writes meanwhile.
    const producer = new Producer(await brokerClient());
    const shardsUsed = new Set<number>();
    for (let i = 0; i < 20; i++)
      shardsUsed.add(Number((await producer.send('events', `late${i}`)).shard.replace('shard-', '')));
    expect(shardsUsed.size).toBe(2);
    await env.apply(clusterYaml(BASE_SPEC));
    await waitReady();
  }, 900_000);

  it('applies spec.retention: a topic over the size limit loses its oldest messages on primary and standby', async () => {
    await env.apply(
      clusterYaml(`${BASE_SPEC}retention:\n  maxBytesPerShard: 2097152\n  intervalSeconds: 5\n`),
    );
    const client = await brokerClient();
    const producer = new Producer(client);
    await producer.createTopic('bulk');
    const value = 'r'.repeat(1000);
    // 10 MB over the 2 shards (each batch goes to one shard); 2 MiB per shard are kept.
    for (let i = 0; i < 10; i++)
      await producer.sendBatch(
        'bulk',
        Array.from({ length: 1000 }, () => value),
      );
    const offsets = async () =>
      (
        await new Transport(client).call<{
          shards: {
            shard: string;
            deletedThrough: number | null;
            missed: number | null;
            latest: number | null;
          }[];
        }>('GET', '/v1/topics/bulk/groups/late/offsets')
      ).shards;
    // What is left fits the limit: at most 2,097 messages of 1,000 bytes per shard.
    let trimmed: Awaited<ReturnType<typeof offsets>> = [];
    await waitFor(
      'retention to trim every shard to the limit',
      // A shard the broker could not read this time answers nulls (and an error): not yet trimmed.
      async () => {
        const shards = (trimmed = await offsets());
        return (
          shards.length === 2 &&
          shards.every(
            (s) => s.latest !== null && s.deletedThrough !== null && s.latest - s.deletedThrough <= 2097,
          ) &&
          shards.some((s) => s.deletedThrough! > 0)
        );
      },
      120_000,
    );
    expect(trimmed.some((s) => s.deletedThrough! > 0)).toBe(true);
    for (const s of trimmed) expect(s.missed).toBe(s.deletedThrough);
    // The deletes replicated: a standby holds what its primary holds.
    const creds = await admin();
    for (const s of trimmed.filter((t) => t.deletedThrough > 0).map((t) => t.shard.replace('shard-', ''))) {
      for (const role of ['primary', 'standby']) {
        const [pod] = await pods(
          `mysqlmq.io/cluster=${NAME},mysqlmq.io/shard=shard-${s},mysqlmq.io/role=${role}`,
        );
        const [topic] = await query<{ id: number }>(
          pod!.status!.podIP!,
          creds,
          "SELECT id FROM mq.topics WHERE name = 'bulk'",
        );
        await waitFor(`${role} of shard-${s} to have applied the deletes`, async () => {
          const [row] = await query<{ n: number; lo: number }>(
            pod!.status!.podIP!,
            creds,
            `SELECT COUNT(*) AS n, MIN(id) AS lo FROM mq.m_${topic!.id}`,
          );
          return Number(row!.n) <= 2097;
        });
      }
    }
    const cr = await waitFor('retention figures in status', async () => {
      const c = await cluster();
      return c.status?.shards?.every((s) => s.binlogBytes && s.oldestMessageAgeSeconds !== undefined)
        ? c
        : undefined;
    });
    expect(cr.status!.shards!.every((s) => !s.standbyBehindBinlogPurge)).toBe(true);
    await env.apply(clusterYaml(BASE_SPEC));
  }, 900_000);

  it('deletes a cluster, keeping its volumes under Retain and removing them under Delete', async () => {
    await env.kubectl(['delete', 'mqc', NAME, '-n', NS, '--wait=true', '--timeout=120s']);
    await waitFor(
      'pods of the deleted cluster to be gone',
      async () => (await pods(`mysqlmq.io/cluster=${NAME}`)).length === 0,
      120_000,
    );
    const retained = await env.kubectl([
      'get',
      'pvc',
      '-n',
      NS,
      '-l',
      `mysqlmq.io/cluster=${NAME}`,
      '-o',
      'name',
    ]);
    expect(retained.trim().split('\n')).toHaveLength(4);

    await env.apply(
      clusterYaml(
        `shards: 1\nmysql:\n  storage:\n    size: 1Gi\nbrokers:\n  replicas: 1\npvcDeletionPolicy: Delete`,
        'scratch',
      ),
    );
    await waitReady('scratch');
    await env.kubectl(['delete', 'mqc', 'scratch', '-n', NS, '--wait=true', '--timeout=120s']);
    await waitFor(
      'the PVCs of a Delete cluster to be gone',
      async () =>
        (
          await env.kubectl(['get', 'pvc', '-n', NS, '-l', 'mysqlmq.io/cluster=scratch', '-o', 'name'])
        ).trim() === '',
      120_000,
    );
  }, 900_000);
});
