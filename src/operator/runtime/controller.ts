/**
 * A controller: N workers pulling keys from a WorkQueue and calling `reconcile(key)`, with
 * controller-runtime's result handling (pkg/internal/controller `reconcileHandler`):
 *
 *   outcome                      queue action              reconcile_total{result}
 *   thrown error                 addRateLimited            error   (+ reconcile_errors_total)
 *   { requeueAfterMs > 0 }       forget + addAfter         requeue_after
 *   { requeue: true }            addRateLimited            requeue
 *   anything else                forget                    success
 *
 * Why: errors back off per key (one broken cluster does not spin), a successful pass
 * resets the backoff, and "check again in 30 s" is a plain timer that does not grow.
 * The queue guarantees a key is never reconciled by two workers at once.
 */
import type { Registry } from 'prom-client';
import { createLogger, type Logger } from '../../common/logger.js';
import { errorSummary } from '../../k8s/client.js';
import { queueMetrics, runtimeMetrics, type RuntimeMetrics } from './metrics.js';
import { ExponentialRateLimiter, type RateLimiter, WorkQueue } from './workqueue.js';

export interface ReconcileResult {
  /** Reconcile this key again after this many ms (backoff is reset). */
  requeueAfterMs?: number;
  /** Reconcile again after the rate limiter's backoff (without it being an error). */
  requeue?: boolean;
}

/**
 * Reconciles the object named by `key` (`namespace/name`). `signal` aborts when the
 * controller stops (shutdown or lost leadership): long waits inside reconcile should
 * honour it.
 */
export type ReconcileFn = (key: string, signal: AbortSignal) => Promise<ReconcileResult | void>;

export type ReconcileResultLabel = 'success' | 'error' | 'requeue' | 'requeue_after';

export interface RequeueDecision {
  action: 'forget' | 'rateLimited' | 'after';
  delayMs?: number;
  result: ReconcileResultLabel;
  isError: boolean;
}

/** The queue action for a reconcile outcome (pure; exported for tests). */
export function decideRequeue(
  outcome: { error: unknown } | { result: ReconcileResult | void },
): RequeueDecision {
  if ('error' in outcome) return { action: 'rateLimited', result: 'error', isError: true };
  const r = outcome.result ?? {};
  const after = r.requeueAfterMs;
  if (typeof after === 'number' && Number.isFinite(after) && after > 0) {
    return { action: 'after', delayMs: after, result: 'requeue_after', isError: false };
  }
  if (r.requeue) return { action: 'rateLimited', result: 'requeue', isError: false };
  return { action: 'forget', result: 'success', isError: false };
}

export interface ControllerOptions {
  /** Names the controller in metrics/logs and the queue (`name` label of queue metrics). */
  name: string;
  reconcile: ReconcileFn;
  /** Concurrent reconciles (different keys). Default 2. */
  workers?: number;
  registry?: Registry;
  logger?: Logger;
  rateLimiter?: RateLimiter<string>;
}

export class Controller {
  readonly name: string;
  readonly queue: WorkQueue<string>;
  private readonly reconcileFn: ReconcileFn;
  private readonly workers: number;
  private readonly log: Logger;
  private readonly metrics: RuntimeMetrics | undefined;
  private abort = new AbortController();
  private running: Promise<void>[] = [];

  constructor(opts: ControllerOptions) {
    this.name = opts.name;
    this.reconcileFn = opts.reconcile;
    this.workers = Math.max(1, opts.workers ?? 2);
    this.log = opts.logger ?? createLogger(`controller/${opts.name}`);
    this.metrics = opts.registry ? runtimeMetrics(opts.registry) : undefined;
    this.queue = new WorkQueue<string>({
      name: opts.name,
      rateLimiter: opts.rateLimiter ?? new ExponentialRateLimiter<string>(),
      metrics: this.metrics ? queueMetrics(this.metrics, opts.name) : undefined,
    });
    if (this.metrics) {
      // Export zero-valued series up front so dashboards and alerts see the controller.
      for (const result of ['success', 'error', 'requeue', 'requeue_after'] as const) {
        this.metrics.reconcileTotal.inc({ controller: this.name, result }, 0);
      }
      this.metrics.reconcileErrors.inc({ controller: this.name }, 0);
    }
  }

  /** Queues a key for reconciliation (deduplicated). */
  enqueue(key: string): void {
    this.queue.add(key);
  }

  /** Starts the workers. Idempotent. */
  start(): void {
    if (this.running.length) return;
    for (let i = 0; i < this.workers; i++) this.running.push(this.worker());
  }

  /**
   * Stops taking new keys, aborts the signal passed to running reconciles and waits until
   * they have returned. Keys still queued are dropped: the state is level-based, the next
   * start (or leader) lists everything again.
   */
  async stop(): Promise<void> {
    this.abort.abort(new Error(`controller ${this.name} stopped`));
    await this.queue.shutdownWithDrain();
    await Promise.all(this.running);
    this.running = [];
  }

  private async worker(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      if (this.abort.signal.aborted) {
        this.queue.done(key);
        return;
      }
      try {
        await this.processOne(key);
      } finally {
        this.queue.done(key);
      }
    }
  }

  /** One reconcile of `key` plus the queue bookkeeping for its outcome. */
  private async processOne(key: string): Promise<void> {
    const end = this.metrics?.reconcileDuration.startTimer({ controller: this.name });
    let decision: RequeueDecision;
    try {
      // Promise.resolve().then(): a reconcile that throws synchronously is still caught.
      const result = await Promise.resolve().then(() => this.reconcileFn(key, this.abort.signal));
      decision = decideRequeue({ result });
    } catch (error) {
      decision = decideRequeue({ error });
      this.log.warn('reconcile failed', {
        controller: this.name,
        key,
        error: errorSummary(error),
        retries: this.queue.numRequeues(key),
      });
    } finally {
      end?.();
    }
    this.metrics?.reconcileTotal.inc({ controller: this.name, result: decision.result });
    if (decision.isError) this.metrics?.reconcileErrors.inc({ controller: this.name });
    switch (decision.action) {
      case 'forget':
        this.queue.forget(key);
        break;
      case 'rateLimited':
        this.queue.addRateLimited(key);
        break;
      case 'after':
        this.queue.forget(key);
        this.queue.addAfter(key, decision.delayMs!);
        break;
    }
  }
}
