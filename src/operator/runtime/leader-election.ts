/**
 * Lease-based leader election (coordination.k8s.io/v1), following client-go
 * `tools/leaderelection` (not in @kubernetes/client-node).
 *
 * Rules, and why:
 *  - Expiry is judged by the *local* time at which this process last saw the lease record
 *    change, plus leaseDuration — never by comparing the remote renewTime with the local
 *    clock, so clock skew between nodes cannot make two processes think they lead.
 *  - Every write is a PUT carrying the resourceVersion that was read, so of two candidates
 *    racing for an expired lease exactly one succeeds; the other gets 409.
 *  - The leader gives up (aborts its signal) once renewDeadline (10 s) has passed without a
 *    successful renew, i.e. before any follower can consider the lease expired
 *    (leaseDuration, 15 s, counted from when the follower saw the last renewal). A renew
 *    that finds another holder loses immediately.
 *  - acquireTime/renewTime are MicroTime: the API server rejects a plain Date's 3-digit
 *    fraction ("cannot parse .810Z as .000000"), so they are written as V1MicroTime.
 *
 * The decisions are pure functions (tested without timers or an API server); the
 * LeaderElector class only sequences them.
 */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { V1Lease } from '@kubernetes/client-node';
import { WakeableSleep } from '../../common/deadline.js';
import { createLogger, type Logger } from '../../common/logger.js';
import { errorSummary, isConflict, isNotFound } from '../../k8s/client.js';
import type { KubeRest } from '../../k8s/rest.js';

// ---- the lease record and pure decisions ------------------------------------------------------

/** The leader-election fields of a Lease spec; times are epoch milliseconds. */
export interface LeaseRecord {
  holderIdentity: string;
  leaseDurationSeconds: number;
  acquireTimeMs?: number;
  renewTimeMs?: number;
  leaseTransitions: number;
}

