import { ApiException } from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../../src/common/logger.js';
import {
  DEFAULT_TIMINGS,
  decideAcquire,
  initialRecord,
  isExpired,
  type LeaseClient,
  type LeaseRecord,
  LeaderElector,
  observe,
  releasedRecord,
  renewDeadlineAt,
  validateTimings,
} from '../../../src/operator/runtime/leader-election.js';

const quiet = createLogger('test', 'error');

const rec = (over: Partial<LeaseRecord> = {}): LeaseRecord => ({
  holderIdentity: 'other',
  leaseDurationSeconds: 15,
  acquireTimeMs: 1_000,
  renewTimeMs: 2_000,
  leaseTransitions: 3,
  ...over,
});

describe('leader election decisions (pure)', () => {
  it('observe restarts the local clock only when the record changes', () => {
    const o1 = observe(undefined, rec(), 100);
    expect(o1.observedAtMs).toBe(100);
    expect(observe(o1, rec(), 5_000).observedAtMs).toBe(100); // same record: unchanged
    expect(observe(o1, rec({ renewTimeMs: 2_001 }), 5_000).observedAtMs).toBe(5_000); // renewed
  });

  it('expiry uses the local observation time, not the remote renewTime (clock skew)', () => {
    // The holder's clock is an hour ahead: its renewTime is in "our" future. It still
    // expires 15 s after we last saw the record change.
    const skewed = rec({ renewTimeMs: Date.now() + 3_600_000 });
    const o = observe(undefined, skewed, 10_000);
    expect(isExpired(o, 24_999, 15_000)).toBe(false);
    expect(isExpired(o, 25_000, 15_000)).toBe(true);
    // …and a renewTime far in the past does not make a freshly observed lease expired.
    const stale = observe(undefined, rec({ renewTimeMs: 0 }), 10_000);
    expect(isExpired(stale, 10_001, 15_000)).toBe(false);
  });

  it('uses the record leaseDurationSeconds, falling back to the configured duration', () => {
    const o = observe(undefined, rec({ leaseDurationSeconds: 1 }), 0);
    expect(isExpired(o, 1_000, 15_000)).toBe(true);
    const o0 = observe(undefined, rec({ leaseDurationSeconds: 0 }), 0);
    expect(isExpired(o0, 14_999, 15_000)).toBe(false);
  });

  it('a lease held by another, unexpired holder is left alone', () => {
    const obs = observe(undefined, rec(), 0);
    expect(decideAcquire({ identity: 'me', obs, nowMs: 14_999, wallMs: 9, leaseDurationMs: 15_000 })).toEqual(
      {
        kind: 'held',
        holder: 'other',
      },
    );
  });

  it('an expired lease is taken over: transitions+1, fresh acquire/renew times', () => {
    const obs = observe(undefined, rec(), 0);
    expect(
      decideAcquire({ identity: 'me', obs, nowMs: 15_000, wallMs: 99_000, leaseDurationMs: 15_000 }),
    ).toEqual({
      kind: 'write',
      takeover: true,
      record: {
        holderIdentity: 'me',
        leaseDurationSeconds: 15,
        acquireTimeMs: 99_000,
        renewTimeMs: 99_000,
        leaseTransitions: 4,
      },
    });
  });

  it('a released lease (empty holder) is taken over at once', () => {
    const obs = observe(undefined, releasedRecord(rec(), 5), 0);
    const d = decideAcquire({ identity: 'me', obs, nowMs: 1, wallMs: 7, leaseDurationMs: 15_000 });
    expect(d).toMatchObject({
      kind: 'write',
      takeover: true,
      record: { holderIdentity: 'me', leaseTransitions: 4 },
    });
  });

  it('renewing our own lease keeps acquireTime and transitions', () => {
    const obs = observe(undefined, rec({ holderIdentity: 'me' }), 0);
    const d = decideAcquire({ identity: 'me', obs, nowMs: 1, wallMs: 50_000, leaseDurationMs: 15_000 });
    expect(d).toEqual({
      kind: 'write',
      takeover: false,
      record: {
        holderIdentity: 'me',
        leaseDurationSeconds: 15,
        acquireTimeMs: 1_000,
        renewTimeMs: 50_000,
        leaseTransitions: 3,
      },
    });
  });

  it('release clears the holder and shortens the duration; a new lease starts at 0 transitions', () => {
    expect(releasedRecord(rec({ holderIdentity: 'me' }), 77)).toEqual({
      holderIdentity: '',
      leaseDurationSeconds: 1,
      acquireTimeMs: 77,
      renewTimeMs: 77,
      leaseTransitions: 3,
    });
    expect(initialRecord('me', 5, 15_000)).toEqual({
      holderIdentity: 'me',
      leaseDurationSeconds: 15,
      acquireTimeMs: 5,
      renewTimeMs: 5,
      leaseTransitions: 0,
    });
  });

  it('the renew deadline comes before any follower may see the lease expire', () => {
    expect(renewDeadlineAt(1_000, DEFAULT_TIMINGS)).toBe(11_000);
    expect(DEFAULT_TIMINGS.renewDeadlineMs).toBeLessThan(DEFAULT_TIMINGS.leaseDurationMs);
  });

  it('validates timings like client-go', () => {
    expect(() => validateTimings(DEFAULT_TIMINGS)).not.toThrow();
    expect(() =>
      validateTimings({ leaseDurationMs: 10_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 }),
    ).toThrow();
    expect(() =>
      validateTimings({ leaseDurationMs: 15_000, renewDeadlineMs: 2_000, retryPeriodMs: 2_000 }),
    ).toThrow();
    expect(() =>
      validateTimings({ leaseDurationMs: 1_500, renewDeadlineMs: 1_000, retryPeriodMs: 200 }),
    ).toThrow();
  });
});

