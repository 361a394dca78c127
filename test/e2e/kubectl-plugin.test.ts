/**
 * The kubectl plugin (issue 11.6) on the embedded control plane: `kubectl mqc` found on PATH as
 * kubectl finds plugins, talking to the API server with the kubeconfig and to the brokers by pod IP.
 */
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Consumer, Producer } from '../../src/client/index.js';
import { clusterManifest } from '../../tools/local/cluster-manifest.js';
import type { MessageQueueCluster } from '../../src/operator/api/types.js';
import {
  type Env,
  type OperatorProcess,
  type PodJson,
  REPO,
  conditionOf,
  startEnv,
  waitFor,
} from '../support/operator.js';

const NS = 'plugin';
const NAME = 'events';

let env: Env;
let operator: OperatorProcess;
let binDir: string;
let cluster: MessageQueueCluster;

const PLAIN_SPEC = `
shards: 2
mysql:
  storage:
    size: 1Gi
  tls:
    enabled: false
brokers:
  replicas: 2
  tls:
    enabled: false
failover:
  probePeriodSeconds: 1
  failureThreshold: 3
`;

beforeAll(async () => {
  env = await startEnv('127.0.87');
  // What `npm i -g mysqlmq` does: the package's bin entry on PATH, executable, named kubectl-mqc.
  binDir = await mkdtemp(join(tmpdir(), 'mq-plugin-bin-'));
  const program = join(REPO, 'dist/cli/kubectl-mqc.js');
  await chmod(program, 0o755);
  await symlink(program, join(binDir, 'kubectl-mqc'));
  operator = env.startOperator();
  await env.kubectl(['create', 'namespace', NS]);
  // A cluster as an operator from before TLS was the default made it (its CRD stored
  // `enabled: false`), so the plugin is also shown on plain brokers (operator.test.ts has TLS).
  await env.apply(clusterManifest(NS, NAME, PLAIN_SPEC));
  const ready = (cr: MessageQueueCluster) =>
    conditionOf(cr, 'Ready')?.status === 'True' && cr.status?.brokersReady === 2;
  const plain = await waitFor(
    'the cluster to be Ready',
    async () => {
      const cr = await env.getCluster(NS, NAME);
      return ready(cr) && cr.status?.tls ? cr : undefined;
    },
    240_000,
    500,
  );
  expect(plain.status?.tls).toEqual({ brokers: false, mysql: false });
  const runningPods = podNames(await env.pods(NS, `mysqlmq.io/cluster=${NAME}`));
  // An object stored before the fields existed says nothing: the running cluster keeps what it runs.
  await env.kubectl([
    'patch',
    'mqc',
    NAME,
    '-n',
    NS,
    '--type=json',
    '-p',
    JSON.stringify([
      { op: 'remove', path: '/spec/brokers/tls/enabled' },
      { op: 'remove', path: '/spec/mysql/tls/enabled' },
    ]),
  ]);
  cluster = await waitFor(
    'the cluster reconciled without the TLS fields',
    async () => {
      const cr = await env.getCluster(NS, NAME);
      return ready(cr) && cr.status?.observedGeneration === cr.metadata.generation ? cr : undefined;
    },
    120_000,
    500,
  );
  expect(cluster.spec?.brokers?.tls?.enabled).toBeUndefined();
  expect(cluster.status?.tls).toEqual({ brokers: false, mysql: false });
  expect(podNames(await env.pods(NS, `mysqlmq.io/cluster=${NAME}`)), 'no Pod rolled').toEqual(runningPods);
}, 600_000);

const podNames = (pods: PodJson[]) => pods.map((p) => p.metadata.name).sort();

afterAll(async () => {
  await env?.stop();
  if (binDir) await rm(binDir, { recursive: true, force: true });
});

/** `kubectl mqc ARGS -n plugin` through kubectl's plugin lookup; stdout is a pipe, as in scripts. */
async function mqc(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return promisify(execFile)('kubectl', ['mqc', ...args, '-n', NS], {
    env: { ...process.env, KUBECONFIG: env.kubeconfig, PATH: `${binDir}:${process.env.PATH}` },
  });
}

