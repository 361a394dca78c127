/**
 * Fault injection on the embedded control plane, each under continuous publishing and consuming
 * by several consumer groups: real mariadbd processes killed with SIGKILL, pods deleted, a broker
 * killed, a standby killed, the operator killed in the middle of a failover. After each: every
 * acknowledged message reached every group, no producer saw a failed publish, the cluster is
 * Ready again, and its Events tell what happened.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_CLUSTER_SPEC as SPEC, clusterManifest } from '../../tools/local/cluster-manifest.js';
import { eventReasons } from '../../tools/local/kubectl.js';
import type { MessageQueueCluster } from '../../src/operator/api/types.js';
import {
  type Env,
  type OperatorProcess,
  conditionOf,
  sleep,
  startEnv,
  waitFor,
} from '../support/operator.js';
import { Workload, type WorkloadResult } from '../support/workload.js';

const NS = 'faults';
const NAME = 'q';
const GROUPS = ['billing', 'audit', 'search'];

let env: Env;
let operator: OperatorProcess;
let round = 0;

const pods = (selector: string) => env.pods(NS, selector);

async function podWithRole(shard: number, role: 'primary' | 'standby'): Promise<string> {
  const [pod] = await pods(
    `mysqlmq.io/cluster=${NAME},mysqlmq.io/shard=shard-${shard},mysqlmq.io/role=${role}`,
  );
  if (!pod) throw new Error(`no ${role} pod for shard-${shard}`);
  return pod.metadata.name;
}

const cluster = (): Promise<MessageQueueCluster> => env.getCluster(NS, NAME);

async function waitReady(timeoutMs = 240_000): Promise<void> {
  await waitFor(
    'the cluster to be Ready',
    async () => conditionOf(await cluster(), 'Ready')?.status === 'True',
    timeoutMs,
    500,
  );
}

const clusterEvents = () => eventReasons((args) => env.kubectl(args), NS, NAME);

/** Runs the workload around `fault`, then checks the invariants every fault must keep. */
async function underLoad(fault: () => Promise<void>): Promise<WorkloadResult> {
  const workload = await Workload.start({
    client: () => env.brokerClient(NS, NAME),
    topic: 'load',
    groups: GROUPS,
    tag: `r${++round}`,
  });
  await waitFor('messages flowing', () => workload.ackedCount > 200, 60_000);
  await fault();
  await waitReady();
  const before = workload.ackedCount;
  await waitFor('messages flowing after the fault', () => workload.ackedCount > before + 200, 60_000);
  const result = await workload.stop();
  // Redeliveries are allowed (at-least-once) but should stay within an uncommitted window or two.
  console.info(
    `round ${round}: ${result.acked} acknowledged, redelivered per group ${JSON.stringify(result.duplicates)}`,
  );
  expect(result.failedPublishes).toEqual([]);
  for (const group of GROUPS) expect(result.missing[group], `group ${group}`).toEqual([]);
  expect(result.acked).toBeGreaterThan(400);
  return result;
}

beforeAll(async () => {
  env = await startEnv('127.0.61');
  await env.kubectl(['create', 'namespace', NS]);
  operator = env.startOperator();
  await env.apply(clusterManifest(NS, NAME, SPEC));
  await waitReady();
}, 600_000);

afterAll(async () => {
  if (operator && process.env.MQ_E2E_OPERATOR_LOG) process.stderr.write(operator.logs());
  await env?.stop();
});