// ---- the elector against an in-memory Lease with resourceVersion semantics ----------------

class FakeLeaseStore {
  record: LeaseRecord | undefined;
  rv = 0;
  writes = 0;
  broken = new Set<string>(); // identities whose requests fail
  hang = new Set<string>(); // identities whose requests never answer

  client(identity: string): LeaseClient {
    const guard = async () => {
      if (this.hang.has(identity)) await new Promise(() => {});
      if (this.broken.has(identity)) throw new Error('connect ECONNREFUSED');
    };
    const conflict = () => new ApiException(409, 'conflict', JSON.stringify({ reason: 'Conflict' }), {});
    return {
      get: async () => {
        await guard();
        return this.record ? { record: { ...this.record }, resourceVersion: String(this.rv) } : undefined;
      },
      create: async (r) => {
        await guard();
        if (this.record) throw conflict();
        this.record = { ...r };
        this.writes++;
        return String(++this.rv);
      },
      update: async (r, rv) => {
        await guard();
        if (rv !== String(this.rv)) throw conflict();
        this.record = { ...r };
        this.writes++;
        return String(++this.rv);
      },
    };
  }
}

describe('LeaderElector', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  function elector(store: FakeLeaseStore, identity: string, log: string[]) {
    let signal: AbortSignal | undefined;
    const e = new LeaderElector({
      client: store.client(identity),
      identity,
      logger: quiet,
      now: () => Date.now(),
      random: () => 0.5,
      onStartedLeading: (s) => {
        signal = s;
        log.push(`${identity}:start@${Date.now()}`);
        s.addEventListener('abort', () => log.push(`${identity}:abort@${Date.now()}`));
      },
      onStoppedLeading: ({ lost }) => log.push(`${identity}:${lost ? 'lost' : 'stopped'}@${Date.now()}`),
    });
    return { e, signal: () => signal };
  }

  /** Advances time in small steps, failing if both ever lead at once. */
  async function advance(ms: number, electors: LeaderElector[]) {
    for (let t = 0; t < ms; t += 100) {
      await vi.advanceTimersByTimeAsync(100);
      expect(electors.filter((x) => x.isLeader()).length).toBeLessThanOrEqual(1);
    }
  }

  it('only one of two candidates leads; a graceful stop releases and the other takes over quickly', async () => {
    const store = new FakeLeaseStore();
    const log: string[] = [];
    const a = elector(store, 'a', log);
    const b = elector(store, 'b', log);
    const t0 = Date.now();
    void a.e.run();
    await vi.advanceTimersByTimeAsync(10);
    void b.e.run();
    await advance(30_000, [a.e, b.e]);
    expect(a.e.isLeader()).toBe(true);
    expect(b.e.isLeader()).toBe(false);
    expect(store.record?.leaseTransitions).toBe(0);

    const stopAt = Date.now();
    await a.e.stop();
    expect(a.signal()!.aborted).toBe(true);
    expect(store.record?.holderIdentity).toBe(''); // released
    await advance(5_000, [a.e, b.e]);
    expect(b.e.isLeader()).toBe(true);
    expect(store.record).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });
    const bStart = Number(log.find((l) => l.startsWith('b:start'))!.split('@')[1]);
    expect(bStart - stopAt).toBeLessThanOrEqual(DEFAULT_TIMINGS.retryPeriodMs * 2.2);
    expect(log[0]).toBe(`a:start@${t0}`);
    expect(log).toContain(`a:stopped@${stopAt}`);
    await b.e.stop();
  });

  it('a leader that cannot renew aborts at the renew deadline, before a follower may take over', async () => {
    const store = new FakeLeaseStore();
    const log: string[] = [];
    const a = elector(store, 'a', log);
    const b = elector(store, 'b', log);
    void a.e.run();
    await vi.advanceTimersByTimeAsync(10);
    void b.e.run();
    await advance(6_000, [a.e, b.e]);
    expect(a.e.isLeader()).toBe(true);

    store.broken.add('a'); // a's API server connection dies; b still reaches the lease
    const brokenAt = Date.now();
    await advance(30_000, [a.e, b.e]);
    const aborted = Number(log.find((l) => l.startsWith('a:abort'))!.split('@')[1]);
    const bStart = Number(log.find((l) => l.startsWith('b:start'))!.split('@')[1]);
    expect(log).toContain(`a:lost@${aborted}`);
    // a gave up within renewDeadline of its last good renew (which was < retryPeriod before the break)
    expect(aborted - brokenAt).toBeLessThanOrEqual(DEFAULT_TIMINGS.renewDeadlineMs);
    // b waited a full leaseDuration after the last change it saw, so strictly after a's abort
    expect(bStart).toBeGreaterThan(aborted);
    expect(bStart - brokenAt).toBeGreaterThanOrEqual(
      DEFAULT_TIMINGS.leaseDurationMs - DEFAULT_TIMINGS.retryPeriodMs * 2.2,
    );
    expect(store.record).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });
    await b.e.stop();
    await a.e.stop();
  });

  it('a renew request that hangs still ends leadership exactly at the renew deadline', async () => {
    const store = new FakeLeaseStore();
    const log: string[] = [];
    const a = elector(store, 'a', log);
    void a.e.run();
    await vi.advanceTimersByTimeAsync(10);
    expect(a.e.isLeader()).toBe(true);
    const lastRenew = Date.now();
    store.hang.add('a');
    await vi.advanceTimersByTimeAsync(DEFAULT_TIMINGS.renewDeadlineMs - 20);
    expect(a.signal()!.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(30);
    expect(a.signal()!.aborted).toBe(true);
    expect(Number(log.find((l) => l.startsWith('a:abort'))!.split('@')[1]) - lastRenew).toBeLessThanOrEqual(
      DEFAULT_TIMINGS.renewDeadlineMs,
    );
    expect(a.e.isLeader()).toBe(false);
  });

  it('seeing another holder on renew aborts at once', async () => {
    const store = new FakeLeaseStore();
    const log: string[] = [];
    const a = elector(store, 'a', log);
    void a.e.run();
    await vi.advanceTimersByTimeAsync(10);
    expect(a.e.isLeader()).toBe(true);
    // Someone (e.g. a replica with a wrong clock/config) overwrote the lease.
    store.record = { ...store.record!, holderIdentity: 'intruder', leaseTransitions: 1 };
    store.rv++;
    await vi.advanceTimersByTimeAsync(DEFAULT_TIMINGS.retryPeriodMs + 10);
    expect(a.signal()!.aborted).toBe(true);
    expect(log.some((l) => l.startsWith('a:lost'))).toBe(true);
    await a.e.stop();
    expect(store.record?.holderIdentity).toBe('intruder'); // stop() never releases a lease it does not hold
  });

  it('stop() during the campaign ends run() without leading', async () => {
    const store = new FakeLeaseStore();
    store.record = rec({ holderIdentity: 'someone' });
    const log: string[] = [];
    const a = elector(store, 'a', log);
    const running = a.e.run();
    await vi.advanceTimersByTimeAsync(5_000);
    await a.e.stop();
    await running;
    expect(log).toEqual([]);
  });
});
