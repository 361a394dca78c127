import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ExponentialRateLimiter, WorkQueue } from '../../../src/operator/runtime/workqueue.js';

/** get() that must not block: fails the test instead of hanging when the queue is empty. */
async function take<K>(q: WorkQueue<K>): Promise<K | undefined> {
  const marker = Symbol('blocked');
  const r = await Promise.race([q.get(), Promise.resolve().then(() => marker)]);
  if (r === marker) throw new Error('get() blocked');
  return r as K | undefined;
}

describe('WorkQueue', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('deduplicates keys that are waiting (dirty set) and keeps FIFO order', async () => {
    const q = new WorkQueue<string>();
    q.add('a');
    q.add('b');
    q.add('a');
    q.add('b');
    expect(q.len()).toBe(2);
    expect(await take(q)).toBe('a');
    expect(await take(q)).toBe('b');
    expect(q.len()).toBe(0);
  });

  it('never hands out a key that is being processed; a re-add while processing comes back after done()', async () => {
    const q = new WorkQueue<string>();
    q.add('a');
    const k = await take(q);
    expect(k).toBe('a');
    expect(q.processingCount()).toBe(1);

    q.add('a'); // changed while being reconciled
    q.add('a');
    expect(q.len()).toBe(0); // parked, not handed to a second worker
    const second = q.get();
    let got: string | undefined;
    void second.then((v) => (got = v));
    await Promise.resolve();
    expect(got).toBeUndefined();

    q.done('a');
    expect(await second).toBe('a'); // exactly once more
    q.done('a');
    expect(q.len()).toBe(0);
    expect(q.processingCount()).toBe(0);
  });

  it('done() without a re-add does not requeue', async () => {
    const q = new WorkQueue<string>();
    q.add('a');
    await take(q);
    q.done('a');
    expect(q.len()).toBe(0);
  });

  it('wakes a blocked get() when a key is added, one key per waiter', async () => {
    const q = new WorkQueue<string>();
    const g1 = q.get();
    const g2 = q.get();
    q.add('x');
    q.add('y');
    expect(await g1).toBe('x');
    expect(await g2).toBe('y');
    expect(q.processingCount()).toBe(2);
  });

  it('addAfter delivers after the delay and keeps the earliest deadline per key', async () => {
    const q = new WorkQueue<string>();
    q.addAfter('a', 5_000);
    q.addAfter('a', 10_000); // later: ignored
    expect(q.delayedCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(4_999);
    expect(q.len()).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(q.len()).toBe(1);

    q.addAfter('b', 10_000);
    q.addAfter('b', 2_000); // earlier: wins
    await vi.advanceTimersByTimeAsync(2_000);
    expect(q.len()).toBe(2);
    await vi.advanceTimersByTimeAsync(20_000);
    expect(q.len()).toBe(2); // the superseded timer did not add a duplicate
  });

  it('addAfter with a non-positive delay adds at once', () => {
    const q = new WorkQueue<string>();
    q.addAfter('a', 0);
    expect(q.len()).toBe(1);
  });

  it('addRateLimited backs off exponentially per key from 1 s to the 5 min cap; forget resets', async () => {
    const retries: number[] = [];
    const q = new WorkQueue<string>({ metrics: { retry: () => retries.push(1) } });
    const delays: number[] = [];
    for (let i = 0; i < 11; i++) {
      const before = Date.now();
      q.addRateLimited('a');
      let waited = 0;
      while (q.len() === 0) {
        await vi.advanceTimersByTimeAsync(500);
        waited += 500;
      }
      delays.push(Date.now() - before);
      expect(waited).toBeGreaterThan(0);
      const k = await take(q);
      q.done(k!);
    }
    expect(delays).toEqual([1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000, 300000, 300000]);
    expect(q.numRequeues('a')).toBe(11);
    expect(retries).toHaveLength(11);

    q.forget('a');
    expect(q.numRequeues('a')).toBe(0);
    q.addRateLimited('a');
    await vi.advanceTimersByTimeAsync(999);
    expect(q.len()).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(q.len()).toBe(1);
  });

  it('backoff is per key: one failing key does not delay another', async () => {
    const q = new WorkQueue<string>();
    for (let i = 0; i < 4; i++) {
      q.addRateLimited('bad'); // fails, is retried, fails again …
      await vi.advanceTimersByTimeAsync(60_000);
      q.done((await take(q))!);
    }
    q.addRateLimited('bad'); // 5th failure: 16 s
    q.addRateLimited('good'); // 1st failure: 1 s
    await vi.advanceTimersByTimeAsync(1_000);
    expect(await take(q)).toBe('good');
    expect(q.len()).toBe(0);
    await vi.advanceTimersByTimeAsync(15_000);
    expect(await take(q)).toBe('bad');
  });

  it('shutdown releases blocked get() with undefined, ignores new adds and cancels delayed keys', async () => {
    const q = new WorkQueue<string>();
    const blocked = q.get();
    q.addAfter('later', 1_000);
    q.shutdown();
    expect(await blocked).toBeUndefined();
    q.add('x');
    q.addRateLimited('y');
    expect(q.len()).toBe(0);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(q.len()).toBe(0);
    expect(await take(q)).toBeUndefined();
    expect(q.isShuttingDown()).toBe(true);
  });

  it('keys queued before shutdown can still be fetched (client-go semantics)', async () => {
    const q = new WorkQueue<string>();
    q.add('a');
    q.shutdown();
    expect(await take(q)).toBe('a');
    expect(await take(q)).toBeUndefined();
  });

  it('shutdownWithDrain waits for keys in processing to be done', async () => {
    const q = new WorkQueue<string>();
    q.add('a');
    await take(q);
    let drained = false;
    const p = q.shutdownWithDrain().then(() => (drained = true));
    await vi.advanceTimersByTimeAsync(10);
    expect(drained).toBe(false);
    q.done('a');
    await p;
    expect(drained).toBe(true);
    await expect(new WorkQueue().shutdownWithDrain()).resolves.toBeUndefined();
  });

  it('reports depth to its metrics hook', async () => {
    const depths: number[] = [];
    const q = new WorkQueue<string>({ metrics: { depth: (n) => depths.push(n) } });
    q.add('a');
    q.add('b');
    await take(q);
    expect(depths).toEqual([1, 2, 1]);
  });
});

describe('ExponentialRateLimiter', () => {
  it('doubles from the base and caps', () => {
    const rl = new ExponentialRateLimiter<string>(100, 1_000);
    expect([1, 2, 3, 4, 5, 6].map(() => rl.when('k'))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(rl.when('other')).toBe(100);
    rl.forget('k');
    expect(rl.when('k')).toBe(100);
  });

  it('does not overflow after many failures', () => {
    const rl = new ExponentialRateLimiter<string>();
    let last = 0;
    for (let i = 0; i < 2_000; i++) last = rl.when('k');
    expect(last).toBe(300_000);
  });
});
