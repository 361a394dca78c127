/**
 * Hardened MariaDB pods on the embedded control plane with its two nodes (node-a, node-b; the
 * test kubelet applies required pod anti-affinity as kube-scheduler does). Placement: by default
 * the two instances of a shard never share a node, and a cluster that leaves them only one node
 * says so in its status; `spec.placement.instanceAntiAffinity: preferred` lets them share it, with
 * a warning. NetworkPolicy: the operator (given its pod labels, as the chart does) writes one per
 * cluster, which the apiserver stores as built and whose selectors pick the cluster's pods.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Consumer, Producer } from '../../src/client/index.js';
import { defaultCluster } from '../../src/operator/api/defaults.js';
import type { MessageQueueCluster } from '../../src/operator/api/types.js';
import { mysqlNetworkPolicy } from '../../src/operator/desired/network-policy.js';
import { clusterManifest } from '../../tools/local/cluster-manifest.js';
import {
  type Env,
  type OperatorProcess,
  type PodJson,
  conditionOf,
  startEnv,
  waitFor,
} from '../support/operator.js';

const NS = 'placement';
const NAME = 'pinned';
/** What the chart tells the operator about its own pods (NETWORK_POLICY_OPERATOR_LABELS). */
const OPERATOR_PEER = {
  namespace: 'mysqlmq-system',
  podLabels: { 'app.kubernetes.io/name': 'mysqlmq-operator' },
};

let env: Env;
let operator: OperatorProcess;

/** One shard whose every pod must run on node-a. */
const pinnedSpec = (antiAffinity?: string) => `
shards: 1
mysql:
  storage:
    size: 1Gi
brokers:
  replicas: 1
failover:
  probePeriodSeconds: 1
podTemplate:
  nodeSelector:
    kubernetes.io/hostname: node-a
${antiAffinity ? `placement:\n  instanceAntiAffinity: ${antiAffinity}\n` : ''}`;

async function pods(component: string): Promise<PodJson[]> {
  return (await env.pods(NS, `mysqlmq.io/cluster=${NAME},app.kubernetes.io/component=${component}`)).filter(
    (p) => !p.metadata.deletionTimestamp,
  );
}

async function separation(): Promise<ReturnType<typeof conditionOf>> {
  const cr: MessageQueueCluster = await env.getCluster(NS, NAME);
  return conditionOf(cr, 'InstancesSeparated');
}

/** The messages of the Warning Events with `reason` about the cluster. */
async function warnings(reason: string): Promise<string[]> {
  const out = await env.kubectl([
    'get',
    'events',
    '-n',
    NS,
    '--field-selector',
    `involvedObject.name=${NAME},reason=${reason},type=Warning`,
    '-o',
    'jsonpath={range .items[*]}{.message}{"\\n"}{end}',
  ]);
  return out.split('\n').filter(Boolean);
}

beforeAll(async () => {
  env = await startEnv('127.0.67');
  await env.kubectl(['create', 'namespace', NS]);
  operator = env.startOperator({
    env: {
      NETWORK_POLICY_OPERATOR_LABELS: 'app.kubernetes.io/name=mysqlmq-operator',
      POD_NAMESPACE: OPERATOR_PEER.namespace,
    },
  });
}, 600_000);

afterAll(async () => {
  if (operator && process.env.MQ_E2E_OPERATOR_LOG) process.stderr.write(operator.logs());
  await env?.stop();
});

