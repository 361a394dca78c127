import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  type ArchivedBinlog,
  type ArchivedBinlogEntry,
  BinlogEventClock,
  archivedBinlogsToPrune,
  archivedPosition,
  binlogKey,
  binlogsToArchive,
  completeBinlogKeys,
  sidecarKey,
} from '../../../src/backup/binlog-archive.js';
import type { BackupManifest } from '../../../src/backup/catalog.js';
import { groupBackups } from '../../../src/backup/catalog.js';
import { backupForPointInTime, replayPlan, stopDatetime } from '../../../src/backup/point-in-time.js';
import { archiveSourceOf } from '../../../src/operator/backup/binlog-loop.js';
import { purgeTarget } from '../../../src/operator/retention/binlog-policy.js';
import type { ShardOutcome } from '../../../src/operator/shards/manager.js';
import { parseGtidList as g } from '../../../src/shard/gtid.js';

const binlog = (over: Partial<ArchivedBinlog>): ArchivedBinlog => ({
  formatVersion: 1,
  cluster: 'c',
  shard: 'shard-0',
  server: 'c-shard-0-0',
  file: 'mysql-bin.000001',
  bytes: 100,
  gtidStart: '',
  gtidEnd: '',
  firstEventTime: '2026-01-05T10:00:00.000Z',
  lastEventTime: '2026-01-05T10:05:00.000Z',
  archivedAt: '2026-01-05T10:05:00.000Z',
  ...over,
});
const entry = (key: string, over: Partial<ArchivedBinlog>): ArchivedBinlogEntry => ({
  key,
  binlog: binlog(over),
});

describe('which binlogs are archived', () => {
  it('keys sort by archive time and only complete pairs count', () => {
    const a = binlogKey('c', 'shard-0', new Date('2026-01-05T10:00:00Z'), 'mysql-bin.000009');
    const b = binlogKey('c', 'shard-0', new Date('2026-01-05T11:00:00Z'), 'mysql-bin.000010');
    expect(a).toBe('c/shard-0/binlogs/1767607200000-mysql-bin.000009.binlog');
    expect(sidecarKey(a)).toBe('c/shard-0/binlogs/1767607200000-mysql-bin.000009.json');
    expect(completeBinlogKeys([b, sidecarKey(a), a])).toEqual([a]);
  });

  it('archived binlogs are no backup to the backup catalog', () => {
    const keys = ['c/shard-0/binlogs/1-mysql-bin.000001.binlog', 'c/shard-0/20260101T000000Z/manifest.json'];
    expect(groupBackups(keys, 'c/shard-0/')).toEqual({
      complete: ['c/shard-0/20260101T000000Z/'],
      incomplete: [],
    });
  });

  it('archives closed files the server has not archived yet; a rebuilt server reusing names is new', () => {
    const closed = [
      { file: 'mysql-bin.000001', gtidStart: '', gtidEnd: '0-1-10' },
      { file: 'mysql-bin.000002', gtidStart: '0-1-10', gtidEnd: '0-1-20' },
    ];
    const archived = [binlog({ file: 'mysql-bin.000001', gtidStart: '', gtidEnd: '0-1-10' })];
    expect(binlogsToArchive(closed, archived, 'c-shard-0-0').map((c) => c.file)).toEqual([
      'mysql-bin.000002',
    ]);
    expect(binlogsToArchive(closed, archived, 'c-shard-0-1')).toHaveLength(2);
    const rebuilt = [{ file: 'mysql-bin.000001', gtidStart: '0-1-20', gtidEnd: '0-1-30' }];
    expect(binlogsToArchive(rebuilt, archived, 'c-shard-0-0')).toEqual(rebuilt);
  });

  it('the archive reaches the highest end of any file, one GTID per domain', () => {
    expect(archivedPosition([binlog({ gtidEnd: '0-1-10' }), binlog({ gtidEnd: '0-1-20,0-2-15' })])).toEqual(
      g('0-1-20'),
    );
    expect(archivedPosition([])).toEqual([]);
  });

  it('reads event times from a binlog stream cut anywhere', async () => {
    const event = (time: number, size: number) => {
      const b = Buffer.alloc(size);
      b.writeUInt32LE(time, 0);
      b.writeUInt32LE(size, 9);
      return b;
    };
    const file = Buffer.concat([
      Buffer.from([0xfe, 0x62, 0x69, 0x6e]),
      event(100, 40),
      event(0, 19),
      event(105, 30),
    ]);
    const chunks = [file.subarray(0, 7), file.subarray(7, 50), file.subarray(50, 70), file.subarray(70)];
    const clock = new BinlogEventClock();
    let out = 0;
    for await (const c of Readable.from(chunks).pipe(clock)) out += (c as Buffer).length;
    expect(out).toBe(file.length);
    expect([clock.first, clock.last]).toEqual([100, 105]);
  });
});

