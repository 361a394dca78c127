import { describe, expect, it } from 'vitest';
import { Samples, percentile, perSecond } from '../../../tools/bench/compare/stats.js';

describe('percentile (nearest rank)', () => {
  const hundred = Array.from({ length: 100 }, (_, i) => i + 1);

  it('returns the smallest value with p percent of the samples at or below it', () => {
    expect(percentile(hundred, 50)).toBe(50);
    expect(percentile(hundred, 99)).toBe(99);
    expect(percentile(hundred, 100)).toBe(100);
    expect(percentile(hundred, 0)).toBe(1);
    expect(percentile([1, 2, 3], 50)).toBe(2);
    expect(percentile([7], 99)).toBe(7);
  });

  it('is NaN for no samples and refuses a percentile outside 0-100', () => {
    expect(percentile([], 50)).toBeNaN();
    expect(() => percentile([1], 101)).toThrow(RangeError);
    expect(() => percentile([1], -1)).toThrow(RangeError);
  });
});

describe('Samples', () => {
  it('grows past its first buffer and summarises without reordering the samples', () => {
    const s = new Samples();
    for (let i = 5000; i >= 1; i--) s.push(i / 10);
    expect(s.length).toBe(5000);
    const sum = s.summary();
    expect(sum.count).toBe(5000);
    expect(sum.p50).toBe(250);
    expect(sum.p99).toBe(495);
    expect(sum.max).toBe(500);
    expect(sum.mean).toBeCloseTo(250.05, 6);
    // A second summary sees the same samples.
    expect(s.summary()).toEqual(sum);
  });

  it('summarises an empty list as NaN', () => {
    const sum = new Samples().summary();
    expect(sum.count).toBe(0);
    expect(sum.p99).toBeNaN();
    expect(sum.mean).toBeNaN();
  });
});

describe('perSecond', () => {
  it('divides by the elapsed seconds and is 0 without elapsed time', () => {
    expect(perSecond(500, 250)).toBe(2000);
    expect(perSecond(10, 0)).toBe(0);
  });
});
