import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Controller, decideRequeue } from '../../../src/operator/runtime/controller.js';
import { createLogger } from '../../../src/common/logger.js';

const quiet = createLogger('test', 'error');

describe('decideRequeue', () => {
  it.each([
    [{ error: new Error('boom') }, { action: 'rateLimited', result: 'error', isError: true }],
    [
      { result: { requeueAfterMs: 30_000 } },
      { action: 'after', delayMs: 30_000, result: 'requeue_after', isError: false },
    ],
    [{ result: { requeue: true } }, { action: 'rateLimited', result: 'requeue', isError: false }],
    [
      { result: { requeue: true, requeueAfterMs: 5 } },
      { action: 'after', delayMs: 5, result: 'requeue_after', isError: false },
    ],
    [{ result: {} }, { action: 'forget', result: 'success', isError: false }],
    [{ result: undefined }, { action: 'forget', result: 'success', isError: false }],
    [{ result: { requeueAfterMs: 0 } }, { action: 'forget', result: 'success', isError: false }],
    [{ result: { requeueAfterMs: -1 } }, { action: 'forget', result: 'success', isError: false }],
    [{ result: { requeueAfterMs: Number.NaN } }, { action: 'forget', result: 'success', isError: false }],
  ] as const)('%j → %j', (outcome, expected) => {
    expect(decideRequeue(outcome)).toEqual(expected);
  });
});

async function metricValue(
  reg: Registry,
  name: string,
  labels: Record<string, string>,
): Promise<number | undefined> {
  const m = reg.getSingleMetric(name);
  if (!m) return undefined;
  const data = await m.get();
  const v = data.values.find((x) => Object.entries(labels).every(([k, l]) => x.labels[k] === l));
  return v?.value;
}

