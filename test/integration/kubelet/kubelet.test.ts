import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import {
  AppsV1Api,
  CoreV1Api,
  CoordinationV1Api,
  PatchStrategy,
  type V1Pod,
  setHeaderOptions,
} from '@kubernetes/client-node';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import winston from 'winston';
import { sleep } from '../../../src/common/deadline.js';
import { createLogger } from '../../../src/common/logger.js';
import { TestKubelet } from '../../../tools/local/kubelet/index.js';
import { waitFor } from '../../../tools/local/wait.js';
import { renderMyCnf } from '../../../src/shard/mycnf.js';
import { type Kube, startKube } from '../../support/kube.js';

const NS = 'default';
const NAME = 'kt';
const ADDRESS_PREFIX = '127.77';
const adminPassword = `adm'${randomBytes(9).toString('hex')}`;
const brokerPassword = randomBytes(9).toString('hex');
const adminToken = randomBytes(9).toString('hex');

let kube: Kube;
let kubelet: TestKubelet;
let stateDir: string;
let core: CoreV1Api;
let apps: AppsV1Api;
const logLines: string[] = [];

const isReady = (pod: V1Pod) =>
  pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

async function readyPod(name: string, timeoutMs = 60_000): Promise<V1Pod> {
  return waitFor(
    `pod ${name} Running and Ready`,
    async () => {
      const pod = await core.readNamespacedPod({ name, namespace: NS });
      return pod.status?.phase === 'Running' && isReady(pod) && pod.status.podIP ? pod : undefined;
    },
    timeoutMs,
  );
}

async function gone(name: string, timeoutMs = 45_000): Promise<void> {
  await waitFor(
    `pod ${name} to disappear`,
    async () => {
      try {
        await core.readNamespacedPod({ name, namespace: NS });
        return undefined;
      } catch (err) {
        return (err as { code?: number }).code === 404 ? true : undefined;
      }
    },
    timeoutMs,
  );
}

function tcpOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = new Socket();
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1000, () => done(false));
    s.once('error', () => done(false));
    s.connect(port, host, () => done(true));
  });
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function rootQuery<T = mysql.RowDataPacket[]>(
  host: string,
  sql: string,
  params: unknown[] = [],
): Promise<T> {
  const conn = await mysql.createConnection({
    host,
    port: 3306,
    user: 'root',
    password: adminPassword,
    connectTimeout: 3000,
  });
  try {
    const [rows] = await conn.query(sql, params);
    return rows as T;
  } finally {
    await conn.end();
  }
}

/** A shard instance pod exactly as docs/operator-design.md describes it. */
function mariadbPod(shard: number, instance: number): V1Pod {
  const shardName = `shard-${shard}`;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: `${NAME}-${shardName}-${instance}`,
      namespace: NS,
      labels: {
        'app.kubernetes.io/name': 'mysqlmq',
        'app.kubernetes.io/instance': NAME,
        'app.kubernetes.io/managed-by': 'mysqlmq-operator',
        'mysqlmq.io/cluster': NAME,
        'mysqlmq.io/shard': shardName,
        'mysqlmq.io/instance': String(instance),
        'mysqlmq.io/role': instance === 0 ? 'primary' : 'standby',
      },
    },
    spec: {
      affinity: {
        podAntiAffinity: {
          preferredDuringSchedulingIgnoredDuringExecution: [
            {
              weight: 100,
              podAffinityTerm: {
                topologyKey: 'kubernetes.io/hostname',
                labelSelector: { matchLabels: { 'mysqlmq.io/cluster': NAME, 'mysqlmq.io/shard': shardName } },
              },
            },
          ],
        },
      },
      containers: [
        {
          name: 'mariadb',
          image: 'mariadb:10.11',
          ports: [{ name: 'mysql', containerPort: 3306 }],
          env: [
            {
              name: 'MARIADB_ROOT_PASSWORD',
              valueFrom: { secretKeyRef: { name: `${NAME}-credentials`, key: 'admin-password' } },
            },
            { name: 'MARIADB_ROOT_HOST', value: '%' },
          ],
          readinessProbe: { tcpSocket: { port: 3306 }, periodSeconds: 2 },
          volumeMounts: [
            {
              name: 'mycnf',
              mountPath: '/etc/mysql/conf.d/mysqlmq.cnf',
              subPath: `instance-${instance}.cnf`,
            },
            { name: 'data', mountPath: '/var/lib/mysql' },
          ],
        },
      ],
      volumes: [
        { name: 'mycnf', configMap: { name: `${NAME}-${shardName}-mycnf` } },
        { name: 'data', persistentVolumeClaim: { claimName: `data-${NAME}-${shardName}-${instance}` } },
      ],
    },
  };
}

