import { describe, expect, it } from 'vitest';
import {
  type CpuProfile,
  busyShare,
  originOf,
  selfTimeByOrigin,
  shortLocation,
  topSelfTime,
} from '../../../tools/bench/compare/cpuprofile.js';

const frame = (functionName: string, url = '', lineNumber = 0) => ({
  functionName,
  url,
  lineNumber,
  columnNumber: 0,
});

/** root -> idle, parse (mysql2), handle (ours) -> stringify (node) */
const profile: CpuProfile = {
  startTime: 0,
  endTime: 10_000,
  nodes: [
    { id: 1, callFrame: frame('(root)'), children: [2, 3, 4] },
    { id: 2, callFrame: frame('(idle)') },
    { id: 3, callFrame: frame('parseRow', 'file:///app/node_modules/mysql2/lib/packets/packet.js', 9) },
    { id: 4, callFrame: frame('handle', 'file:///app/dist/broker/broker.js', 199), children: [5] },
    { id: 5, callFrame: frame('stringify', 'node:internal/http', 4) },
    { id: 6, callFrame: frame('(garbage collector)') },
  ],
  samples: [2, 3, 3, 4, 5, 2, 6, 3],
  timeDeltas: [4000, 1000, 1000, 500, 500, 1000, 1000, 1000],
};

describe('cpu profile summaries', () => {
  it('charges each sample time to its node and ranks functions by self time, idle left out', () => {
    const { busyMs, top } = topSelfTime([profile]);
    expect(busyMs).toBe(5);
    expect(top.map((t) => [t.name, t.selfMs])).toEqual([
      ['parseRow', 3],
      ['(garbage collector)', 1],
      ['handle', 0.5],
      ['stringify', 0.5],
    ]);
    expect(top[0].percent).toBeCloseTo(60);
    expect(top[0].location).toBe('mysql2/lib/packets/packet.js:10');
    expect(top[2].location).toBe('src/broker/broker.ts:200');
  });

  it('adds up the same function across profiles', () => {
    const { top } = topSelfTime([profile, profile], 1);
    expect(top).toHaveLength(1);
    expect(top[0].selfMs).toBe(6);
  });

  it('falls back to hit counts when a profile has no samples', () => {
    const hits: CpuProfile = {
      startTime: 0,
      endTime: 4000,
      nodes: [
        { id: 1, callFrame: frame('a', 'node:x'), hitCount: 3 },
        { id: 2, callFrame: frame('b', 'node:x'), hitCount: 1 },
      ],
    };
    expect(topSelfTime([hits]).top.map((t) => t.selfMs)).toEqual([3, 1]);
  });

  it('groups self time by origin and reports how busy the thread was', () => {
    expect(selfTimeByOrigin([profile]).map((o) => [o.origin, o.selfMs])).toEqual([
      ['mysql2', 3],
      ['v8', 1],
      ['mysqlmq', 0.5],
      ['node', 0.5],
    ]);
    expect(busyShare(profile)).toEqual({ wallMs: 10, busyPercent: 50 });
  });

  it('names origins and shortens locations', () => {
    expect(originOf('file:///x/node_modules/@scope/pkg/a.js', 'f')).toBe('@scope/pkg');
    expect(originOf('node:internal/streams', 'f')).toBe('node');
    expect(originOf('', '(program)')).toBe('v8');
    expect(originOf('', 'JSON.parse')).toBe('native');
    expect(originOf('file:///work/main/dist/broker/writer.js', 'flush')).toBe('mysqlmq');
    expect(shortLocation('', 3)).toBe('');
    expect(shortLocation('node:internal/http', 0)).toBe('node:internal/http:1');
  });
});