async function failure(...args: string[]): Promise<{ code: number; stderr: string }> {
  return mqc(...args).then(
    (out) => {
      throw new Error(`kubectl mqc ${args.join(' ')} succeeded: ${out.stdout}`);
    },
    (err: { code: number; stderr: string }) => err,
  );
}

const rowsOf = (table: string) =>
  table
    .trimEnd()
    .split('\n')
    .map((line) => line.split(/\s{2,}/));

const brokerClient = () => env.brokerClient(NS, NAME);

describe('kubectl mqc', () => {
  it('status shows each shard with its primary and standby pod, node, writable and readable, and the brokers', async () => {
    const { stdout } = await mqc('status', NAME);
    expect(stdout.split('\n')[0]).toBe(`Cluster ${NS}/${NAME}: Ready`);
    expect(stdout.split('\n')[1]).toMatch(
      /^Shards ready 2\/2, writable 2; brokers ready 2\/2; routing v\d+$/,
    );
    const [shardTable, brokerTable] = stdout.split('\n\n').slice(1);
    const shards = rowsOf(shardTable);
    expect(shards[0]).toEqual([
      'SHARD',
      'PHASE',
      'PRIMARY',
      'STANDBY',
      'WRITABLE',
      'READABLE',
      'LAG',
      'SEMI-SYNC',
    ]);
    expect(shards.slice(1).map((r) => r[0])).toEqual(['shard-0', 'shard-1']);
    for (const row of shards.slice(1)) {
      const s = cluster.status!.shards!.find((x) => x.name === row[0])!;
      expect(row[1]).toBe('Healthy');
      expect(row[2]).toMatch(new RegExp(`^${s.primaryPod} \\(node-[ab]\\)$`));
      expect(row[3]).toMatch(new RegExp(`^${s.standbyPod} \\(node-[ab]\\)$`));
      expect(row.slice(4, 6)).toEqual(['yes', 'yes (primary)']);
    }
    const brokers = rowsOf(brokerTable);
    expect(brokers[0]).toEqual(['BROKER', 'NODE', 'IP', 'READY']);
    expect(brokers.slice(1).map((r) => r[3])).toEqual(['yes', 'yes']);
    // A pipe gets no progress or colour codes.
    expect(stdout).not.toContain('\x1b[');
  });

  it('topics lists the topics the brokers know, and the MessageQueueTopic resources when the CRD exists', async () => {
    await new Producer(await brokerClient()).createTopic('clicks');
    const { stdout } = await mqc('topics', NAME);
    const rows = rowsOf(stdout.split('\n(')[0]);
    expect(rows[0]).toEqual(['TOPIC', 'RESOURCE', 'READY', 'ON SHARDS', 'RETENTION', 'MAX DELIVERIES']);
    const clicks = rows.find((r) => r[0] === 'clicks');
    expect(clicks?.slice(3)).toEqual(['yes', '-', '-']);
    // The operator may already have listed it as a discovered MessageQueueTopic (named after it).
    expect(['-', 'clicks']).toContain(clicks?.[1]);
    const crdInstalled = await env
      .kubectl(['get', 'crd', 'messagequeuetopics.mysqlmq.io'])
      .then(() => true)
      .catch(() => false);
    if (!crdInstalled) {
      expect(stdout).toContain('MessageQueueTopic CRD is not installed');
      return;
    }
    await env.apply(
      [
        'apiVersion: mysqlmq.io/v1alpha1',
        'kind: MessageQueueTopic',
        `metadata: {name: audit-log, namespace: ${NS}}`,
        `spec: {cluster: ${NAME}, topicName: audit, maxDeliveries: 5}`,
      ].join('\n'),
    );
    const again = rowsOf((await mqc('topics', NAME)).stdout.split('\n(')[0]);
    expect(again.find((r) => r[0] === 'audit')?.slice(0, 2)).toEqual(['audit', 'audit-log']);
  });

  it('groups and reset work through the broker pods', async () => {
    const client = await brokerClient();
    const producer = new Producer(client);
    await producer.createTopic('payments');
    for (let i = 0; i < 6; i++) await producer.send('payments', `p${i}`);
    const consumer = new Consumer({ ...client, topic: 'payments', group: 'ledger', waitMs: 200 });
    let read = 0;
    for (let batch = await consumer.poll(); batch.length > 0; batch = await consumer.poll()) {
      read += batch.length;
      await consumer.commit();
    }
    expect(read).toBe(6);
    await consumer.close();

    const groups = rowsOf((await mqc('groups', NAME, 'payments')).stdout);
    expect(groups[0]).toEqual(['GROUP', 'SHARD', 'COMMITTED', 'NEWEST', 'LAG', 'OWNER']);
    expect(groups.slice(1).map((r) => [r[0], r[1], r[4], r[5]])).toEqual([
      ['ledger', 'shard-0', '0', '-'],
      ['ledger', 'shard-1', '0', '-'],
    ]);

    const reset = rowsOf((await mqc('reset', NAME, 'payments', 'ledger', '--to-earliest')).stdout);
    expect(reset).toEqual([
      ['SHARD', 'COMMITTED'],
      ['shard-0', '0'],
      ['shard-1', '0'],
    ]);
    const lag = rowsOf((await mqc('groups', NAME, 'payments')).stdout)
      .slice(1)
      .map((r) => Number(r[4]));
    expect(lag.reduce((a, b) => a + b, 0)).toBe(6);
  });

  it('switchover swaps the primary and standby of a shard and waits for the operator to say so', async () => {
    const before = (await env.getCluster(NS, NAME)).status!.shards!.find((s) => s.name === 'shard-0')!;
    const { stdout } = await mqc('switchover', NAME, 'shard-0', '--timeout', '180');
    expect(stdout).toContain(
      `switchover of shard-0 requested (primary ${before.primaryPod}, standby ${before.standbyPod})`,
    );
    expect(stdout).toMatch(/^Switchover: /m);
    const after = await env.getCluster(NS, NAME);
    expect(after.metadata.annotations?.['mysqlmq.io/switchover']).toBeUndefined();
    expect(after.status!.lastSwitchover).toMatchObject({ shard: 'shard-0', result: 'Succeeded' });
    const status = (await mqc('status', NAME)).stdout;
    expect(status).toContain(
      `Last switchover: shard-0 ${before.primaryPod} -> ${before.standbyPod} Succeeded`,
    );
    const row = rowsOf(status.split('\n\n')[1]).find((r) => r[0] === 'shard-0')!;
    expect(row[2]).toMatch(new RegExp(`^${before.standbyPod} \\(node-[ab]\\)`));
  }, 240_000);

  it('switchover sets the annotation the operator acts on, and refuses an unknown shard or a second request', async () => {
    // Stopped, so the request stays on the object for the test to see whatever the operator does with it.
    await operator.stop();
    const unknown = await failure('switchover', NAME, 'shard-7');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('has no shard "shard-7" (shards: shard-0, shard-1)');

    const { stdout } = await mqc('switchover', NAME, 'shard-1', '--no-wait');
    expect(stdout).toContain('switchover of shard-1 requested');
    const annotations = (await env.getCluster(NS, NAME)).metadata.annotations ?? {};
    expect(annotations['mysqlmq.io/switchover']).toBe('shard-1');

    const again = await failure('switchover', NAME, 'shard-0', '--no-wait');
    expect(again.stderr).toContain('a switchover of shard-1 is already pending');

    // Waiting: with no operator to act, it gives up after --timeout and says the request stays.
    await env.kubectl(['annotate', 'mqc', NAME, '-n', NS, 'mysqlmq.io/switchover-']);
    const waited = await failure('switchover', NAME, 'shard-0', '--timeout', '2');
    expect(waited.stderr).toContain('no Switchover event after 2s; the request stays on the cluster');
    const after = (await env.getCluster(NS, NAME)).metadata.annotations ?? {};
    expect(after['mysqlmq.io/switchover']).toBe('shard-0');
  });
});