describe('instance placement', () => {
  it('never schedules both instances of a shard onto one node: with one node allowed, the status says why', async () => {
    await env.apply(clusterManifest(NS, NAME, pinnedSpec()));
    const condition = await waitFor(
      'InstancesSeparated False with reason Unschedulable',
      async () => {
        const c = await separation();
        return c?.status === 'False' && c.reason === 'Unschedulable' ? c : undefined;
      },
      120_000,
      500,
    );
    const mysqlPods = await pods('mysql');
    expect(mysqlPods).toHaveLength(2);
    const placed = mysqlPods.filter((p) => p.spec.nodeName);
    const waiting = mysqlPods.filter((p) => !p.spec.nodeName);
    expect(placed.map((p) => p.spec.nodeName)).toEqual(['node-a']);
    expect(waiting).toHaveLength(1);
    const scheduled = waiting[0]!.status?.conditions?.find((c) => c.type === 'PodScheduled');
    expect(scheduled).toMatchObject({ status: 'False', reason: 'Unschedulable' });
    expect(scheduled?.message).toContain('anti-affinity');
    expect(condition!.message).toContain(`Pod ${waiting[0]!.metadata.name} cannot be scheduled`);
    expect(condition!.message).toContain('instanceAntiAffinity: required');
    expect(await warnings('InstanceUnschedulable')).not.toEqual([]);
    // The cluster is not Ready: the shard has no standby to protect its writes.
    expect(conditionOf(await env.getCluster(NS, NAME), 'Ready')?.status).toBe('False');
  }, 300_000);

  it('with instanceAntiAffinity preferred, both instances share the node, work, and status warns', async () => {
    await env.apply(clusterManifest(NS, NAME, pinnedSpec('preferred')));
    // The Pending Pod is recreated with the relaxed rule at once; the running one is rolled later.
    const condition = await waitFor(
      'InstancesSeparated False with reason SameNode',
      async () => {
        const c = await separation();
        return c?.status === 'False' && c.reason === 'SameNode' ? c : undefined;
      },
      180_000,
      500,
    );
    expect(condition!.message).toContain(`${NAME}-shard-0-0 and ${NAME}-shard-0-1 both run on node-a`);
    expect(await warnings('InstancesOnSameNode')).not.toEqual([]);
    await waitFor(
      'the cluster Ready with both instance Pods on the relaxed spec',
      async () => {
        const cr = await env.getCluster(NS, NAME);
        const mysqlPods = await pods('mysql');
        return (
          cr.status?.observedGeneration === cr.metadata.generation &&
          conditionOf(cr, 'Ready')?.status === 'True' &&
          mysqlPods.length === 2 &&
          mysqlPods.every(
            (p) =>
              p.spec.nodeName === 'node-a' &&
              !p.spec.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution,
          )
        );
      },
      300_000,
      1000,
    );
    expect((await separation())?.reason).toBe('SameNode');

    // The shard replicates and serves: a message published is consumed.
    const client = await env.brokerClient(NS, NAME, { ready: true });
    const producer = new Producer(client);
    await producer.createTopic('t');
    await producer.send('t', 'on one node');
    await producer.close();
    const consumer = new Consumer({ ...client, topic: 't', group: 'g' });
    const got = await waitFor('the message consumed', async () => {
      const batch = await consumer.poll();
      return batch.length ? batch : undefined;
    });
    expect(got.map((m) => String(m.value))).toEqual(['on one node']);
    await consumer.close();
  }, 600_000);

  it('protects MariaDB with a NetworkPolicy the apiserver stores as built, selecting the cluster pods', async () => {
    type Selector = { matchLabels: Record<string, string> };
    const policy = JSON.parse(
      await env.kubectl(['get', 'networkpolicy', `${NAME}-mysql`, '-n', NS, '-o', 'json']),
    ) as {
      metadata: { ownerReferences?: { kind: string; name: string }[] };
      spec: { podSelector: Selector; ingress: { from?: { podSelector?: Selector }[] }[] };
    };
    const cr = defaultCluster(await env.getCluster(NS, NAME));
    expect(policy.spec).toEqual(mysqlNetworkPolicy(cr, OPERATOR_PEER).spec);
    expect(policy.metadata.ownerReferences).toEqual([
      expect.objectContaining({ kind: 'MessageQueueCluster', name: NAME }),
    ]);
    const selected = async (selector: Selector) =>
      (
        await env.kubectl([
          'get',
          'pods',
          '-n',
          NS,
          '-l',
          Object.entries(selector.matchLabels)
            .map(([k, v]) => `${k}=${v}`)
            .join(','),
          '-o',
          'name',
        ])
      )
        .split('\n')
        .filter(Boolean)
        .sort();
    const name = (p: PodJson) => `pod/${p.metadata.name}`;
    expect(await selected(policy.spec.podSelector)).toEqual((await pods('mysql')).map(name).sort());
    const [brokers, instances] = policy.spec.ingress[0]!.from!;
    expect(await selected(brokers!.podSelector!)).toEqual((await pods('broker')).map(name).sort());
    expect(await selected(instances!.podSelector!)).toEqual((await pods('mysql')).map(name).sort());
  }, 60_000);

  it('reads its credentials Secret by name: one deleted by hand is written again with the passwords in use', async () => {
    const secret = async () =>
      (
        await env.kubectl([
          'get',
          'secret',
          `${NAME}-credentials`,
          '-n',
          NS,
          '--ignore-not-found',
          '-o',
          'jsonpath={.data}',
        ])
      ).trim();
    const before = await secret();
    expect(before).toContain('admin-password');
    await env.kubectl(['delete', 'secret', `${NAME}-credentials`, '-n', NS]);
    // No watch on Secrets: the next resync (30 s when settled) notices it.
    const after = await waitFor(
      'the credentials Secret back',
      async () => (await secret()) || undefined,
      90_000,
      1000,
    );
    expect(JSON.parse(after)).toEqual(JSON.parse(before));
    expect(await warnings('CredentialsRestored')).not.toEqual([]);
  }, 120_000);
});
