/**
 * The operator as a platform engineer installs it: `helm install` of helm/mysqlmq-operator on the
 * embedded control plane, where the test kubelet runs each operator pod as `node
 * dist/operator/main.js` with a kubeconfig made from the pod's ServiceAccount token, so the
 * operator has exactly the RBAC the chart grants and nothing more.
 *
 * Two replicas with leader election: both Ready, one holds the Lease; a MessageQueueCluster
 * becomes Ready and moves messages; the leader hangs and is killed, the other replica takes the
 * Lease and goes on reconciling; deleting the cluster removes it (the operator drops its
 * finalizer). Every API request the operators made is recorded (MQ_K8S_AUDIT_LOG) and checked
 * against the chart's rules: nothing the code used may be missing, and every rule the code did not
 * use here must be one the code needs on a path this test does not take (UNEXERCISED below).
 * Then the same with `watchNamespaces`: Roles only, nothing cluster-wide.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Consumer, Producer } from '../../src/client/index.js';
import type { RbacUse } from '../../src/k8s/rbac.js';
import { readRequestAudit } from '../support/rbac.js';
import type { MessageQueueCluster } from '../../src/operator/api/types.js';
import { CHART_DIR, type HelmValues, helm } from '../support/helm.js';
import { clusterManifest } from '../../tools/local/cluster-manifest.js';
import { type Env, conditionOf, startEnv, waitFor } from '../support/operator.js';
import {
  type NamespacedPermission,
  type OperatorRbac,
  checkOperatorRbac,
  formatNamespacedPermissions,
  renderOperatorRbac,
} from '../support/operator-rbac.js';

const ADDRESS_PREFIX = '127.0.62';
const RELEASE = 'mysqlmq-operator';
const SYSTEM_NS = 'mysqlmq-system';
const NS = 'helm-apps';
const NAME = 'events';
const LEASE = 'mysqlmq-operator-leader';
/** Where the operators' audit logs go. Not under /tmp: the chart mounts an emptyDir there, which the
 *  test kubelet maps into the pod directory and deletes with the pod. */
const AUDIT_BASE = '/var/tmp/mq-helm-e2e-';

/**
 * Rules the chart keeps although this test never makes the request, and the code path needing each.
 * Anything else the chart grants and the operators did not use fails the test: remove it from
 * helm/mysqlmq-operator/templates/_helpers.tpl, or exercise it, or list it here with its reason.
 */
const UNEXERCISED: Record<string, string> = {
  // metadata.ownerReferences[].blockOwnerDeletion=true (desired/meta.ts): with the
  // OwnerReferencesPermissionEnforcement admission plugin (OpenShift, hardened clusters) setting it
  // needs update on the owner's finalizers subresource. The embedded apiserver runs without it.
  'mysqlmq.io/messagequeueclusters/finalizers update': 'ownerReferences with blockOwnerDeletion',
  // reconciler.ts reconcilePods: a Pod whose role label differs from the shard loop's view (after a
  // failover, or edited by hand) is relabelled with a merge patch.
  'core/pods patch': 'relabelling an instance Pod',
  // reconciler.ts reconcilePods: a Failed Pod is replaced, a changed spec is rolled one Pod at a
  // time. The watchNamespaces install below rolls a my.cnf change and must use it.
  'core/pods delete': 'replacing a Failed Pod, rolling a spec change',
  // reconciler.ts addMissingCredentials: a credentials Secret written by an older operator gets the
  // keys added since (monitor-password); test/e2e/monitoring.test.ts takes that path. Also
  // broker-certificates.ts: a renewed serving certificate replaces the old one in its Secret.
  'core/secrets patch':
    "adding a new key to an older credentials Secret; renewing the brokers' TLS certificate (spec.brokers.tls)",
};

let env: Env;
let auditDir: string;