export interface LeaderElectionTimings {
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

/** controller-runtime's defaults (pkg/manager/internal.go). */
export const DEFAULT_TIMINGS: LeaderElectionTimings = {
  leaseDurationMs: 15_000,
  renewDeadlineMs: 10_000,
  retryPeriodMs: 2_000,
};

/** client-go's JitterFactor for retries: sleep retryPeriod·[1, 2.2). */
export const JITTER_FACTOR = 1.2;

/** Throws unless leaseDuration > renewDeadline > retryPeriod·JITTER_FACTOR (client-go's checks). */
export function validateTimings(t: LeaderElectionTimings): void {
  if (t.leaseDurationMs <= t.renewDeadlineMs)
    throw new Error('leaseDuration must be greater than renewDeadline');
  if (t.renewDeadlineMs <= JITTER_FACTOR * t.retryPeriodMs) {
    throw new Error(`renewDeadline must be greater than retryPeriod*${JITTER_FACTOR}`);
  }
  if (t.leaseDurationMs % 1000 !== 0)
    throw new Error('leaseDuration must be whole seconds (Lease stores seconds)');
}

/** What this process knows about the lease: the record and when (local monotonic ms) it last changed. */
export interface Observation {
  record: LeaseRecord;
  observedAtMs: number;
}

export function sameRecord(a: LeaseRecord, b: LeaseRecord): boolean {
  return (
    a.holderIdentity === b.holderIdentity &&
    a.leaseDurationSeconds === b.leaseDurationSeconds &&
    a.acquireTimeMs === b.acquireTimeMs &&
    a.renewTimeMs === b.renewTimeMs &&
    a.leaseTransitions === b.leaseTransitions
  );
}

/** The new observation after reading `record` at local time `nowMs`: the clock restarts only on change. */
export function observe(prev: Observation | undefined, record: LeaseRecord, nowMs: number): Observation {
  if (prev && sameRecord(prev.record, record)) return prev;
  return { record, observedAtMs: nowMs };
}

/** True once the holder has not changed the record for its leaseDuration, by our clock. */
export function isExpired(obs: Observation, nowMs: number, fallbackDurationMs: number): boolean {
  const durationMs =
    obs.record.leaseDurationSeconds > 0 ? obs.record.leaseDurationSeconds * 1000 : fallbackDurationMs;
  return obs.observedAtMs + durationMs <= nowMs;
}

export type AcquireDecision =
  { kind: 'held'; holder: string } | { kind: 'write'; record: LeaseRecord; takeover: boolean };

/**
 * Whether `identity` may write the lease now (renew its own, or take over an expired or
 * released one) and the record to write. `obs` must already include the record just read.
 */
export function decideAcquire(args: {
  identity: string;
  obs: Observation;
  nowMs: number;
  wallMs: number;
  leaseDurationMs: number;
}): AcquireDecision {
  const cur = args.obs.record;
  const mine = cur.holderIdentity === args.identity;
  if (cur.holderIdentity !== '' && !mine && !isExpired(args.obs, args.nowMs, args.leaseDurationMs)) {
    return { kind: 'held', holder: cur.holderIdentity };
  }
  return {
    kind: 'write',
    takeover: !mine,
    record: {
      holderIdentity: args.identity,
      leaseDurationSeconds: args.leaseDurationMs / 1000,
      acquireTimeMs: mine ? cur.acquireTimeMs : args.wallMs,
      renewTimeMs: args.wallMs,
      leaseTransitions: mine ? cur.leaseTransitions : cur.leaseTransitions + 1,
    },
  };
}

/** The record of a brand-new lease held by `identity`. */
export function initialRecord(identity: string, wallMs: number, leaseDurationMs: number): LeaseRecord {
  return {
    holderIdentity: identity,
    leaseDurationSeconds: leaseDurationMs / 1000,
    acquireTimeMs: wallMs,
    renewTimeMs: wallMs,
    leaseTransitions: 0,
  };
}

/**
 * What a leader writes when it steps down gracefully (client-go ReleaseOnCancel): no holder
 * and a 1 s duration, so a follower takes over on its next retry instead of after 15 s.
 */
export function releasedRecord(cur: LeaseRecord, wallMs: number): LeaseRecord {
  return {
    holderIdentity: '',
    leaseDurationSeconds: 1,
    acquireTimeMs: wallMs,
    renewTimeMs: wallMs,
    leaseTransitions: cur.leaseTransitions,
  };
}

/** When a leader must give up: renewDeadline after the start of its last successful renew. */
export function renewDeadlineAt(lastRenewStartMs: number, t: LeaderElectionTimings): number {
  return lastRenewStartMs + t.renewDeadlineMs;
}

// ---- the Lease API ----------------------------------------------------------------------------

export interface LeaseSnapshot {
  record: LeaseRecord;
  resourceVersion: string;
}

/** The three calls the elector needs; a fake in unit tests, `coordinationLeaseClient` for real. */
export interface LeaseClient {
  /** undefined when the Lease does not exist. */
  get(): Promise<LeaseSnapshot | undefined>;
  /** Creates the Lease; rejects with 409 AlreadyExists if someone else just did. */
  create(record: LeaseRecord): Promise<string>;
  /** PUT with `resourceVersion` as precondition; rejects with 409 Conflict if it changed. */
  update(record: LeaseRecord, resourceVersion: string): Promise<string>;
}

function toMs(t: unknown): number | undefined {
  // The Lease arrives as plain JSON: MicroTime fields are strings (client-node types them as Date).
  if (typeof t === 'string' && t) {
    const ms = Date.parse(t);
    return Number.isNaN(ms) ? undefined : ms;
  }
  return undefined;
}

function fromLease(l: V1Lease): LeaseRecord {
  const s = l.spec ?? {};
  return {
    holderIdentity: s.holderIdentity ?? '',
    leaseDurationSeconds: s.leaseDurationSeconds ?? 0,
    acquireTimeMs: toMs(s.acquireTime),
    renewTimeMs: toMs(s.renewTime),
    leaseTransitions: s.leaseTransitions ?? 0,
  };
}

/** A Kubernetes MicroTime: RFC 3339 with 6 fractional digits (the apiserver rejects 3). */
const microTime = (ms: number) => new Date(ms).toISOString().replace(/Z$/, '000Z');

/** The Lease spec as JSON (MicroTime fields as strings, which client-node's types call Date). */
function toSpec(r: LeaseRecord): Record<string, unknown> {
  return {
    holderIdentity: r.holderIdentity,
    leaseDurationSeconds: r.leaseDurationSeconds,
    ...(r.acquireTimeMs !== undefined ? { acquireTime: microTime(r.acquireTimeMs) } : {}),
    ...(r.renewTimeMs !== undefined ? { renewTime: microTime(r.renewTimeMs) } : {}),
    leaseTransitions: r.leaseTransitions,
  };
}

/** A LeaseClient over the operator's REST client (read / create / replace). */
export function coordinationLeaseClient(rest: KubeRest, namespace: string, name: string): LeaseClient {
  const collection = `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`;
  // Like client-go's LeaseLock, keep the last Lease read so a PUT preserves its labels and
  // annotations instead of wiping them.
  let last: V1Lease | undefined;
  const rvOf = (l: V1Lease) => l.metadata?.resourceVersion ?? '';
  return {
    async get() {
      try {
        last = await rest.request<V1Lease>({ path: `${collection}/${name}` });
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
      return { record: fromLease(last), resourceVersion: rvOf(last) };
    },
    async create(record) {
      const body = {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name, namespace },
        spec: toSpec(record),
      };
      last = await rest.request<V1Lease>({ method: 'POST', path: collection, body });
      return rvOf(last);
    },
    async update(record, resourceVersion) {
      const body = {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: {
          name,
          namespace,
          resourceVersion,
          labels: last?.metadata?.labels,
          annotations: last?.metadata?.annotations,
        },
        spec: toSpec(record),
      };
      last = await rest.request<V1Lease>({ method: 'PUT', path: `${collection}/${name}`, body });
      return rvOf(last);
    },
  };
}

// ---- the elector ------------------------------------------------------------------------------

export interface LeaderElectorOptions extends Partial<LeaderElectionTimings> {
  client: LeaseClient;
  /** Unique per process: two replicas with one identity would both "lead". Default hostname_random. */
  identity?: string;
  /**
   * Called once leadership is acquired. `signal` aborts the moment leadership is lost or
   * stop() is called; everything started here must stop when it aborts. If it returns a
   * promise, a graceful stop() waits for it (up to releaseTimeoutMs) before releasing the lease.
   */
  onStartedLeading(signal: AbortSignal): void | Promise<void>;
  /** Called after leading ends (lost or stopped). Typical: exit the process when lost. */
  onStoppedLeading?(info: { lost: boolean }): void;
  /** Called when a different holder is observed. */
  onNewLeader?(identity: string): void;
  /** How long stop() waits for onStartedLeading's promise before releasing. Default 5 s. */
  releaseTimeoutMs?: number;
  logger?: Logger;
  /** Monotonic clock for local durations. Default performance.now. */
  now?: () => number;
  /** Wall clock for the times written into the lease. Default Date.now. */
  wallClock?: () => number;
  random?: () => number;
}

type AttemptResult = 'ok' | 'held' | 'conflict' | 'error';

export function defaultIdentity(): string {
  return `${hostname()}_${randomUUID().slice(0, 8)}`;
}

export class LeaderElector {
  readonly identity: string;
  private readonly t: LeaderElectionTimings;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly wall: () => number;
  private readonly random: () => number;
  private obs: Observation | undefined;
  private leading = false;
  private stopped = false;
  private leadAbort: AbortController | undefined;
  private leadWork: Promise<void> | undefined;
  private deadlineTimer: NodeJS.Timeout | undefined;
  private readonly pause = new WakeableSleep();
  private runPromise: Promise<void> | undefined;
  private lastHolder: string | undefined;

