import { describe, expect, it } from 'vitest';
import { parseCompareArgs } from '../../../tools/bench/compare/main.js';

describe('npm run bench -- --compare flags', () => {
  it('defaults to every system at 256 B and 1 KiB with 10 groups at 10,000 msg/s', () => {
    const o = parseCompareArgs(['--compare']);
    if (o === 'help') throw new Error('unexpected help');
    expect(o.sizes).toEqual([256, 1024]);
    expect(o.systems).toEqual(['mysqlmq', 'ceiling', 'rabbitmq-stream', 'rabbitmq', 'nats', 'redis']);
    expect(o.groups).toBe(10);
    expect(o.rate).toBe(10_000);
    expect(o.write).toBe(true);
    expect(o.brokerNodeArgs).toEqual([]);
    expect(o.growth).toBe(false);
  });

  it('--growth runs the growth cases, storing 1,000,000 messages per shard unless told', () => {
    const o = parseCompareArgs(['--compare', '--growth', '--stored', '5000']);
    if (o === 'help') throw new Error('unexpected help');
    expect(o.growth).toBe(true);
    expect(o.storedPerShard).toBe(5000);
    expect(() => parseCompareArgs(['--growth', '--stored', '0'])).toThrow(/positive/);
  });

  it('keeps the fixed system order whatever order is given, and takes the other flags', () => {
    const o = parseCompareArgs([
      '--compare',
      '--systems',
      'redis,mysqlmq',
      '--sizes',
      '1024',
      '--paced-seconds',
      '2',
      '--broker-node-args=--max-semi-space-size=4  --cpu-prof',
      '--no-write',
    ]);
    if (o === 'help') throw new Error('unexpected help');
    expect(o.systems).toEqual(['mysqlmq', 'redis']);
    expect(o.sizes).toEqual([1024]);
    expect(o.pacedMs).toBe(2000);
    expect(o.brokerNodeArgs).toEqual(['--max-semi-space-size=4', '--cpu-prof']);
    expect(o.write).toBe(false);
  });

  it('refuses unknown systems, sizes below the stamp and nonsense numbers', () => {
    expect(() => parseCompareArgs(['--systems', 'kafka'])).toThrow(/unknown kafka/);
    expect(() => parseCompareArgs(['--sizes', '8'])).toThrow(/minimum/);
    expect(() => parseCompareArgs(['--rate', '0'])).toThrow(/positive/);
    expect(() => parseCompareArgs(['--bogus'])).toThrow();
    expect(parseCompareArgs(['--help'])).toBe('help');
  });
});
