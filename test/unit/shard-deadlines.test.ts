import { describe, expect, it } from 'vitest';
import { ShardDeadlines } from '../../src/broker/shard-deadlines.js';

describe('ShardDeadlines', () => {
  it('abandons overdue work and fails further work on that key at once until it settles', async () => {
    const deadlines = new ShardDeadlines(20);
    let answer!: () => void;
    const hung = new Promise<void>((resolve) => (answer = resolve));
    await expect(deadlines.run('a', 'shard a', () => hung)).rejects.toMatchObject({
      status: 503,
      code: 'shard_unresponsive',
    });
    expect(deadlines.stalled('a')).toBe(true);
    let called = false;
    const skipped = deadlines.run('a', 'shard a', async () => void (called = true));
    await expect(skipped).rejects.toMatchObject({ code: 'shard_unresponsive' });
    expect(called).toBe(false);
    await expect(deadlines.run('b', 'shard b', async () => 7)).resolves.toBe(7);
    answer();
    await hung;
    await new Promise((r) => setImmediate(r));
    expect(deadlines.stalled('a')).toBe(false);
    await expect(deadlines.run('a', 'shard a', async () => 8)).resolves.toBe(8);
  });
});