  constructor(private readonly opts: LeaderElectorOptions) {
    this.identity = opts.identity ?? defaultIdentity();
    this.t = {
      leaseDurationMs: opts.leaseDurationMs ?? DEFAULT_TIMINGS.leaseDurationMs,
      renewDeadlineMs: opts.renewDeadlineMs ?? DEFAULT_TIMINGS.renewDeadlineMs,
      retryPeriodMs: opts.retryPeriodMs ?? DEFAULT_TIMINGS.retryPeriodMs,
    };
    validateTimings(this.t);
    this.log = opts.logger ?? createLogger('leader-election');
    this.now = opts.now ?? (() => performance.now());
    this.wall = opts.wallClock ?? Date.now;
    this.random = opts.random ?? Math.random;
  }

  isLeader(): boolean {
    return this.leading;
  }

  /** The holder seen at the last read ('' when released). */
  leader(): string | undefined {
    return this.obs?.record.holderIdentity;
  }

  /**
   * Campaigns until leadership is acquired, leads until it is lost or stop() is called,
   * then resolves. An elector runs once: after losing, exit (or build a new one).
   */
  run(): Promise<void> {
    this.runPromise ??= this.loop();
    return this.runPromise;
  }

  /**
   * Graceful stop: aborts the leading signal, waits for onStartedLeading's work to wind
   * down (bounded), then releases the lease so a follower takes over within one retry.
   */
  async stop(): Promise<void> {
    if (this.stopped) return this.runPromise;
    this.stopped = true;
    this.pause.wake();
    if (this.leading) {
      this.endLeading();
      await this.waitForWork();
      // Let an in-flight renew finish first, so it cannot land after the release.
      await this.runPromise;
      await this.release();
      this.opts.onStoppedLeading?.({ lost: false });
    }
    await this.runPromise;
  }

