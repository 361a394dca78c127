import { describe, expect, it } from 'vitest';
import { covers, purgeTarget, standbyBehindPurge } from '../../../src/operator/retention/binlog-policy.js';
import {
  HOUR_MS,
  bytesLimitThrough,
  expiredThrough,
  topicLimits,
} from '../../../src/operator/retention/policy.js';
import { parseGtidList } from '../../../src/shard/gtid.js';

const g = parseGtidList;

describe('retention limits', () => {
  it("uses the topic's own settings over the cluster's", () => {
    const cluster = { maxAgeMs: 720 * HOUR_MS, maxBytesPerShard: 10_000 };
    expect(topicLimits(cluster, {})).toEqual({ maxAgeMs: 720 * HOUR_MS, maxBytes: 10_000 });
    expect(topicLimits(cluster, { retentionMaxAgeHours: 2, retentionMaxBytesPerShard: 500 })).toEqual({
      maxAgeMs: 2 * HOUR_MS,
      maxBytes: 500,
    });
    expect(topicLimits({ maxAgeMs: HOUR_MS }, {})).toEqual({ maxAgeMs: HOUR_MS });
  });

  it('deletes the oldest ids beyond what fits the size limit, nothing when it fits', () => {
    const extent = { lowestId: 101, highestId: 1100, averagePayloadBytes: 100 };
    expect(bytesLimitThrough(extent, 50_000)).toBe(600); // keeps 601..1100: 500 rows of 100 B
    expect(bytesLimitThrough(extent, 100_000)).toBe(0);
    expect(bytesLimitThrough(extent, undefined)).toBe(0);
    expect(bytesLimitThrough({ lowestId: 0, highestId: 0, averagePayloadBytes: 0 }, 10)).toBe(0);
  });

  it('deletes a prefix only: never past the first message it keeps', () => {
    const rows = [
      { id: 1, publishedAt: 10 },
      { id: 2, publishedAt: 20 },
      { id: 3, publishedAt: 100 },
      // Published earlier than its predecessor by another broker's clock: still kept, it follows a kept one.
      { id: 4, publishedAt: 15 },
    ];
    expect(expiredThrough(rows, 50, 0)).toBe(2);
    expect(expiredThrough(rows, 5, 0)).toBeUndefined();
    expect(expiredThrough(rows, 5, 3)).toBe(3);
    expect(expiredThrough(rows, 1000, 0)).toBe(4);
    expect(expiredThrough([], 1000, 10)).toBeUndefined();
  });
});

describe('binlog purge', () => {
  const files = [
    { name: 'bin.1', size: 10, startState: [] },
    { name: 'bin.2', size: 10, startState: g('0-1-100') },
    { name: 'bin.3', size: 10, startState: g('0-1-200') },
    { name: 'bin.4', size: 10, startState: g('0-1-300') },
  ];
  const closedAt = new Map([
    ['bin.1', 0],
    ['bin.2', 0],
    ['bin.3', 0],
  ]);
  const base = { files, closedAt, now: 10 * HOUR_MS, minAgeMs: HOUR_MS };

  it('compares a position with a Gtid_list by domain, whichever server wrote it', () => {
    expect(covers(g('0-2-150'), g('0-1-100,0-2-120'))).toBe(true);
    expect(covers(g('0-1-99'), g('0-1-100'))).toBe(false);
    expect(covers(g('0-1-500'), g('0-1-100,1-3-5'))).toBe(false);
    expect(covers([], [])).toBe(true);
  });

  it('purges only what the other instance has applied', () => {
    expect(purgeTarget({ ...base, peerPosition: g('0-1-250') })).toBe('bin.3');
    expect(purgeTarget({ ...base, peerPosition: g('0-1-300') })).toBe('bin.4');
    expect(purgeTarget({ ...base, peerPosition: g('0-1-99') })).toBeUndefined();
  });

  it('purges nothing without the other instance position', () => {
    expect(purgeTarget({ ...base, peerPosition: undefined })).toBeUndefined();
  });

  it('keeps files closed less than the minimum age ago, or whose closing it has not seen', () => {
    const recent = new Map([
      ['bin.1', 0],
      ['bin.2', base.now - 1000],
    ]);
    expect(purgeTarget({ ...base, closedAt: recent, peerPosition: g('0-1-300') })).toBe('bin.2');
    expect(purgeTarget({ ...base, closedAt: new Map(), peerPosition: g('0-1-300') })).toBeUndefined();
  });

  it('tells a standby that needs purged binlogs apart from one that can follow', () => {
    expect(standbyBehindPurge(g('0-1-100'), g('0-1-100'), undefined)).toBeUndefined();
    expect(standbyBehindPurge(g('0-1-100'), [], undefined)).toMatch(/binlogs start after 0-1-100/);
    expect(standbyBehindPurge([], [], undefined)).toBeUndefined();
    const replica = {
      sourceHost: 'p',
      sourcePort: 3306,
      ioRunning: false,
      sqlRunning: true,
      secondsBehind: null,
      lastError:
        "Got fatal error 1236 from master when reading data from binary log: 'Could not find GTID state requested by slave in any binlog files.'",
    };
    expect(standbyBehindPurge(undefined, g('0-1-5'), replica)).toMatch(/no longer has the binlogs/);
    expect(
      standbyBehindPurge(undefined, g('0-1-5'), { ...replica, lastError: 'Access denied' }),
    ).toBeUndefined();
  });
});
