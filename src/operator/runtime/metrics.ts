/**
 * Prometheus metrics of the controller runtime (names mirror controller-runtime's, with the
 * `mysqlmq_` prefix). Created on the Registry passed in — never prom-client's global one —
 * so tests and multiple managers don't collide; get-or-create makes it safe for several
 * controllers to share one Registry.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { QueueMetrics } from './workqueue.js';

export interface RuntimeMetrics {
  reconcileTotal: Counter<'controller' | 'result'>;
  reconcileErrors: Counter<'controller'>;
  reconcileDuration: Histogram<'controller'>;
  workqueueDepth: Gauge<'name'>;
  workqueueRetries: Counter<'name'>;
}

/** controller-runtime's reconcile_time_seconds buckets, trimmed (5 ms … 60 s). */
const RECONCILE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60];

function getOrCreate<M>(registry: Registry, name: string, make: () => M): M {
  return (registry.getSingleMetric(name) as M | undefined) ?? make();
}

export function runtimeMetrics(registry: Registry): RuntimeMetrics {
  const registers = [registry];
  return {
    reconcileTotal: getOrCreate(
      registry,
      'mysqlmq_reconcile_total',
      () =>
        new Counter({
          name: 'mysqlmq_reconcile_total',
          help: 'Reconciliations per controller and result (success, error, requeue, requeue_after).',
          labelNames: ['controller', 'result'] as const,
          registers,
        }),
    ),
    reconcileErrors: getOrCreate(
      registry,
      'mysqlmq_reconcile_errors_total',
      () =>
        new Counter({
          name: 'mysqlmq_reconcile_errors_total',
          help: 'Reconciliations that returned an error.',
          labelNames: ['controller'] as const,
          registers,
        }),
    ),
    reconcileDuration: getOrCreate(
      registry,
      'mysqlmq_reconcile_duration_seconds',
      () =>
        new Histogram({
          name: 'mysqlmq_reconcile_duration_seconds',
          help: 'Duration of one reconciliation.',
          labelNames: ['controller'] as const,
          buckets: RECONCILE_BUCKETS,
          registers,
        }),
    ),
    workqueueDepth: getOrCreate(
      registry,
      'mysqlmq_workqueue_depth',
      () =>
        new Gauge({
          name: 'mysqlmq_workqueue_depth',
          help: 'Keys waiting in the work queue (not counting delayed or in-progress keys).',
          labelNames: ['name'] as const,
          registers,
        }),
    ),
    workqueueRetries: getOrCreate(
      registry,
      'mysqlmq_workqueue_retries_total',
      () =>
        new Counter({
          name: 'mysqlmq_workqueue_retries_total',
          help: 'Rate-limited re-adds (retries after errors or requeue) of the work queue.',
          labelNames: ['name'] as const,
          registers,
        }),
    ),
  };
}

/** Work-queue hooks that feed the gauges/counters above for the queue called `name`. */
export function queueMetrics(m: RuntimeMetrics, name: string): QueueMetrics {
  m.workqueueDepth.set({ name }, 0); // export the series before the first add
  m.workqueueRetries.inc({ name }, 0);
  return {
    depth: (n) => m.workqueueDepth.set({ name }, n),
    retry: () => m.workqueueRetries.inc({ name }),
  };
}