interface PodJson {
  metadata: {
    name: string;
    deletionTimestamp?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec?: { containers: { name: string; env?: { name: string; value?: string }[] }[] };
  status?: {
    phase?: string;
    podIP?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: { name: string; ready: boolean; restartCount: number }[];
  };
}

async function podsIn(namespace: string, selector: string): Promise<PodJson[]> {
  const out = await env.kubectl(['get', 'pods', '-n', namespace, '-l', selector, '-o', 'json']);
  return (JSON.parse(out) as { items: PodJson[] }).items.filter((p) => !p.metadata.deletionTimestamp);
}

const isReady = (p: PodJson) =>
  p.status?.phase === 'Running' &&
  p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;

function operatorPods(namespace = SYSTEM_NS, release = RELEASE): Promise<PodJson[]> {
  return podsIn(namespace, `app.kubernetes.io/name=mysqlmq-operator,app.kubernetes.io/instance=${release}`);
}

async function waitOperatorsReady(
  count: number,
  namespace = SYSTEM_NS,
  release = RELEASE,
): Promise<string[]> {
  const ready = await waitFor(
    `${count} operator pods Running and Ready`,
    async () => {
      const pods = await operatorPods(namespace, release);
      return pods.length === count && pods.every(isReady) ? pods : undefined;
    },
    90_000,
    500,
  );
  return ready.map((p) => p.metadata.name).sort();
}

/** The pod whose operator holds the Lease (identity `POD_NAME_random`), or undefined. */
async function leaseHolderPod(namespace = SYSTEM_NS): Promise<string | undefined> {
  const holder = (
    await env.kubectl(['get', 'lease', LEASE, '-n', namespace, '-o', 'jsonpath={.spec.holderIdentity}'])
  ).trim();
  const cut = holder.lastIndexOf('_');
  return cut > 0 ? holder.slice(0, cut) : undefined;
}

/** The log of a pod's operator container, as the test kubelet writes it. */
function operatorLog(pod: string, namespace = SYSTEM_NS): string {
  try {
    return readFileSync(join(env.stateDir, 'pods', namespace, pod, 'logs', 'operator.log'), 'utf8');
  } catch {
    return '';
  }
}

// One shard and small volumes: the point here is the operator's packaging, not the data plane.
// pvcDeletionPolicy Delete, so deleting the cluster also exercises (and checks the RBAC of) PVC deletion.
const SPEC = `
shards: 1
mysql:
  storage:
    size: 1Gi
brokers:
  replicas: 1
failover:
  probePeriodSeconds: 1
pvcDeletionPolicy: Delete
`;

async function waitClusterReady(namespace: string, name: string, timeoutMs = 180_000) {
  let refused: string | undefined;
  const cr = await waitFor(
    `cluster ${namespace}/${name} to be Ready`,
    async () => {
      const cr = await env.getCluster(namespace, name);
      const ready = conditionOf(cr, 'Ready');
      if (ready?.reason === 'InvalidSpec') refused = ready.message;
      return refused !== undefined ||
        (cr.status?.observedGeneration === cr.metadata.generation && ready?.status === 'True')
        ? cr
        : undefined;
    },
    timeoutMs,
    500,
  );
  if (refused !== undefined) throw new Error(`the operator refused ${namespace}/${name}: ${refused}`);
  return cr;
}

/** Publishes `count` messages tagged `tag` through the cluster's brokers, then reads them back. */
async function roundTrip(namespace: string, name: string, tag: string, count = 20): Promise<void> {
  const client = await env.brokerClient(namespace, name, { ready: true });
  expect(client.brokers.length).toBeGreaterThan(0);
  const producer = new Producer(client);
  await producer.createTopic('orders');
  await producer.sendBatch(
    'orders',
    Array.from({ length: count }, (_, i) => `${tag}-${i}`),
  );
  await producer.close();
  await consume(namespace, name, tag, `g-${tag}`, count);
}

/**
 * Topics as resources under the chart's RBAC: a declared MessageQueueTopic gets its finalizer and
 * becomes Ready (patch, status patch); the topic roundTrip made through the broker is listed as a
 * discovered resource (create).
 */
async function exerciseTopics(namespace: string, name: string): Promise<void> {
  await env.apply(`apiVersion: mysqlmq.io/v1alpha1
kind: MessageQueueTopic
metadata:
  name: declared
  namespace: ${namespace}
spec:
  cluster: ${name}
  maxDeliveries: 3
`);
  type Topic = {
    metadata: { name: string; finalizers?: string[]; labels?: Record<string, string> };
    spec: { topicName?: string };
    status?: { conditions?: { type: string; status: string }[] };
  };
  const list = async () =>
    (JSON.parse(await env.kubectl(['get', 'mqt', '-n', namespace, '-o', 'json'])) as { items: Topic[] })
      .items;
  await waitFor('the declared topic Ready, with its finalizer', async () => {
    const t = (await list()).find((x) => x.metadata.name === 'declared');
    return (
      t?.metadata.finalizers?.includes('mysqlmq.io/topic-cleanup') &&
      t.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')
    );
  });
  await waitFor('orders listed as a discovered topic', async () =>
    (await list()).some(
      (t) => t.spec.topicName === 'orders' && t.metadata.labels?.['mysqlmq.io/discovered'] === 'true',
    ),
  );
}

/** Reads the `count` messages tagged `tag` with a consumer group of its own. */
async function consume(
  namespace: string,
  name: string,
  tag: string,
  group: string,
  count = 20,
): Promise<void> {
  const consumer = new Consumer({
    ...(await env.brokerClient(namespace, name, { ready: true })),
    topic: 'orders',
    group,
  });
  const seen = new Set<string>();
  await waitFor(`${count} messages of ${tag} consumed by ${group}`, async () => {
    for (const m of await consumer.poll())
      if (String(m.value).startsWith(`${tag}-`)) seen.add(String(m.value));
    await consumer.commit();
    return seen.size === count;
  });
  await consumer.close();
}

/** Deletes a cluster and waits until it, its pods and (pvcDeletionPolicy Delete) its PVCs are gone. */
async function deleteCluster(namespace: string, name: string): Promise<void> {
  await env.kubectl(['delete', 'mqc', name, '-n', namespace, '--wait=true', '--timeout=120s']);
  expect(
    (await env.kubectl(['get', 'mqc', '-n', namespace, '--ignore-not-found', '-o', 'name'])).trim(),
  ).toBe('');
  await waitFor(
    `the pods and PVCs of ${namespace}/${name} to be gone`,
    async () =>
      (
        await env.kubectl([
          'get',
          'pods,pvc',
          '-n',
          namespace,
          '-l',
          `mysqlmq.io/cluster=${name}`,
          '-o',
          'name',
        ])
      ).trim() === '',
    120_000,
    500,
  );
}

async function helmInstall(release: string, namespace: string, values: HelmValues): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'mq-helm-install-'));
  const file = join(dir, 'values.yaml');
  writeFileSync(file, yaml.dump(values));
  try {
    const { stdout } = await helm(
      ['install', release, CHART_DIR, '--namespace', namespace, '--create-namespace', '--values', file],
      { kubeconfig: env.kubeconfig },
    );
    return stdout;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The requests one pod's operator(s) made so far. */
function podUses(pod: string, dir = auditDir): RbacUse[] {
  try {
    return readRequestAudit(join(dir, `${pod}.jsonl`));
  } catch {
    return [];
  }
}

/** True once the pod's operator watches MessageQueueClusters: it leads, and its caches are listed. */
const watchesClusters = (pod: string) =>
  podUses(pod).some((u) => u.resource === 'messagequeueclusters' && u.verb === 'watch');

/** Every request recorded in the audit logs `<dir>/<pod>.jsonl` (all processes of all pods). */
function auditedUses(dir: string): RbacUse[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.jsonl'))
    .flatMap((f) => readRequestAudit(join(dir, f)));
}

const withoutNamespace = (perms: NamespacedPermission[]) =>
  formatNamespacedPermissions(perms.map((p) => ({ ...p, namespace: undefined })));

/**
 * Prints what the operators used and what the chart grants that they did not, and asserts that
 * nothing used is missing and that nothing unused lacks a reason in UNEXERCISED.
 */
function checkAgainstChart(rbac: OperatorRbac, uses: RbacUse[], label: string): { unused: string[] } {
  const result = checkOperatorRbac(rbac, uses);
  const used = [
    ...new Set(
      uses.map(
        (u) => `${u.apiGroup || 'core'}/${u.resource}${u.subresource ? `/${u.subresource}` : ''} ${u.verb}`,
      ),
    ),
  ].sort();
  const unused = [...new Set(withoutNamespace(result.unused))];
  process.stdout.write(
    `${label}: RBAC the operators used:\n  ${used.join('\n  ')}\n` +
      `${label}: RBAC the chart grants that they did not use:\n  ${unused.join('\n  ') || '(none)'}\n`,
  );
  expect(formatNamespacedPermissions(result.missing)).toEqual([]);
  expect(unused.filter((p) => !(p in UNEXERCISED))).toEqual([]);
  return { unused };
}

const auditEnv = (dir: string) => [
  // $(POD_NAME) is expanded by the kubelet: one file per pod; a restarted process appends to it.
  { name: 'MQ_K8S_AUDIT_LOG', value: `${dir}/$(POD_NAME).jsonl` },
  // The topic made by roundTrip is discovered within seconds rather than the default 30 s.
  { name: 'TOPIC_DISCOVERY_PERIOD', value: '1s' },
];

beforeAll(async () => {
  env = await startEnv(ADDRESS_PREFIX);
  auditDir = mkdtempSync(AUDIT_BASE);
}, 600_000);

afterAll(async () => {
  // MQ_E2E_OPERATOR_LOG=1: the logs of the operator pods still running (the kubelet removes a
  // deleted pod's directory); MQ_KEEP_KUBE=1 keeps the audit logs too.
  if (process.env.MQ_E2E_OPERATOR_LOG && env) {
    for (const ns of [SYSTEM_NS, 'mq-scoped-system']) {
      let pods: string[] = [];
      try {
        pods = readdirSync(join(env.stateDir, 'pods', ns));
      } catch {
        // no pod ran there
      }
      for (const pod of pods) process.stderr.write(`--- ${ns}/${pod}\n${operatorLog(pod, ns)}`);
    }
  }
  await env?.stop();
  if (auditDir && !process.env.MQ_KEEP_KUBE) rmSync(auditDir, { recursive: true, force: true });
});

describe('helm install of the operator (cluster-wide, 2 replicas, leader election)', () => {
  const values: HelmValues = { replicaCount: 2, extraEnv: [] };
  let pods: string[] = [];

  it('installs; both replicas become Running and Ready; exactly one holds the Lease', async () => {
    values.extraEnv = auditEnv(auditDir);
    const out = await helmInstall(RELEASE, SYSTEM_NS, values);
    expect(out).toMatch(/STATUS: deployed/);

    // POD_IP comes from the kubelet (the operator binds its probes there): the chart never sets it.
    const deployment = JSON.parse(
      await env.kubectl(['get', 'deployment', RELEASE, '-n', SYSTEM_NS, '-o', 'json']),
    ) as { spec: { template: PodJson } };
    const container = deployment.spec.template.spec!.containers.find((c) => c.name === 'operator')!;
    expect((container.env ?? []).map((e) => e.name)).not.toContain('POD_IP');

    pods = await waitOperatorsReady(2);
    const leader = await waitFor('a Lease holder', () => leaseHolderPod(), 60_000);
    expect(pods).toContain(leader);
    const standby = pods.find((p) => p !== leader)!;
    await waitFor('the leader to watch MessageQueueClusters', () => watchesClusters(leader), 60_000);
    // The standby waits: it made no request but on its Lease (a get every retry period; a create
    // that lost the race when both started at once).
    const standbyUses = podUses(standby);
    expect(standbyUses.length).toBeGreaterThan(0);
    for (const u of standbyUses) {
      expect(u).toMatchObject({ apiGroup: 'coordination.k8s.io', resource: 'leases', namespace: SYSTEM_NS });
      if (u.verb !== 'create') expect(u.name).toBe(LEASE);
    }
  }, 240_000);

  it('the leader, with only the chart RBAC, makes a MessageQueueCluster Ready; messages flow', async () => {
    await env.kubectl(['create', 'namespace', NS]);
    await env.apply(clusterManifest(NS, NAME, SPEC));
    const cr = await waitClusterReady(NS, NAME);
    expect(cr.metadata.finalizers).toContain('mysqlmq.io/finalizer');
    expect(cr.status?.phase).toBe('Ready');
    expect(cr.status?.writableShards).toBe(1);
    await roundTrip(NS, NAME, 'first');
    await exerciseTopics(NS, NAME);
  }, 240_000);

  it('when the leader hangs and is killed, the other replica takes the Lease and keeps reconciling', async () => {
    const leader = (await leaseHolderPod())!;
    const standby = pods.find((p) => p !== leader)!;
    // Frozen first (a hung leader: no renewals, no restart), so the standby is the only candidate
    // and takes over once the Lease expires (15 s); then killed, as the liveness probe would.
    await env.kubelet.killContainer(SYSTEM_NS, leader, 'operator', 'SIGSTOP');
    const frozenAt = Date.now();
    await waitFor(
      'the standby to take the Lease',
      async () => (await leaseHolderPod()) === standby,
      45_000,
      500,
    );
    const takeoverMs = Date.now() - frozenAt;
    expect(takeoverMs).toBeGreaterThan(5_000); // not before the Lease could expire
    process.stdout.write(`the standby took the Lease ${takeoverMs} ms after the leader froze\n`);
    await env.kubelet.killContainer(SYSTEM_NS, leader, 'operator', 'SIGKILL');
    await waitFor('the new leader to watch MessageQueueClusters', () => watchesClusters(standby), 60_000);

    // The killed replica is restarted in its pod and waits as the standby now.
    const after = await waitOperatorsReady(2);
    expect(after).toEqual(pods);
    const restarted = (await operatorPods()).find((p) => p.metadata.name === leader)!;
    expect(restarted.status!.containerStatuses![0]!.restartCount).toBeGreaterThanOrEqual(1);
    expect(await leaseHolderPod()).toBe(standby);

    // The cluster is still Ready, and the new leader acts on a change: a second broker.
    await waitClusterReady(NS, NAME, 60_000);
    await env.kubectl(['scale', 'mqc', NAME, '-n', NS, '--replicas=2']);
    await waitFor(
      '2 brokers ready under the new leader',
      async () => {
        const cr: MessageQueueCluster = await env.getCluster(NS, NAME);
        return cr.status?.brokersReady === 2 && conditionOf(cr, 'Ready')?.status === 'True';
      },
      120_000,
      500,
    );
    await waitClusterReady(NS, NAME, 60_000);
    await roundTrip(NS, NAME, 'second');
    expect(await leaseHolderPod()).toBe(standby);
  }, 300_000);

  it('deleting the cluster removes it: the operator drops its finalizer and deletes the PVCs', async () => {
    await deleteCluster(NS, NAME);
  }, 180_000);

  it('the operators used nothing the chart does not grant, and the chart grants nothing unused', async () => {
    const uses = auditedUses(auditDir);
    expect(uses.length).toBeGreaterThan(50);
    const rbac = await renderOperatorRbac({ values });
    expect(rbac.clusterWide).toBe(true);
    const { unused } = checkAgainstChart(rbac, uses, 'cluster-wide install');
    // Cluster deletion under pvcDeletionPolicy Delete went through the chart's rules too.
    expect(unused).not.toContain('core/persistentvolumeclaims delete');
  }, 60_000);

  it('helm uninstall stops the operators and removes their RBAC; the CRD stays', async () => {
    await helm(['uninstall', RELEASE, '--namespace', SYSTEM_NS, '--wait'], { kubeconfig: env.kubeconfig });
    await waitFor(
      'the operator pods to be gone',
      async () => (await operatorPods()).length === 0,
      60_000,
      500,
    );
    expect(
      (await env.kubectl(['get', 'clusterrole,clusterrolebinding', '-o', 'name'])).split('\n'),
    ).not.toContain(`clusterrole.rbac.authorization.k8s.io/${RELEASE}`);
    await env.kubectl(['get', 'crd', 'messagequeueclusters.mysqlmq.io']);
  }, 120_000);
});

describe('helm install watching one namespace (watchNamespaces)', () => {
  const release = 'mq-scoped';
  const systemNs = 'mq-scoped-system';
  const watched = 'team-a';
  let scopedAudit: string;
  const values: HelmValues = { replicaCount: 1, watchNamespaces: [watched], extraEnv: [] };

  it('manages clusters in its namespace with Roles only, and leaves other namespaces alone', async () => {
    scopedAudit = join(auditDir, 'scoped');
    values.extraEnv = auditEnv(scopedAudit);
    await env.kubectl(['create', 'namespace', watched]);
    expect(await helmInstall(release, systemNs, values)).toMatch(/STATUS: deployed/);
    const [pod] = await waitOperatorsReady(1, systemNs, release);
    await waitFor('the operator to lead', async () => (await leaseHolderPod(systemNs)) === pod, 60_000);

    // A cluster outside the watched namespace is not the operator's: no finalizer, no status.
    await env.apply(clusterManifest(NS, 'ignored', SPEC));
    await env.apply(clusterManifest(watched, NAME, SPEC));
    const cr = await waitClusterReady(watched, NAME);
    expect(cr.status?.writableShards).toBe(1);
    await roundTrip(watched, NAME, 'scoped');
    await exerciseTopics(watched, NAME);
    const ignored = await env.getCluster(NS, 'ignored');
    expect(ignored.metadata.finalizers ?? []).toEqual([]);
    expect(ignored.status).toBeUndefined();
    await env.kubectl(['delete', 'mqc', 'ignored', '-n', NS, '--wait=true', '--timeout=30s']);

    // A my.cnf change rolls the MariaDB pods one at a time (the operator deletes each; its Role
    // must allow that), and the messages published before are all still there.
    const mysqlPods = () => podsIn(watched, `mysqlmq.io/cluster=${NAME},app.kubernetes.io/component=mysql`);
    const hashBefore = (await mysqlPods())[0]!.metadata.annotations!['mysqlmq.io/config-hash'];
    await env.apply(
      clusterManifest(
        watched,
        NAME,
        SPEC.replace('    size: 1Gi\n', '    size: 1Gi\n  config:\n    max_connections: "300"\n'),
      ),
    );
    await waitFor(
      'both MariaDB pods recreated with the new my.cnf',
      async () => {
        const now = await mysqlPods();
        return (
          now.length === 2 &&
          now.every((p) => p.metadata.annotations!['mysqlmq.io/config-hash'] !== hashBefore && isReady(p))
        );
      },
      180_000,
      500,
    );
    await waitClusterReady(watched, NAME);
    await consume(watched, NAME, 'scoped', 'after-roll');
    await roundTrip(watched, NAME, 'rolled');

    await deleteCluster(watched, NAME);

    const uses = auditedUses(scopedAudit);
    // Nothing cluster-wide: every request names a namespace (the watched one or the Lease's).
    expect([...new Set(uses.map((u) => u.namespace))].sort()).toEqual([systemNs, watched].sort());
    const rbac = await renderOperatorRbac({ values, namespace: systemNs, release });
    expect(rbac.clusterWide).toBe(false);
    const { unused } = checkAgainstChart(rbac, uses, `install watching ${watched}`);
    // The rolling restart deleted Pods under the namespaced Role.
    expect(unused).not.toContain('core/pods delete');
    await helm(['uninstall', release, '--namespace', systemNs, '--wait'], { kubeconfig: env.kubeconfig });
  }, 300_000);
});
