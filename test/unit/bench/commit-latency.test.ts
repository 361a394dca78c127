import { describe, expect, it } from 'vitest';
import { VARIANTS, type VariantResult, commitLatencySection } from '../../../tools/bench/commit-latency.js';

const lat = (p50: number, p99: number, max: number) => ({ count: 100, p50, p99, max, mean: p50 });

describe('commit latency report', () => {
  it('shows one row per configuration of the primaries, with rows per INSERT and the latencies', () => {
    const results: VariantResult[] = [
      {
        variant: 'deployed',
        inserts: 1000,
        rows: 80_000,
        commitMs: lat(5, 25, 51),
        ackMs: lat(8, 38.6, 52.7),
        loopDelayP99Ms: 6.7,
      },
      {
        variant: 'no-fsync',
        inserts: 2000,
        rows: 80_000,
        commitMs: lat(2, 13, 26),
        ackMs: lat(3, 18.6, 34),
        loopDelayP99Ms: 2.5,
      },
    ];
    const section = commitLatencySection({
      date: '2026-12-01T10:00:00.000Z',
      machine: '2 cores',
      load: [
        [0.5, 0.4, 0.3],
        [1, 0.5, 0.3],
      ],
      command: 'npm run bench -- --commit-latency',
      rate: 10_000,
      seconds: 8,
      size: 256,
      connections: 4,
      results,
    });
    const rows = section
      .split('\n')
      .filter((l) => l.startsWith('| ') && !l.startsWith('| shard primaries') && !l.startsWith('| ---'));
    expect(rows).toEqual([
      `| ${VARIANTS[0].title} | 1,000 | 80.0 | 5.00 / 25.0 / 51.0 | 8.00 / 38.6 / 52.7 | 6.70 |`,
      `| ${VARIANTS[2].title} | 2,000 | 40.0 | 2.00 / 13.0 / 26.0 | 3.00 / 18.6 / 34.0 | 2.50 |`,
    ]);
    expect(section).toContain('10,000 rows/s of\n  256 B offered for 8 s');
  });
});
