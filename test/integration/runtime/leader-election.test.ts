/**
 * Lease-based leader election against a real kube-apiserver: mutual exclusion, release on
 * graceful stop, takeover after a leader stops renewing, and the MicroTime wire format.
 */
import { CoordinationV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/common/logger.js';
import { applyObject } from '../../../src/k8s/apply.js';
import { isApiError } from '../../../src/k8s/client.js';
import { KubeRest } from '../../../src/k8s/rest.js';
import {
  coordinationLeaseClient,
  type LeaseClient,
  LeaderElector,
} from '../../../src/operator/runtime/leader-election.js';
import { startKube, type Kube } from '../../support/kube.js';

const NS = 'le-test';
const quiet = createLogger('test', 'error');
quiet.silent = true; // the partition test logs failed renews on purpose
// Short but valid timings (leaseDuration > renewDeadline > 1.2·retryPeriod) keep the test fast.
const TIMINGS = { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 300 };

let kube: Kube;
let api: CoordinationV1Api;
let rest: KubeRest;

beforeAll(async () => {
  kube = await startKube();
  api = kube.kc.makeApiClient(CoordinationV1Api);
  rest = new KubeRest(kube.kc);
  await applyObject(rest, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
});

afterAll(async () => {
  await kube?.stop();
});

interface Candidate {
  elector: LeaderElector;
  log: string[];
  signal?: AbortSignal;
  /** Simulates a network partition: every Lease call from this candidate fails. */
  cut: boolean;
}

function candidate(lease: string, identity: string): Candidate {
  const c: Candidate = { log: [], cut: false } as unknown as Candidate;
  const real = coordinationLeaseClient(rest, NS, lease);
  const guard = <T>(f: () => Promise<T>) => (c.cut ? Promise.reject(new Error('partitioned')) : f());
  const client: LeaseClient = {
    get: () => guard(() => real.get()),
    create: (r) => guard(() => real.create(r)),
    update: (r, rv) => guard(() => real.update(r, rv)),
  };
  c.elector = new LeaderElector({
    ...TIMINGS,
    client,
    identity,
    logger: quiet,
    onStartedLeading: (signal) => {
      c.signal = signal;
      c.log.push(`start@${Date.now()}`);
      signal.addEventListener('abort', () => c.log.push(`abort@${Date.now()}`));
    },
    onStoppedLeading: ({ lost }) => c.log.push(`${lost ? 'lost' : 'stopped'}@${Date.now()}`),
  });
  return c;
}

const at = (c: Candidate, what: string) => Number(c.log.find((l) => l.startsWith(`${what}@`))?.split('@')[1]);

/**
 * Samples the candidates every 20 ms until `cond` holds (or, with cond undefined, for `ms`),
 * failing if two ever lead at once.
 */
async function watchExclusive(cands: Candidate[], cond: (() => boolean) | undefined, ms: number) {
  const end = Date.now() + ms;
  while (!cond?.()) {
    const leaders = cands.filter((c) => c.elector.isLeader() && !c.signal?.aborted);
    expect(leaders.map((c) => c.elector.identity).length).toBeLessThanOrEqual(1);
    if (Date.now() > end) {
      if (!cond) return;
      throw new Error('condition not reached');
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function readLease(name: string) {
  return rest.request<{ spec: Record<string, unknown>; metadata: { resourceVersion: string } }>({
    path: `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/${name}`,
  });
}

describe('LeaderElector (real apiserver)', () => {
  it('two electors never lead at once; the second takes over promptly after the first stops', async () => {
    const a = candidate('op-leader', 'a');
    const b = candidate('op-leader', 'b');
    void a.elector.run();
    await watchExclusive([a, b], () => a.elector.isLeader(), 10_000);
    void b.elector.run();
    await watchExclusive([a, b], undefined, 4_000); // both campaigning for 4 s (> leaseDuration)
    expect(a.elector.isLeader()).toBe(true);
    expect(b.elector.isLeader()).toBe(false);

    const lease = await readLease('op-leader');
    expect(lease.spec).toMatchObject({ holderIdentity: 'a', leaseDurationSeconds: 3, leaseTransitions: 0 });
    // MicroTime on the wire: six fractional digits.
    expect(lease.spec.renewTime).toMatch(/\.\d{6}Z$/);
    expect(lease.spec.acquireTime).toMatch(/\.\d{6}Z$/);

    const stoppedAt = Date.now();
    await a.elector.stop();
    expect(a.signal?.aborted).toBe(true);
    await watchExclusive([a, b], () => b.elector.isLeader(), 5_000);
    // Released (holderIdentity cleared), so b did not have to wait a full leaseDuration.
    expect(at(b, 'start') - stoppedAt).toBeLessThan(TIMINGS.leaseDurationMs);
    const after = await readLease('op-leader');
    expect(after.spec).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });
    expect(a.log.map((l) => l.split('@')[0])).toEqual(['start', 'abort', 'stopped']);

    await b.elector.stop();
    expect((await readLease('op-leader')).spec.holderIdentity).toBe('');
  });

  it('a partitioned leader aborts at its renew deadline, before the other may take over', async () => {
    const a = candidate('op-partition', 'a');
    const b = candidate('op-partition', 'b');
    void a.elector.run();
    await watchExclusive([a, b], () => a.elector.isLeader(), 10_000);
    void b.elector.run();
    await new Promise((r) => setTimeout(r, 1_000));

    const cutAt = Date.now();
    a.cut = true; // a can no longer reach the API server; b still can
    await watchExclusive([a, b], () => b.elector.isLeader(), 15_000);
    const aborted = at(a, 'abort');
    const bStarted = at(b, 'start');
    expect(a.log.some((l) => l.startsWith('lost@'))).toBe(true);
    expect(aborted - cutAt).toBeLessThanOrEqual(TIMINGS.renewDeadlineMs + 100);
    expect(bStarted).toBeGreaterThan(aborted);
    // b waited for the lease to expire by its own clock (no release happened).
    expect(bStarted - cutAt).toBeGreaterThanOrEqual(TIMINGS.leaseDurationMs - TIMINGS.retryPeriodMs * 2.2);
    expect((await readLease('op-partition')).spec).toMatchObject({
      holderIdentity: 'b',
      leaseTransitions: 1,
    });
    await b.elector.stop();
    a.cut = false;
    await a.elector.stop(); // never releases: it does not hold the lease
    expect((await readLease('op-partition')).spec.holderIdentity).toBe('');
  });

  it('PUT with a stale resourceVersion is a 409, and a plain Date is rejected (MicroTime needed)', async () => {
    const a = candidate('op-raw', 'a');
    void a.elector.run();
    await watchExclusive([a], () => a.elector.isLeader(), 10_000);
    await a.elector.stop();
    const l = await api.readNamespacedLease({ name: 'op-raw', namespace: NS });
    // client-node types renewTime as V1MicroTime but hands back the raw string.
    expect(typeof l.spec?.renewTime).toBe('string');
    const stale = await api
      .replaceNamespacedLease({
        name: 'op-raw',
        namespace: NS,
        body: { metadata: { name: 'op-raw', resourceVersion: '1' }, spec: { holderIdentity: 'x' } },
      })
      .catch((e: unknown) => e);
    expect(isApiError(stale, 409)).toBe(true);
    const plainDate = await api
      .replaceNamespacedLease({
        name: 'op-raw',
        namespace: NS,
        body: {
          metadata: { name: 'op-raw', resourceVersion: l.metadata!.resourceVersion },
          spec: { renewTime: new Date() },
        },
      })
      .catch((e: unknown) => e);
    expect(isApiError(plainDate, 400)).toBe(true);
  });
});