beforeAll(async () => {
  kube = await startKube();
  core = kube.kc.makeApiClient(CoreV1Api);
  apps = kube.kc.makeApiClient(AppsV1Api);
  stateDir = await mkdtemp(join(tmpdir(), 'mq-kubelet-'));
  const log = createLogger('test-kubelet', 'debug');
  log.clear();
  log.add(
    new winston.transports.Stream({
      stream: new Writable({
        write(chunk: Buffer, _enc, cb) {
          logLines.push(chunk.toString());
          if (process.env.MQ_TEST_KUBELET_LOG) process.stderr.write(chunk);
          cb();
        },
      }),
    }),
  );
  kubelet = await TestKubelet.start({
    kc: kube.kc,
    stateDir,
    addressPrefix: ADDRESS_PREFIX,
    nodes: ['local-node-a', 'local-node-b'],
    log,
  });
});

afterAll(async () => {
  await kubelet?.stop();
  await kube?.stop();
  if (stateDir && !process.env.MQ_KEEP_KUBE) await rm(stateDir, { recursive: true, force: true });
});

describe('test kubelet', () => {
  it('registers Ready nodes with capacity and renews their Leases', async () => {
    const nodes = (await core.listNode()).items;
    expect(nodes.map((n) => n.metadata?.name).sort()).toEqual(['local-node-a', 'local-node-b']);
    for (const node of nodes) {
      expect(node.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
      expect(node.status?.allocatable?.pods).toBe('110');
      expect(node.status?.capacity?.cpu).toBeDefined();
      expect(node.metadata?.labels?.['kubernetes.io/hostname']).toBe(node.metadata?.name);
    }
    const leases = await kube.kc
      .makeApiClient(CoordinationV1Api)
      .listNamespacedLease({ namespace: 'kube-node-lease' });
    expect(leases.items.map((l) => l.spec?.holderIdentity).sort()).toEqual(['local-node-a', 'local-node-b']);
  });

  it('runs mariadb pods as the operator creates them: Ready on a pod IP, root login with the Secret password', async () => {
    await core.createNamespacedSecret({
      namespace: NS,
      body: {
        metadata: { name: `${NAME}-credentials` },
        stringData: {
          'admin-password': adminPassword,
          'broker-password': brokerPassword,
          'admin-token': adminToken,
          'replication-password': 'unused',
        },
      },
    });
    await core.createNamespacedConfigMap({
      namespace: NS,
      body: {
        metadata: { name: `${NAME}-shard-0-mycnf` },
        data: Object.fromEntries(
          [0, 1].map((n) => [
            `instance-${n}.cnf`,
            renderMyCnf({ serverId: n + 1, bindAddress: '0.0.0.0', port: 3306 }),
          ]),
        ),
      },
    });
    for (const n of [0, 1]) {
      await core.createNamespacedPersistentVolumeClaim({
        namespace: NS,
        body: {
          metadata: { name: `data-${NAME}-shard-0-${n}` },
          spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
        },
      });
      await core.createNamespacedPod({ namespace: NS, body: mariadbPod(0, n) });
    }
    const pods = await Promise.all([0, 1].map((n) => readyPod(`${NAME}-shard-0-${n}`)));
    // The two instances of a shard land on different nodes.
    expect(new Set(pods.map((p) => p.spec?.nodeName)).size).toBe(2);
    for (const [n, pod] of pods.entries()) {
      const ip = pod.status!.podIP!;
      expect(ip).toMatch(/^127\.77\.\d+\.\d+$/);
      expect(ip).not.toBe('127.0.0.1');
      expect(kubelet.podIP(NS, pod.metadata!.name!)).toBe(ip);
      expect(pod.status?.podIPs).toEqual([{ ip }]);
      expect(pod.status?.hostIP).toBe('127.0.0.1');
      expect(pod.status?.startTime).toBeDefined();
      const types = pod.status?.conditions?.map((c) => `${c.type}=${c.status}`).sort();
      expect(types).toEqual(['ContainersReady=True', 'Initialized=True', 'PodScheduled=True', 'Ready=True']);
      const cs = pod.status!.containerStatuses![0]!;
      expect(cs).toMatchObject({
        name: 'mariadb',
        ready: true,
        started: true,
        restartCount: 0,
        image: 'mariadb:10.11',
      });
      expect(cs.state?.running?.startedAt).toBeDefined();
      expect(cs.containerID).toBe(`local://${kubelet.containerPid(NS, pod.metadata!.name!, 'mariadb')}`);

      const [row] = await rootQuery(
        ip,
        'SELECT @@server_id AS id, @@read_only AS ro, @@bind_address AS bind',
      );
      // server_id and read_only from the ConfigMap, the address from the pod.
      expect(row).toEqual({ id: n + 1, ro: 1, bind: ip });
    }
    const pvc = await core.readNamespacedPersistentVolumeClaim({
      name: `data-${NAME}-shard-0-0`,
      namespace: NS,
    });
    expect(pvc.status?.phase).toBe('Bound');
    expect(existsSync(join(stateDir, 'pvc', NS, `data-${NAME}-shard-0-0`, 'mysql'))).toBe(true);
  });

  it('restarts a killed mariadb (NotReady, then Ready with restartCount 1) and keeps its data', async () => {
    const name = `${NAME}-shard-0-0`;
    const ip = kubelet.podIP(NS, name)!;
    await rootQuery(ip, 'CREATE DATABASE IF NOT EXISTS kt');
    await rootQuery(ip, 'CREATE TABLE IF NOT EXISTS kt.t (id INT PRIMARY KEY, v VARCHAR(20))');
    await rootQuery(ip, "INSERT INTO kt.t VALUES (1, 'before-kill')");

    const pid = kubelet.containerPid(NS, name, 'mariadb')!;
    await kubelet.killContainer(NS, name, 'mariadb');
    expect(processAlive(pid)).toBe(false);
    const notReady = await waitFor(
      'NotReady',
      async () => {
        const pod = await core.readNamespacedPod({ name, namespace: NS });
        return isReady(pod) ? undefined : pod;
      },
      10_000,
      50,
    );
    expect(notReady.status?.containerStatuses?.[0]?.ready).toBe(false);

    const pod = await readyPod(name);
    const cs = pod.status!.containerStatuses![0]!;
    expect(cs.restartCount).toBe(1);
    expect(cs.lastState?.terminated).toMatchObject({ exitCode: 137, reason: 'Killed' });
    expect(pod.status?.podIP).toBe(ip);
    expect(kubelet.containerPid(NS, name, 'mariadb')).not.toBe(pid);
    expect(await rootQuery(ip, 'SELECT v FROM kt.t WHERE id = 1')).toEqual([{ v: 'before-kill' }]);
  });

  it('runs a broker Deployment: Ready on /readyz, spread over the nodes, routing ConfigMap refreshed', async () => {
    const mariadbIP = kubelet.podIP(NS, `${NAME}-shard-0-0`)!;
    const routing = (version: number) =>
      JSON.stringify({
        version,
        shards: [
          { name: 'shard-0', write: null, read: { host: mariadbIP, port: 3306 }, requireStandbyAck: true },
        ],
      });
    await core.createNamespacedConfigMap({
      namespace: NS,
      body: { metadata: { name: `${NAME}-routing` }, data: { 'routing.json': routing(1) } },
    });
    const secretEnv = (name: string, key: string, optional?: boolean) => ({
      name,
      valueFrom: {
        secretKeyRef: { name: optional ? 'no-such-secret' : `${NAME}-credentials`, key, optional },
      },
    });
    await apps.createNamespacedDeployment({
      namespace: NS,
      body: {
        metadata: { name: `${NAME}-broker` },
        spec: {
          replicas: 2,
          selector: { matchLabels: { 'mysqlmq.io/cluster': NAME, 'app.kubernetes.io/component': 'broker' } },
          template: {
            metadata: { labels: { 'mysqlmq.io/cluster': NAME, 'app.kubernetes.io/component': 'broker' } },
            spec: {
              containers: [
                {
                  name: 'broker',
                  image: 'mysqlmq/broker:dev',
                  command: [
                    'node',
                    '/app/dist/broker/main.js',
                    '--routing',
                    '/etc/mysqlmq/routing/routing.json',
                    '--host',
                    '0.0.0.0',
                    '--port',
                    '8080',
                    '--no-auth',
                  ],
                  ports: [{ name: 'http', containerPort: 8080 }],
                  env: [
                    { name: 'MQ_DB_USER', value: 'mq_broker' },
                    secretEnv('MQ_DB_PASSWORD', 'broker-password'),
                    secretEnv('MQ_ADMIN_TOKEN', 'admin-token'),
                    secretEnv('MQ_AUTH_TOKEN', 'token', true),
                  ],
                  readinessProbe: { httpGet: { path: '/readyz', port: 'http' }, periodSeconds: 2 },
                  livenessProbe: { httpGet: { path: '/healthz', port: 'http' }, periodSeconds: 10 },
                  volumeMounts: [{ name: 'routing', mountPath: '/etc/mysqlmq/routing' }],
                },
              ],
              volumes: [{ name: 'routing', configMap: { name: `${NAME}-routing` } }],
            },
          },
        },
      },
    });
    await waitFor(
      'deployment available',
      async () => {
        const d = await apps.readNamespacedDeployment({ name: `${NAME}-broker`, namespace: NS });
        return d.status?.availableReplicas === 2 && d.status.readyReplicas === 2 ? d : undefined;
      },
      60_000,
    );
    const pods = (
      await core.listNamespacedPod({ namespace: NS, labelSelector: 'app.kubernetes.io/component=broker' })
    ).items.filter((p) => !p.metadata?.deletionTimestamp);
    expect(pods).toHaveLength(2);
    expect(new Set(pods.map((p) => p.spec?.nodeName)).size).toBe(2);
    for (const pod of pods) {
      const ip = pod.status!.podIP!;
      expect(isReady(pod)).toBe(true);
      expect((await fetch(`http://${ip}:8080/readyz`)).status).toBe(200);
    }

    // The mounted ConfigMap follows the object, as a kubelet refreshes a volume.
    await core.patchNamespacedConfigMap(
      { name: `${NAME}-routing`, namespace: NS, body: { data: { 'routing.json': routing(2) } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    for (const pod of pods) {
      await waitFor(
        'routing version 2',
        async () => {
          const res = await fetch(`http://${pod.status!.podIP}:8080/v1/admin/routing`, {
            headers: { authorization: `Bearer ${adminToken}` },
          });
          const body = (await res.json()) as { version?: number };
          return body.version === 2 ? true : undefined;
        },
        15_000,
      );
    }
  });

  it('resumes its watches after an apiserver restart', async () => {
    await kube.stopApiServer();
    await sleep(1000);
    await kube.startApiServer();
    // Scaling up needs the pod watch (bind, run, status); scaling down needs it for the deletion.
    const scale = (replicas: number) =>
      apps.patchNamespacedDeployment(
        { name: `${NAME}-broker`, namespace: NS, body: { spec: { replicas } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    const brokers = async () =>
      (await core.listNamespacedPod({ namespace: NS, labelSelector: 'app.kubernetes.io/component=broker' }))
        .items;
    await scale(3);
    await waitFor(
      'three ready brokers',
      async () => ((await brokers()).filter(isReady).length === 3 ? true : undefined),
      60_000,
    );
    await scale(2);
    await waitFor('two brokers', async () => ((await brokers()).length === 2 ? true : undefined), 60_000);
    for (const node of (await core.listNode()).items) {
      expect(node.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    }
  }, 180_000);

  it('deleting a pod stops its process and removes it; a re-created pod finds the PVC data', async () => {
    const name = `${NAME}-shard-0-0`;
    const ip = kubelet.podIP(NS, name)!;
    const pid = kubelet.containerPid(NS, name, 'mariadb')!;
    await core.deleteNamespacedPod({ name, namespace: NS });
    await gone(name);
    expect(processAlive(pid)).toBe(false);
    expect(await tcpOpen(ip, 3306)).toBe(false);
    expect(kubelet.podIP(NS, name)).toBeUndefined();

    await core.createNamespacedPod({ namespace: NS, body: mariadbPod(0, 0) });
    const pod = await readyPod(name);
    expect(pod.status?.containerStatuses?.[0]?.restartCount).toBe(0);
    expect(await rootQuery(pod.status!.podIP!, 'SELECT v FROM kt.t WHERE id = 1')).toEqual([
      { v: 'before-kill' },
    ]);
  });

  it('removes the PVC data only when the PVC is deleted', async () => {
    const name = `${NAME}-shard-0-1`;
    const dir = join(stateDir, 'pvc', NS, `data-${name}`);
    expect(existsSync(dir)).toBe(true);
    await core.deleteNamespacedPod({ name, namespace: NS });
    await gone(name);
    expect(existsSync(dir)).toBe(true);
    await core.deleteNamespacedPersistentVolumeClaim({ name: `data-${name}`, namespace: NS });
    await waitFor('PVC data removed', async () => (existsSync(dir) ? undefined : true), 30_000);
  });

  it('fails pods with containers it cannot run', async () => {
    await core.createNamespacedPod({
      namespace: NS,
      body: { metadata: { name: 'nginx' }, spec: { containers: [{ name: 'nginx', image: 'nginx' }] } },
    });
    const pod = await waitFor('pod Failed', async () => {
      const p = await core.readNamespacedPod({ name: 'nginx', namespace: NS });
      return p.status?.phase === 'Failed' ? p : undefined;
    });
    expect(pod.status?.reason).toBe('UnsupportedContainer');
    expect(pod.status?.containerStatuses?.[0]?.state?.waiting?.reason).toBe('UnsupportedContainer');
    await core.deleteNamespacedPod({ name: 'nginx', namespace: NS });
    await gone('nginx');

    // A ReplicaSet would replace a Failed pod at once, again and again: its pods stay Pending.
    await apps.createNamespacedDeployment({
      namespace: NS,
      body: {
        metadata: { name: 'web' },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'web' } },
          template: {
            metadata: { labels: { app: 'web' } },
            spec: { containers: [{ name: 'nginx', image: 'nginx' }] },
          },
        },
      },
    });
    const waiting = await waitFor('web pod waiting', async () => {
      const [p] = (await core.listNamespacedPod({ namespace: NS, labelSelector: 'app=web' })).items;
      return p?.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'UnsupportedContainer'
        ? p
        : undefined;
    });
    expect(waiting.status?.phase).toBe('Pending');
    await sleep(2000);
    expect((await core.listNamespacedPod({ namespace: NS, labelSelector: 'app=web' })).items).toHaveLength(1);
    await apps.deleteNamespacedDeployment({ name: 'web', namespace: NS });
  });

  it('never logs a password or token', () => {
    const all = logLines.join('');
    expect(all).toContain('container started');
    for (const secret of [adminPassword, brokerPassword, adminToken]) expect(all).not.toContain(secret);
  });
});
