/**
 * A rate-limited, delaying work queue of keys with client-go `util/workqueue` semantics.
 *
 * Why these semantics (they are what makes level-triggered controllers correct):
 *  - dirty set: a key added N times before a worker picks it up is processed once — events
 *    only say "look at this object again", the reconciler reads the latest state itself;
 *  - processing set: a key is never handed to two workers at once; a key added while it is
 *    being processed is parked and handed out again after `done()`, so the change that
 *    arrived mid-reconcile is not lost;
 *  - `addRateLimited` / `forget`: per-key exponential backoff, so one broken object retries
 *    slowly without slowing the others; `forget` after a success resets it;
 *  - `addAfter`: the earliest pending deadline per key wins (a later one never postpones it).
 *
 * Pure: no I/O, timers only (so tests drive it with fake timers). Metrics are reported
 * through the optional `QueueMetrics` hooks, not by importing prom-client here.
 */

export interface RateLimiter<K> {
  /** How long to wait before retrying `key`; each call counts one more failure. */
  when(key: K): number;
  /** Resets the failure count of `key` (after a success). */
  forget(key: K): void;
  numRequeues(key: K): number;
}

/**
 * client-go's ItemExponentialFailureRateLimiter: base·2^failures, capped. The base is 1 s
 * rather than client-go's 5 ms because a failing reconcile here usually means MySQL or the
 * API server is unhappy, and hammering them every few ms makes that worse; the cap (5 min)
 * keeps a permanently broken object visible in logs without flooding them.
 */
export class ExponentialRateLimiter<K> implements RateLimiter<K> {
  private readonly failures = new Map<K, number>();

  constructor(
    readonly baseMs = 1_000,
    readonly maxMs = 300_000,
  ) {}

  when(key: K): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    // 2^n overflows to Infinity for large n; Math.min handles that fine.
    return Math.min(this.maxMs, this.baseMs * 2 ** n);
  }

  forget(key: K): void {
    this.failures.delete(key);
  }

  numRequeues(key: K): number {
    return this.failures.get(key) ?? 0;
  }
}

/** Optional observers, wired to Prometheus by the controller. */
export interface QueueMetrics {
  /** Called with the number of keys waiting (not processing, not delayed) whenever it changes. */
  depth?(n: number): void;
  /** Called once per addRateLimited. */
  retry?(): void;
  adds?(): void;
}

export interface WorkQueueOptions<K> {
  name?: string;
  rateLimiter?: RateLimiter<K>;
  metrics?: QueueMetrics;
}

export class WorkQueue<K = string> {
  readonly name: string;
  private readonly queue: K[] = [];
  private readonly dirty = new Set<K>();
  private readonly processing = new Set<K>();
  private readonly waiters: Array<(key: K | undefined) => void> = [];
  private readonly delayed = new Map<K, { at: number; timer: NodeJS.Timeout }>();
  private readonly rateLimiter: RateLimiter<K>;
  private readonly metrics: QueueMetrics;
  private shuttingDown = false;
  private drainWaiters: Array<() => void> = [];

  constructor(opts: WorkQueueOptions<K> = {}) {
    this.name = opts.name ?? 'queue';
    this.rateLimiter = opts.rateLimiter ?? new ExponentialRateLimiter<K>();
    this.metrics = opts.metrics ?? {};
  }

  /** Marks `key` as needing processing. No-op if it is already waiting or after shutdown. */
  add(key: K): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.metrics.adds?.();
    this.dirty.add(key);
    if (this.processing.has(key)) return; // handed out again by done()
    this.push(key);
  }

  /** Adds `key` after `delayMs`; keeps the earliest deadline if `key` is already delayed. */
  addAfter(key: K, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) return this.add(key);
    const at = Date.now() + delayMs;
    const existing = this.delayed.get(key);
    if (existing && existing.at <= at) return;
    if (existing) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, delayMs);
    this.delayed.set(key, { at, timer });
  }

  /** Adds `key` after its rate limiter's backoff (exponential in its failures so far). */
  addRateLimited(key: K): void {
    if (this.shuttingDown) return;
    this.metrics.retry?.();
    this.addAfter(key, this.rateLimiter.when(key));
  }

  /** Resets `key`'s backoff; call after a successful reconcile. Does not remove it from the queue. */
  forget(key: K): void {
    this.rateLimiter.forget(key);
  }

  numRequeues(key: K): number {
    return this.rateLimiter.numRequeues(key);
  }

  /**
   * The next key to process, waiting until there is one. Resolves `undefined` once the
   * queue is shut down and empty. The caller must call `done(key)` when finished.
   * (Like client-go, keys already queued are still handed out after shutdown; a caller that
   * wants to stop at once simply stops calling get().)
   */
  get(): Promise<K | undefined> {
    const key = this.pop();
    if (key !== undefined) return Promise.resolve(key);
    if (this.shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Ends processing of `key`; if it was re-added meanwhile it is queued again now. */
  done(key: K): void {
    this.processing.delete(key);
    if (this.dirty.has(key)) this.push(key);
    if (this.processing.size === 0 && this.drainWaiters.length) {
      const ws = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of ws) w();
    }
  }

  /** Keys waiting to be handed out (not counting processing or delayed ones). */
  len(): number {
    return this.queue.length;
  }

  /** Keys currently handed out and not yet done(). */
  processingCount(): number {
    return this.processing.size;
  }

  /** Keys waiting in addAfter/addRateLimited timers. */
  delayedCount(): number {
    return this.delayed.size;
  }

  isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  /**
   * Stops accepting keys, cancels delayed ones and releases blocked get() callers with
   * `undefined`. Keys already queued can still be fetched with get().
   */
  shutdown(): void {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    for (const { timer } of this.delayed.values()) clearTimeout(timer);
    this.delayed.clear();
    const ws = this.waiters.splice(0);
    for (const w of ws) w(undefined);
  }

  /** shutdown(), then resolves once every handed-out key has been done(). */
  shutdownWithDrain(): Promise<void> {
    this.shutdown();
    if (this.processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private push(key: K): void {
    const waiter = this.waiters.shift();
    if (waiter) {
      // Hand the key straight to a blocked worker: it never sits in the queue.
      this.dirty.delete(key);
      this.processing.add(key);
      waiter(key);
      return;
    }
    this.queue.push(key);
    this.metrics.depth?.(this.queue.length);
  }

  private pop(): K | undefined {
    if (this.queue.length === 0) return undefined;
    const key = this.queue.shift()!;
    this.dirty.delete(key);
    this.processing.add(key);
    this.metrics.depth?.(this.queue.length);
    return key;
  }
}
