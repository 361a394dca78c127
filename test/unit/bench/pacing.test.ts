import { describe, expect, it } from 'vitest';
import { dueBy, nextSends, pacingPlan, scheduledAt } from '../../../tools/bench/compare/pacing.js';

describe('pacing schedule', () => {
  it('makes message i due at i / rate, the first at once', () => {
    expect(dueBy(0, 10_000)).toBe(1);
    expect(dueBy(0.09, 10_000)).toBe(1);
    expect(dueBy(0.1, 10_000)).toBe(2);
    expect(dueBy(1000, 10_000)).toBe(10_001);
    expect(dueBy(1000, 10_000, 5000)).toBe(5000);
    expect(dueBy(-1, 10_000)).toBe(0);
  });

  it('gives each message its scheduled time on the caller clock', () => {
    expect(scheduledAt(100, 0, 10_000)).toBe(100);
    expect(scheduledAt(100, 10_000, 10_000)).toBe(1100);
    expect(scheduledAt(0, 3, 1000)).toBe(3);
  });

  it('plans rate x duration messages and refuses nonsense', () => {
    expect(pacingPlan(10_000, 5000)).toEqual({ total: 50_000, ratePerSecond: 10_000, durationMs: 5000 });
    expect(() => pacingPlan(0, 1000)).toThrow(RangeError);
    expect(() => pacingPlan(1000, 0)).toThrow(RangeError);
  });

  it('sends what is due, and skips instead of queueing once too many are unacknowledged', () => {
    const plan = pacingPlan(10_000, 1000);
    // 2 ms in: messages 0..20 are due.
    expect(nextSends(plan, 2, 0, 0, 10_000)).toEqual({ send: 21, skip: 0 });
    expect(nextSends(plan, 2, 21, 0, 10_000)).toEqual({ send: 0, skip: 0 });
    // Only 5 more may be outstanding: the other 16 due are skipped.
    expect(nextSends(plan, 2, 0, 9995, 10_000)).toEqual({ send: 5, skip: 16 });
    // Past the end, nothing beyond the plan's total.
    expect(nextSends(plan, 5000, 9990, 0, 10_000)).toEqual({ send: 10, skip: 0 });
  });

  it('offers the planned count over the whole duration when woken every millisecond', () => {
    const plan = pacingPlan(10_000, 50);
    let position = 0;
    for (let t = 0; t <= 60; t++) position += nextSends(plan, t, position, 0, Infinity).send;
    expect(position).toBe(500);
  });
});