describe('which binlogs are purged', () => {
  const files = [
    { name: 'bin.1', size: 10, startState: [] },
    { name: 'bin.2', size: 10, startState: g('0-1-100') },
    { name: 'bin.3', size: 10, startState: g('0-1-200') },
  ];
  const base = {
    files,
    closedAt: new Map([
      ['bin.1', 0],
      ['bin.2', 0],
    ]),
    now: 1e9,
    minAgeMs: 0,
    peerPosition: g('0-1-300'),
  };

  it('with archiving on, never a file not archived yet; nothing before the first archive run', () => {
    expect(purgeTarget(base)).toBe('bin.3');
    expect(purgeTarget({ ...base, archivedPosition: g('0-1-150') })).toBe('bin.2');
    expect(purgeTarget({ ...base, archivedPosition: [] })).toBeUndefined();
  });

  it('backup retention drops archived binlogs every kept backup holds', () => {
    const archived = [
      entry('k1', { gtidStart: '', gtidEnd: '0-1-100' }),
      entry('k2', { gtidStart: '0-1-100', gtidEnd: '0-1-200' }),
    ];
    expect(archivedBinlogsToPrune(archived, '0-2-150')).toEqual(['k1']);
    expect(archivedBinlogsToPrune(archived, undefined)).toEqual([]);
  });
});

describe('picking what a point-in-time restore uses', () => {
  const manifest = (startedAt: string, finishedAt: string) =>
    ({ startedAt, finishedAt, role: 'standby' }) as BackupManifest;
  const backups = [
    { prefix: 'a/', manifest: manifest('2026-01-05T03:00:00Z', '2026-01-05T03:10:00Z') },
    { prefix: 'b/', manifest: manifest('2026-01-06T03:00:00Z', '2026-01-06T03:10:00Z') },
  ];

  it('skips backups taken from a primary, which do not record their exact position', () => {
    const primary = {
      prefix: 'p/',
      manifest: { ...manifest('2026-01-06T04:00:00Z', '2026-01-06T04:10:00Z'), role: 'primary' as const },
    };
    expect(backupForPointInTime([...backups, primary], new Date('2026-01-06T12:00:00Z'))).toMatchObject({
      prefix: 'b/',
    });
    expect(backupForPointInTime([primary], new Date('2026-01-06T12:00:00Z'))).toMatch(
      /1 taken from a primary/,
    );
  });

  it('the newest backup that finished before the point', () => {
    expect(backupForPointInTime(backups, new Date('2026-01-06T12:00:00Z'))).toMatchObject({ prefix: 'b/' });
    expect(backupForPointInTime(backups, new Date('2026-01-06T03:05:00Z'))).toMatchObject({ prefix: 'a/' });
    expect(backupForPointInTime(backups, new Date('2026-01-05T03:05:00Z'))).toMatch(
      /no backup finished before 2026-01-05T03:05:00.000Z: the oldest kept one finished at 2026-01-05T03:10:00Z/,
    );
  });

  const archived = [
    entry('1', { gtidStart: '', gtidEnd: '0-1-100', lastEventTime: '2026-01-05T10:00:00.000Z' }),
    entry('2', { gtidStart: '0-1-100', gtidEnd: '0-1-200', lastEventTime: '2026-01-05T11:00:00.000Z' }),
    entry('3', { gtidStart: '0-1-200', gtidEnd: '0-1-300', lastEventTime: '2026-01-05T12:00:00.000Z' }),
  ];

  it('replays from the backup position through the file that reaches the point', () => {
    expect(replayPlan(archived, g('0-1-150'), new Date('2026-01-05T10:30:00Z'))).toEqual([
      { key: '2', startPosition: '0-1-150' },
    ]);
    expect(replayPlan(archived, g('0-1-150'), new Date('2026-01-05T11:30:00Z'))).toEqual([
      { key: '2', startPosition: '0-1-150' },
      { key: '3', startPosition: '0-1-200' },
    ]);
  });

  it('after a failover, follows the file that reaches furthest whichever server wrote it', () => {
    const failover = [
      ...archived.slice(0, 2),
      entry('4', {
        server: 'c-shard-0-1',
        gtidStart: '0-1-150',
        gtidEnd: '0-2-260',
        lastEventTime: '2026-01-05T12:00:00.000Z',
      }),
    ];
    expect(replayPlan(failover, g('0-1-160'), new Date('2026-01-05T11:30:00Z'))).toEqual([
      { key: '4', startPosition: '0-1-160' },
    ]);
  });

  it('says how far the archive reaches when it does not reach the point, or has a gap', () => {
    expect(replayPlan(archived, g('0-1-150'), new Date('2026-01-05T13:00:00Z'))).toMatch(
      /reach 2026-01-05T12:00:00.000Z .* not 2026-01-05T13:00:00.000Z/,
    );
    expect(replayPlan(archived.slice(2), g('0-1-150'), new Date('2026-01-05T11:30:00Z'))).toMatch(
      /reach .*from the backup's position 0-1-150/,
    );
  });

  it('stops at a whole second in UTC, as mariadb-binlog reads it', () => {
    expect(stopDatetime(new Date('2026-01-05T08:12:03.900Z'))).toBe('2026-01-05 08:12:03');
  });

  it('archives from the primary only when it answers', () => {
    const outcome = (up: boolean) =>
      ({
        shard: 'shard-0',
        decision: { memory: { primaryIndex: 1, bootstrapped: true } },
        instances: [
          { index: 0, podName: 'c-shard-0-0', podIP: '10.0.0.1', probe: {} },
          { index: 1, podName: 'c-shard-0-1', ...(up ? { podIP: '10.0.0.2', probe: {} } : {}) },
        ],
      }) as unknown as ShardOutcome;
    expect(archiveSourceOf(outcome(true))).toEqual({
      name: 'c-shard-0-1',
      agent: '10.0.0.2:9080',
      endpoint: { host: '10.0.0.2', port: 3306 },
    });
    expect(archiveSourceOf(outcome(false))).toBeUndefined();
  });
});