  private async loop(): Promise<void> {
    // Campaign.
    while (!this.stopped) {
      const r = await this.attempt(false);
      if (r === 'ok') break;
      await this.pause.sleep(this.t.retryPeriodMs * (1 + this.random() * JITTER_FACTOR));
    }
    if (this.stopped) {
      // stop() raced with a successful acquire: hand the lease back at once.
      if (this.obs?.record.holderIdentity === this.identity) await this.release();
      return;
    }
    this.startLeading(this.now());
    // Renew.
    let immediate = false;
    while (this.leading && !this.stopped) {
      if (!immediate) await this.pause.sleep(this.t.retryPeriodMs);
      immediate = false;
      if (!this.leading || this.stopped) break;
      const started = this.now();
      const r = await this.attempt(true);
      if (!this.leading || this.stopped) break;
      if (r === 'ok') this.armDeadline(started);
      else if (r === 'held') this.lose(`lease now held by ${this.obs?.record.holderIdentity}`);
      else if (r === 'conflict') immediate = true; // someone wrote the lease: re-read now, not in 2 s
      // 'error': keep retrying; the deadline timer ends leadership if it lasts too long.
    }
  }

  /** One read-decide-write round. While leading, any other holder counts as 'held'. */
  private async attempt(leading: boolean): Promise<AttemptResult> {
    const budget = this.t.renewDeadlineMs;
    try {
      return await withTimeout(this.tryAcquireOrRenew(leading), budget);
    } catch (err) {
      this.log.warn(leading ? 'lease renew failed' : 'lease acquire failed', {
        identity: this.identity,
        error: errorSummary(err),
      });
      return 'error';
    }
  }

