import { describe, expect, it } from 'vitest';
import { distribution, secs } from '../../../tools/bench/failover/report.js';
import { parseOperatorLog, shardHealthy, signalOf } from '../../../tools/bench/failover/trial.js';
import { BitSet } from '../../../tools/bench/failover/workload.js';
import type { MessageQueueCluster } from '../../../src/operator/api/types.js';

describe('signalOf (what triggered a failover, from the operator decision text)', () => {
  it('reads the pod signals and the MySQL probe signal', () => {
    expect(
      signalOf(
        'shard-0: primary q-shard-0-0 failed (q-shard-0-0: pod not ready); standby q-shard-0-1 serves reads',
      ),
    ).toBe('pod NotReady');
    expect(signalOf('primary q-shard-1-0 is down (q-shard-1-0: pod missing); reads from standby')).toBe(
      'pod NotReady',
    );
    expect(
      signalOf(
        'shard-1: primary q-shard-1-0 failed (q-shard-1-0: MySQL probe failed: connect ECONNREFUSED 127.0.45.5:3306)',
      ),
    ).toBe('MySQL probe failures');
    expect(signalOf(undefined)).toBe('unknown');
    expect(signalOf('something else')).toBe('unknown');
  });
});

describe('parseOperatorLog', () => {
  it('keeps routing changes and events from a point in time on, and skips other lines', () => {
    const lines = [
      '{"message":"routing changed","shards":["shard-0 write=- read=127.0.45.4"],"timestamp":"2026-01-01T00:00:01.000Z"}',
      'not json "routing changed"',
      '{"message":"event","reason":"FailedOver","eventMessage":"shard-0: x","timestamp":"2026-01-01T00:00:02.000Z"}',
      '{"message":"starting","timestamp":"2026-01-01T00:00:03.000Z"}',
      '{"message":"routing changed","shards":[],"timestamp":"2025-12-31T23:59:59.000Z"}',
    ].join('\n');
    const out = parseOperatorLog(lines, Date.parse('2026-01-01T00:00:00.000Z'));
    expect(out.map((l) => l.message)).toEqual(['routing changed', 'event']);
    expect(out[0].shards).toEqual(['shard-0 write=- read=127.0.45.4']);
    expect(out[1]).toMatchObject({ reason: 'FailedOver', eventMessage: 'shard-0: x' });
  });
});

describe('shardHealthy', () => {
  const cr = (phase: string, ready: string) =>
    ({
      status: {
        conditions: [{ type: 'Ready', status: ready }],
        shards: [{ name: 'shard-0', phase, readsFrom: 'primary', writable: true }],
      },
    }) as unknown as MessageQueueCluster;

  it('wants the shard Healthy on its primary and the cluster Ready', () => {
    expect(shardHealthy(cr('Healthy', 'True'), 'shard-0')).toBe(true);
    expect(shardHealthy(cr('Healthy', 'False'), 'shard-0')).toBe(false);
    expect(shardHealthy(cr('FailedOver', 'True'), 'shard-0')).toBe(false);
    expect(shardHealthy(cr('Healthy', 'True'), 'shard-1')).toBe(false);
  });
});

describe('BitSet', () => {
  it('counts members once and lists what another set lacks', () => {
    const a = new BitSet();
    const b = new BitSet();
    for (const i of [0, 7, 8, 100_000]) expect(a.add(i)).toBe(true);
    expect(a.add(7)).toBe(false);
    expect(a.size).toBe(4);
    b.add(7);
    b.add(100_000);
    expect(a.has(8)).toBe(true);
    expect(a.has(9)).toBe(false);
    expect(a.missingFrom(b)).toEqual({ count: 2, sample: [0, 8] });
    expect(a.missingFrom(b, 1)).toEqual({ count: 2, sample: [0] });
    expect(b.missingFrom(a).count).toBe(0);
  });
});

describe('distribution', () => {
  it('summarizes the present values by nearest rank', () => {
    const d = distribution([3000, undefined, 1000, 2000]);
    expect(d).toEqual({ count: 3, min: 1000, p50: 2000, p95: 3000, max: 3000 });
    expect(secs(1234)).toBe('1.23');
    expect(secs(undefined)).toBe('-');
    expect(distribution([]).count).toBe(0);
  });
});
