import { describe, expect, it } from 'vitest';
import type { RunResult } from '../../../tools/bench/compare/results.js';
import {
  cpuRows,
  fmtInt,
  fmtMs,
  fmtRatio,
  markdownTable,
  ratio,
  ratioRows,
  resultRows,
  targetChecks,
  textTable,
} from '../../../tools/bench/compare/table.js';

const lat = (p50: number, p99: number) => ({ count: 10, p50, p99, max: p99, mean: p50 });

function run(
  system: string,
  sizeBytes: number,
  produced: number,
  consumed: number,
  ackP99 = 10,
  rss = 100,
): RunResult {
  return {
    system,
    sizeBytes,
    produced: { messages: 1000, failed: 0, seconds: 1, perSecond: produced, ackMs: lat(1, 2) },
    consumed: { reads: 10_000, expected: 10_000, seconds: 1, perSecond: consumed },
    paced: {
      ratePerSecond: 10_000,
      seconds: 5,
      offered: 50_000,
      skipped: 0,
      acked: 50_000,
      failed: 0,
      ackMs: lat(ackP99 / 2, ackP99),
      e2eMs: lat(3, 30),
      delivered: 500_000,
      expected: 500_000,
    },
    rss: { peakTotalMiB: rss * 2, peakProcessMiB: rss, processes: 2 },
    errors: [],
  };
}

const titles = new Map([
  ['mysqlmq', 'mysqlmq'],
  ['rabbitmq', 'RabbitMQ'],
  ['ceiling', 'ceiling'],
]);

describe('number formatting', () => {
  it('formats counts, milliseconds and ratios, and says n/a for missing numbers', () => {
    expect(fmtInt(123456.7)).toBe('123,457');
    expect(fmtInt(undefined)).toBe('n/a');
    expect(fmtInt(Number.NaN)).toBe('n/a');
    expect(fmtMs(1.234)).toBe('1.23');
    expect(fmtMs(12.34)).toBe('12.3');
    expect(fmtMs(1234.5)).toBe('1,235');
    expect(fmtMs(Number.NaN)).toBe('n/a');
    expect(fmtRatio(1.5)).toBe('1.50x');
    expect(fmtRatio(undefined)).toBe('n/a');
  });

  it('computes ratios only when both sides exist and the divisor is not 0', () => {
    expect(ratio(10, 4)).toBe(2.5);
    expect(ratio(10, 0)).toBeUndefined();
    expect(ratio(undefined, 4)).toBeUndefined();
    expect(ratio(10, Number.NaN)).toBeUndefined();
  });
});

describe('tables', () => {
  it('renders Markdown with a separator row and escaped pipes', () => {
    expect(markdownTable(['a', 'b'], [['1', 'x|y']])).toBe('| a | b |\n| --- | --- |\n| 1 | x\\|y |');
  });

  it('aligns text columns, numbers to the right', () => {
    const t = textTable(
      ['name', 'n'],
      [
        ['long name', '1'],
        ['x', '1,000'],
      ],
    ).split('\n');
    expect(t[0]).toBe('name       n');
    expect(t[1]).toBe('---------  -----');
    expect(t[2]).toBe('long name      1');
    expect(t[3]).toBe('x          1,000');
  });

  it('has one result row per run, marking an unfinished backlog', () => {
    const r = run('mysqlmq', 256, 60_000, 150_000);
    r.consumed.reads = 5;
    const rows = resultRows([r], titles);
    expect(rows[0].slice(0, 4)).toEqual(['mysqlmq', '256 B', '60,000', '150,000*']);
    expect(rows[0][8]).toBe('100 / 200');
  });

  it('reports CPU per 1,000 messages for the runs that measured it', () => {
    const r = run('mysqlmq', 256, 60_000, 150_000);
    const cpu = { serverMs: 500, storageMs: 250, clientMs: 1000 };
    const rows = cpuRows([{ ...r, cpu: { produce: cpu, consume: cpu, paced: cpu } }, r], titles);
    // 1,000 messages produced, 10,000 read.
    // 50,000 acknowledged in the paced phase.
    expect(rows).toEqual([
      ['mysqlmq', '256 B', '500 / 250 / 1,000', '50.0 / 25.0 / 100', '10.0 / 5.00 / 20.0'],
    ]);
  });

  it('compares mysqlmq with every other system at the same size', () => {
    const rows = ratioRows(
      [
        run('mysqlmq', 256, 60_000, 150_000, 10),
        run('rabbitmq', 256, 30_000, 300_000, 20),
        run('rabbitmq', 1024, 1, 1),
        run('ceiling', 256, 120_000, 300_000, 5),
      ],
      titles,
    );
    expect(rows).toEqual([
      ['RabbitMQ', '256 B', '2.00x', '0.50x', '2.00x'],
      ['ceiling', '256 B', '0.50x', '0.50x', '0.50x'],
    ]);
  });
});

describe('target checks', () => {
  it('checks every target of issue 5 against the 256-byte runs', () => {
    const checks = targetChecks([
      run('mysqlmq', 256, 60_000, 150_000, 12, 150),
      run('mysqlmq', 1024, 20_000, 50_000, 40, 180),
      run('rabbitmq', 256, 50_000, 100_000),
      run('ceiling', 256, 130_000, 400_000, 30),
    ]);
    expect(checks.map((c) => c.met)).toEqual([true, true, true, false, true, true]);
    expect(checks[3].measured).toBe('0.46x');
    // The p99 row shows the shards' own tail at the same load beside ours.
    expect(checks[4].measured).toBe('12.0 ms (the ceiling, no broker: 30.0 ms)');
    expect(checks[5].measured).toBe('189 MB (180 MiB)');
  });

  it('counts RSS in MB (10^6 bytes), so 195 MiB misses a 200 MB target', () => {
    const checks = targetChecks([run('mysqlmq', 256, 60_000, 150_000, 12, 195)]);
    expect(checks[5].met).toBe(false);
  });

  it('says not measured when a system is missing', () => {
    const checks = targetChecks([run('mysqlmq', 256, 40_000, 100_000, 30, 250)]);
    expect(checks.map((c) => c.met)).toEqual([false, false, undefined, undefined, false, false]);
    expect(checks[2].measured).toBe('not measured');
  });
});