  private async tryAcquireOrRenew(leading: boolean): Promise<AttemptResult> {
    const nowMs = this.now();
    const wallMs = this.wall();
    const snap = await this.opts.client.get();
    if (!snap) {
      if (leading) return 'held'; // our lease was deleted: someone else may recreate it
      const record = initialRecord(this.identity, wallMs, this.t.leaseDurationMs);
      try {
        await this.opts.client.create(record);
      } catch (err) {
        if (isConflict(err)) return 'conflict';
        throw err;
      }
      this.setObserved(record, nowMs);
      this.log.info('acquired new lease', { identity: this.identity });
      return 'ok';
    }
    this.setObserved(snap.record, nowMs);
    if (leading && snap.record.holderIdentity !== this.identity) return 'held';
    const d = decideAcquire({
      identity: this.identity,
      obs: this.obs!,
      nowMs,
      wallMs,
      leaseDurationMs: this.t.leaseDurationMs,
    });
    if (d.kind === 'held') return 'held';
    try {
      await this.opts.client.update(d.record, snap.resourceVersion);
    } catch (err) {
      if (isConflict(err)) return 'conflict';
      throw err;
    }
    this.setObserved(d.record, nowMs);
    if (d.takeover) {
      this.log.info('took over lease', {
        identity: this.identity,
        previous: snap.record.holderIdentity,
        transitions: d.record.leaseTransitions,
      });
    }
    return 'ok';
  }

  private setObserved(record: LeaseRecord, nowMs: number): void {
    this.obs = observe(this.obs, record, nowMs);
    const holder = record.holderIdentity;
    if (holder && holder !== this.lastHolder) {
      this.lastHolder = holder;
      try {
        this.opts.onNewLeader?.(holder);
      } catch (err) {
        this.log.error('onNewLeader threw', { error: errorSummary(err) });
      }
    }
  }

  private startLeading(renewStartedAt: number): void {
    this.leading = true;
    this.leadAbort = new AbortController();
    this.armDeadline(renewStartedAt);
    this.log.info('started leading', { identity: this.identity });
    const signal = this.leadAbort.signal;
    this.leadWork = Promise.resolve()
      .then(() => this.opts.onStartedLeading(signal))
      .catch((err: unknown) => {
        this.log.error('onStartedLeading failed', { error: errorSummary(err) });
      });
  }

  /** (Re)arms the timer that ends leadership renewDeadline after the last good renew began. */
  private armDeadline(renewStartedAt: number): void {
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    const ms = Math.max(0, renewDeadlineAt(renewStartedAt, this.t) - this.now());
    // A timer, not a check after each attempt: a renew request that hangs must not keep
    // us "leading" past the point where followers may take over.
    this.deadlineTimer = setTimeout(() => this.lose('renew deadline exceeded'), ms);
  }

  private endLeading(): void {
    this.leading = false;
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.leadAbort?.abort(new Error('leadership ended'));
    this.pause.wake();
  }

  private lose(why: string): void {
    if (!this.leading) return;
    this.log.warn('leadership lost', { identity: this.identity, reason: why });
    this.endLeading();
    this.opts.onStoppedLeading?.({ lost: true });
  }

  private async waitForWork(): Promise<void> {
    if (!this.leadWork) return;
    const limit = this.opts.releaseTimeoutMs ?? 5_000;
    await withTimeout(this.leadWork, limit).catch(() => {
      this.log.warn('onStartedLeading did not finish before release', { waitedMs: limit });
    });
  }

  /** Clears holderIdentity if (and only if) the lease is still ours. Best effort. */
  private async release(): Promise<void> {
    try {
      const snap = await withTimeout(this.opts.client.get(), this.t.renewDeadlineMs);
      if (!snap || snap.record.holderIdentity !== this.identity) return;
      await withTimeout(
        this.opts.client.update(releasedRecord(snap.record, this.wall()), snap.resourceVersion),
        this.t.renewDeadlineMs,
      );
      this.log.info('released lease', { identity: this.identity });
    } catch (err) {
      this.log.warn('lease release failed (it will expire)', { error: errorSummary(err) });
    }
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const e = new Error(`timed out after ${ms} ms`);
      e.name = 'TimeoutError';
      reject(e);
    }, ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
