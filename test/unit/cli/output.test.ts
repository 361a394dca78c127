import { describe, expect, it } from 'vitest';
import { groupsTable, parseResetFlags } from '../../../src/cli/groups.js';
import { Progress, barLine, spinnerLine } from '../../../src/cli/progress.js';
import { formatTable } from '../../../src/cli/table.js';

describe('tables', () => {
  it('pads columns to their widest cell, right-aligns numbers and shows missing cells as -', () => {
    const table = formatTable(
      ['SHARD', 'COMMITTED', 'OWNER'],
      [
        ['shard-0', 41, 'c-1'],
        ['shard-10', 1200, null],
      ],
    );
    expect(table.split('\n')).toEqual([
      'SHARD     COMMITTED  OWNER',
      'shard-0          41  c-1',
      'shard-10       1200  -',
    ]);
  });

  it('lists groups one row per shard with lag and owner', () => {
    const table = groupsTable([
      {
        name: 'billing',
        members: ['c-1'],
        shards: {
          'shard-0': { committed: 10, newest: 15, lag: 5, owner: 'c-1' },
          'shard-1': {
            committed: null,
            newest: null,
            lag: null,
            owner: null,
            error: 'no instance serves reads',
          },
        },
      },
    ]);
    expect(table.split('\n')).toEqual([
      'GROUP    SHARD    COMMITTED  NEWEST  LAG  OWNER',
      'billing  shard-0         10      15    5  c-1',
      'billing  shard-1          -       -    -  error: no instance serves reads',
    ]);
  });
});

describe('reset flags', () => {
  it('turns exactly one --to-* flag into the broker target', () => {
    expect(parseResetFlags({ 'to-earliest': true })).toBe('earliest');
    expect(parseResetFlags({ 'to-latest': true })).toBe('latest');
    expect(parseResetFlags({ 'to-timestamp': '2026-12-04T15:00:00Z' })).toEqual({
      timestamp: Date.UTC(2026, 11, 4, 15),
    });
    expect(parseResetFlags({ 'to-offsets': 'shard-0=41, shard-1=0' })).toEqual({
      offsets: { 'shard-0': 41, 'shard-1': 0 },
    });
    expect(() => parseResetFlags({})).toThrow(/exactly one/);
    expect(() => parseResetFlags({ 'to-earliest': true, 'to-latest': true })).toThrow(/exactly one/);
    expect(() => parseResetFlags({ 'to-timestamp': 'yesterday' })).toThrow(/not an ISO 8601/);
    expect(() => parseResetFlags({ 'to-offsets': 'shard-0:41' })).toThrow(/not SHARD=ID/);
  });
});

describe('progress', () => {
  it('draws a bar fitted to the terminal, and a spinner when the total is unknown', () => {
    expect(barLine('produce t', 250, 1000, 60)).toBe(
      `produce t [${'#'.repeat(8)}${'.'.repeat(24)}]  25%  250/1000`,
    );
    expect(barLine('x', 5, 4, 40)).toContain('100%');
    expect(spinnerLine('switchover', 1, 2500, 0, 'waiting')).toBe('switchover / 2.5s  waiting');
  });

  it('writes only to a terminal, and clears its line when done', () => {
    const written: string[] = [];
    const pipe = { isTTY: false, write: (t: string) => written.push(t) > 0 };
    const onPipe = new Progress('produce', 10, pipe);
    onPipe.advance(5);
    onPipe.finish();
    expect(written).toEqual([]);

    const tty = { isTTY: true, columns: 80, write: (t: string) => written.push(t) > 0 };
    const onTty = new Progress('produce', 10, tty);
    onTty.advance(5);
    onTty.finish();
    expect(written[0]).toContain('50%  5/10');
    expect(written.at(-1)).toBe('\r\x1b[2K');
  });
});