describe('faults under load', () => {
  it('kill -9 of a primary mariadbd: reads move to the standby, then the primary comes back', async () => {
    const primary = await podWithRole(0, 'primary');
    await underLoad(async () => {
      await env.kubelet.killContainer(NS, primary, 'mariadb', 'SIGKILL');
      await waitFor(
        'shard-0 to serve reads from its standby',
        async () => (await cluster()).status?.shards?.[0]?.readsFrom === 'standby',
        30_000,
        100,
      );
    });
    const reasons = await clusterEvents();
    expect(reasons).toContain('FailedOver');
    expect(reasons.some((r) => /Recovered|Healthy/.test(r))).toBe(true);
    const status = (await cluster()).status;
    expect(status?.lastFailoverTime).toBeDefined();
    // Kept in status: Events may be deduplicated or expire.
    expect(status?.failoverCount).toBeGreaterThanOrEqual(1);
  }, 900_000);

  it('deletion of a primary pod: the operator recreates it on its volume and recovers the shard', async () => {
    const primary = await podWithRole(1, 'primary');
    await underLoad(async () => {
      await env.kubectl(['delete', 'pod', primary, '-n', NS, '--wait=false']);
      await waitFor(
        'shard-1 to stop taking writes',
        async () => (await cluster()).status?.shards?.[1]?.writable === false,
        30_000,
        100,
      );
    });
  }, 900_000);

  it('kill of a broker: producers and consumers move to the other broker', async () => {
    const [broker] = await pods(`mysqlmq.io/cluster=${NAME},app.kubernetes.io/component=broker`);
    await underLoad(async () => {
      await env.kubelet.killContainer(NS, broker!.metadata.name, 'broker', 'SIGKILL');
      await sleep(3000);
    });
  }, 900_000);

  it('kill of a standby under durability required: the shard stops writes until it is back', async () => {
    const standby = await podWithRole(0, 'standby');
    const standbyPid = () => env.kubelet.containerPid(NS, standby, 'mariadb');
    // Three crashes in a row: the kubelet's restart back-off doubles (1 s, 2 s, 4 s), so after the
    // last kill the standby is certainly away for 4 s, and mariadbd then takes seconds to start.
    const backoffMs = 4000;
    let killedAt = 0;
    const result = await underLoad(async () => {
      for (let crash = 0; crash < 3; crash++) {
        const pid = await waitFor('the standby to run', standbyPid, 60_000, 20);
        await env.kubelet.killContainer(NS, standby, 'mariadb', 'SIGKILL');
        killedAt = Date.now();
        if (crash < 2)
          await waitFor('the kubelet to restart it', () => (standbyPid() ?? pid) !== pid, 60_000, 20);
      }
      await sleep(backoffMs);
    });
    // A publish sent after the last kill and acknowledged on shard-0 within the back-off was written
    // without its standby. Recorded times err the safe way: a send is recorded before it goes out,
    // an acknowledgement after it arrived.
    const inWindow = result.acks.filter((a) => a.sentAt >= killedAt && a.ackedAt < killedAt + backoffMs);
    console.info(
      `standby away: ${inWindow.length} publishes acknowledged meanwhile, on ${JSON.stringify([...new Set(inWindow.map((a) => a.shard))])}`,
    );
    // The other shard took the writes meanwhile: the window had publishes to judge.
    expect(inWindow.length).toBeGreaterThan(0);
    expect(inWindow.filter((a) => a.shard === 'shard-0')).toEqual([]);
  }, 900_000);

  it('kill of the operator in the middle of a failover: a new operator finishes the job', async () => {
    const primary = await podWithRole(1, 'primary');
    await underLoad(async () => {
      await env.kubelet.killContainer(NS, primary, 'mariadb', 'SIGKILL');
      await sleep(1500); // detection under way: probes failing, routing about to flip
      await operator.stop('SIGKILL');
      await sleep(2000);
      operator = env.startOperator();
    });
  }, 900_000);

  it('a primary hung past promoteForWritesDelaySeconds: its standby becomes the primary, the old one rejoins as standby', async () => {
    await env.apply(
      clusterManifest(NS, NAME, `${SPEC}  promoteForWrites: true\n  promoteForWritesDelaySeconds: 30\n`),
    );
    const [primary, standby] = [await podWithRole(0, 'primary'), await podWithRole(0, 'standby')];
    await underLoad(async () => {
      // SIGSTOP: the pod stays Ready (its port accepts connections); only the operator's probe sees it.
      await env.kubelet.killContainer(NS, primary, 'mariadb', 'SIGSTOP');
      try {
        await waitFor(
          'shard-0 to promote its standby after the delay',
          async () => {
            const shard = (await cluster()).status?.shards?.[0];
            return shard?.primaryPod === standby && shard.phase === 'StandbyUnavailable';
          },
          90_000,
          250,
        );
        await waitFor('role labels to follow', async () => (await podWithRole(0, 'primary')) === standby);
      } finally {
        await env.kubelet.killContainer(NS, primary, 'mariadb', 'SIGCONT');
      }
    });
    const shard = (await cluster()).status!.shards![0]!;
    expect(shard).toMatchObject({
      primaryPod: standby,
      standbyPod: primary,
      writable: true,
      phase: 'Healthy',
    });
    expect(shard.standbyMustRejoin).toBeUndefined();
    const reasons = await clusterEvents();
    expect(reasons).toContain('PromotedForWrites');
    const rejoin = reasons.filter((r) => r === 'StandbyRejoined' || r === 'StandbyRebuilt');
    console.info(`former primary came back: ${rejoin.join(', ')}`);
    expect(rejoin).not.toEqual([]);
  }, 900_000);

  it('a frozen standby under durability preferred: writes continue, status says they are unprotected', async () => {
    await env.apply(
      clusterManifest(
        NS,
        'relaxed',
        `
shards: 1
mysql:
  durability: preferred
  semiSyncTimeoutSeconds: 1
  storage:
    size: 1Gi
brokers:
  replicas: 1
`,
      ),
    );
    const relaxed = () => env.getCluster(NS, 'relaxed');
    await waitFor(
      'cluster relaxed to be Ready',
      async () => conditionOf(await relaxed(), 'Ready')?.status === 'True',
      240_000,
      500,
    );
    const [standby] = await pods('mysqlmq.io/cluster=relaxed,mysqlmq.io/role=standby');
    const workload = await Workload.start({
      client: () => env.brokerClient(NS, 'relaxed'),
      topic: 'relaxed',
      groups: ['only'],
      tag: 'relaxed',
    });
    await waitFor('messages flowing', () => workload.ackedCount > 100, 60_000);
    // SIGSTOP: the process is there but answers nothing, the way a hung server or a partition looks.
    await env.kubelet.killContainer(NS, standby!.metadata.name, 'mariadb', 'SIGSTOP');
    try {
      const cr = await waitFor(
        'shard-0 to report it is unprotected',
        async () => {
          const c = await relaxed();
          return c.status?.shards?.[0]?.phase === 'Unprotected' ? c : undefined;
        },
        60_000,
        200,
      );
      expect(cr.status!.shards![0]!.writable).toBe(true);
      expect(cr.status!.shards![0]!.message).toContain('on the primary only');
      const before = workload.ackedCount;
      await waitFor(
        'writes to continue without the standby',
        () => workload.ackedCount > before + 200,
        60_000,
      );
    } finally {
      await env.kubelet.killContainer(NS, standby!.metadata.name, 'mariadb', 'SIGCONT');
    }
    await waitFor(
      'cluster relaxed to be Ready again',
      async () => conditionOf(await relaxed(), 'Ready')?.status === 'True',
      240_000,
      500,
    );
    const result = await workload.stop();
    expect(result.failedPublishes).toEqual([]);
    expect(result.missing.only).toEqual([]);
  }, 900_000);
});
