import { describe, expect, it } from 'vitest';
import { parseSchedule } from '../../../src/operator/backup/schedule.js';

describe('spec.backup.schedule', () => {
  const next = (expr: string, after: string) => {
    const s = parseSchedule(expr);
    if (!s.ok) throw new Error(s.error);
    return s.next(new Date(after))?.toISOString();
  };

  it('runs a 5-field cron expression in UTC', () => {
    expect(next('0 3 * * *', '2026-01-05T02:59:00Z')).toBe('2026-01-05T03:00:00.000Z');
    expect(next('0 3 * * *', '2026-01-05T03:00:00Z')).toBe('2026-01-06T03:00:00.000Z');
    expect(next('*/15 * * * *', '2026-01-05T10:01:00Z')).toBe('2026-01-05T10:15:00.000Z');
    expect(next('@daily', '2026-01-05T10:01:00Z')).toBe('2026-01-06T00:00:00.000Z');
    expect(next('*/10 * * * * *', '2026-01-05T10:01:03Z')).toBe('2026-01-05T10:01:10.000Z');
  });

  it('says what is wrong with a bad expression instead of throwing', () => {
    for (const [expr, reason] of [
      ['every day', /2 field\(s\)/],
      ['0 3 * *', /4 field\(s\)/],
      ['61 3 * * *', /not a cron expression/],
      ['0 3 * * * * * *', /8 field\(s\)/],
      ['0 0 31 2 *', /never runs|not a cron expression/],
    ] as const) {
      const s = parseSchedule(expr);
      expect(s.ok).toBe(false);
      if (!s.ok) expect(s.error).toMatch(reason);
    }
  });
});
