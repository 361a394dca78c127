import { describe, expect, it } from 'vitest';
import { type GapState, readableCount } from '../../../src/bench/compare/gaps.js';

describe('reading past concurrently committing INSERTs', () => {
  it('takes the run that continues the position', () => {
    const s: GapState = {};
    expect(readableCount([1, 2, 3], 0, s, 0, 1000)).toBe(3);
    expect(readableCount([11, 12, 13], 10, s, 0, 1000)).toBe(3);
    expect(readableCount([], 10, s, 0, 1000)).toBe(0);
  });

  it('stops before a hole in the middle: a lower-id transaction may still commit', () => {
    expect(readableCount([1, 2, 3, 1001, 1002], 0, {}, 0, 1000)).toBe(3);
  });

  it('waits on a hole right after the position until it fills', () => {
    const s: GapState = {};
    // Rows 1001.. committed before 1..1000: nothing yet.
    expect(readableCount([1001, 1002], 0, s, 100, 1000)).toBe(0);
    expect(s.openSince).toBe(100);
    expect(readableCount([1001, 1002], 0, s, 600, 1000)).toBe(0);
    expect(s.openSince).toBe(100);
    // The lower batch committed: the whole run is readable and the wait is over.
    expect(readableCount([1, 2, 1001], 0, s, 700, 1000)).toBe(2);
    expect(s.openSince).toBeUndefined();
  });

  it('steps over a hole that stays open longer than any commit (a rolled-back INSERT)', () => {
    const s: GapState = {};
    expect(readableCount([5, 6, 8], 2, s, 0, 1000)).toBe(0);
    expect(readableCount([5, 6, 8], 2, s, 999, 1000)).toBe(0);
    expect(readableCount([5, 6, 8], 2, s, 1000, 1000)).toBe(2);
    expect(s.openSince).toBeUndefined();
  });
});

describe('the ceiling INSERT', () => {
  it('renders every payload as a hex literal with the batch time stamp', async () => {
    const { insertSql } = await import('../../../src/bench/compare/systems/ceiling.js');
    expect(
      insertSql('mq.m_9', 1700000000123.7, [{ payload: Buffer.from('ab') }, { payload: Buffer.from("'\\") }]),
    ).toBe(
      "INSERT INTO mq.m_9 (published_at, payload) VALUES (1700000000123,X'6162'),(1700000000123,X'275c')",
    );
  });
});