describe('Controller', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('retries a failing key with exponential backoff, then forgets it on success', async () => {
    const registry = new Registry();
    const calls: number[] = [];
    let failures = 3;
    const c = new Controller({
      name: 'test',
      registry,
      logger: quiet,
      reconcile: async () => {
        calls.push(Date.now());
        if (failures-- > 0) throw new Error('mysql unreachable');
        return {};
      },
    });
    c.start();
    const t0 = Date.now();
    c.enqueue('ns/a');
    await vi.advanceTimersByTimeAsync(20_000);
    expect(calls.map((t) => t - t0)).toEqual([0, 1000, 3000, 7000]);
    expect(c.queue.numRequeues('ns/a')).toBe(0); // forgotten after the success
    expect(
      await metricValue(registry, 'mysqlmq_reconcile_total', { controller: 'test', result: 'error' }),
    ).toBe(3);
    expect(
      await metricValue(registry, 'mysqlmq_reconcile_total', { controller: 'test', result: 'success' }),
    ).toBe(1);
    expect(await metricValue(registry, 'mysqlmq_reconcile_errors_total', { controller: 'test' })).toBe(3);
    expect(await metricValue(registry, 'mysqlmq_workqueue_retries_total', { name: 'test' })).toBe(3);
    const hist = await registry.getSingleMetric('mysqlmq_reconcile_duration_seconds')!.get();
    expect(hist.values.find((v) => v.metricName === 'mysqlmq_reconcile_duration_seconds_count')?.value).toBe(
      4,
    );
    await c.stop();
  });

  it('requeueAfter forgets the backoff and reconciles again after exactly that delay', async () => {
    const registry = new Registry();
    const calls: number[] = [];
    let n = 0;
    const c = new Controller({
      name: 'ra',
      registry,
      logger: quiet,
      reconcile: async () => {
        calls.push(Date.now());
        n++;
        if (n === 1) throw new Error('first fails');
        if (n <= 3) return { requeueAfterMs: 30_000 };
        return {};
      },
    });
    c.start();
    const t0 = Date.now();
    c.enqueue('k');
    await vi.advanceTimersByTimeAsync(1_000); // error → retried after 1 s
    expect(c.queue.numRequeues('k')).toBe(0); // requeueAfter forgot the failure
    await vi.advanceTimersByTimeAsync(120_000);
    expect(calls.map((t) => t - t0)).toEqual([0, 1000, 31000, 61000]);
    expect(
      await metricValue(registry, 'mysqlmq_reconcile_total', { controller: 'ra', result: 'requeue_after' }),
    ).toBe(2);
    await c.stop();
  });

  it('requeue: true is rate limited but not an error', async () => {
    const registry = new Registry();
    let n = 0;
    const c = new Controller({
      name: 'rq',
      registry,
      logger: quiet,
      reconcile: async () => (++n < 3 ? { requeue: true } : undefined),
    });
    c.start();
    c.enqueue('k');
    await vi.advanceTimersByTimeAsync(10_000);
    expect(n).toBe(3);
    expect(
      await metricValue(registry, 'mysqlmq_reconcile_total', { controller: 'rq', result: 'requeue' }),
    ).toBe(2);
    expect(await metricValue(registry, 'mysqlmq_reconcile_errors_total', { controller: 'rq' })).toBe(0);
    await c.stop();
  });

  it('a synchronous throw is caught, counted and retried with backoff', async () => {
    const registry = new Registry();
    let n = 0;
    const c = new Controller({
      name: 'term',
      registry,
      logger: quiet,
      reconcile: (() => {
        n++;
        throw new Error('sync throw');
      }) as never,
    });
    c.start();
    c.enqueue('sync');
    await vi.advanceTimersByTimeAsync(60_000);
    // 'sync' ran at 0, 1, 3, 7, 15, 31 s
    expect(n).toBe(6);
    expect(await metricValue(registry, 'mysqlmq_reconcile_errors_total', { controller: 'term' })).toBe(6);
    await c.stop();
  });

  it('never reconciles the same key concurrently, but different keys in parallel', async () => {
    let active = 0;
    let maxActive = 0;
    const perKey = new Map<string, number>();
    let maxPerKey = 0;
    const c = new Controller({
      name: 'conc',
      workers: 4,
      logger: quiet,
      reconcile: async (key) => {
        active++;
        perKey.set(key, (perKey.get(key) ?? 0) + 1);
        maxActive = Math.max(maxActive, active);
        maxPerKey = Math.max(maxPerKey, perKey.get(key)!);
        await new Promise((r) => setTimeout(r, 100));
        perKey.set(key, perKey.get(key)! - 1);
        active--;
      },
    });
    c.start();
    for (let i = 0; i < 10; i++) {
      c.enqueue('same');
      c.enqueue(`k${i % 3}`);
      await vi.advanceTimersByTimeAsync(30);
    }
    await vi.advanceTimersByTimeAsync(2_000);
    expect(maxPerKey).toBe(1);
    expect(maxActive).toBeGreaterThan(1);
    await c.stop();
  });

  it('stop() aborts the signal of running reconciles, waits for them and drops queued keys', async () => {
    const seen: string[] = [];
    let aborted = false;
    const c = new Controller({
      name: 'stop',
      workers: 1,
      logger: quiet,
      reconcile: async (key, signal) => {
        seen.push(key);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, 60_000);
          signal.addEventListener('abort', () => {
            aborted = true;
            clearTimeout(t);
            resolve();
          });
        });
      },
    });
    c.start();
    c.enqueue('a');
    c.enqueue('b');
    await vi.advanceTimersByTimeAsync(10);
    let stopped = false;
    const p = c.stop().then(() => (stopped = true));
    await vi.advanceTimersByTimeAsync(10);
    await p;
    expect(stopped).toBe(true);
    expect(aborted).toBe(true);
    expect(seen).toEqual(['a']); // 'b' was never started
  });

  it('two controllers can share one registry', () => {
    const registry = new Registry();
    new Controller({ name: 'one', registry, logger: quiet, reconcile: async () => {} });
    expect(
      () => new Controller({ name: 'two', registry, logger: quiet, reconcile: async () => {} }),
    ).not.toThrow();
  });
});
