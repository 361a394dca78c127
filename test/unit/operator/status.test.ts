import { describe, expect, it } from 'vitest';
import type { MessageQueueClusterStatus } from '../../../src/operator/api/types.js';
import type { ShardPhase } from '../../../src/operator/shards/decide.js';
import type { ShardOutcome } from '../../../src/operator/shards/manager.js';
import { computeStatus, emptyStringsAs, memoryFromStatus } from '../../../src/operator/status.js';

const now = new Date('2026-12-01T12:00:00Z');
const later = new Date('2026-12-01T12:05:00Z');

function outcome(
  shard: number,
  phase: ShardPhase,
  over: { readsFrom?: 'primary' | 'standby' | 'none'; write?: boolean } = {},
): ShardOutcome {
  const readsFrom = over.readsFrom ?? 'primary';
  const host = (n: number) => ({ host: `127.0.0.${shard * 2 + n + 1}`, port: 3306 });
  return {
    shard: `shard-${shard}`,
    instances: [0, 1].map((index) => ({
      index,
      podName: `c-shard-${shard}-${index}`,
      podPhase: 'Running',
      podReady: true,
      deleting: false,
    })),
    decision: {
      memory: {
        primaryIndex: 0,
        bootstrapped: true,
        readsFrom,
        primaryProbeFailures: 0,
        phase,
        lastTransitionTime: now.toISOString(),
        ...(phase === 'FailedOver' ? { failedOverAt: now.toISOString() } : {}),
      },
      actions: [],
      route: {
        write: over.write === false ? null : 'primary',
        read: readsFrom === 'none' ? null : readsFrom,
        requireStandbyAck: true,
      },
      message: `${phase} message`,
      events: [],
      lagTransactions: 0,
      lagSeconds: 0,
      semiSync: 'active',
    },
    route: {
      name: `shard-${shard}`,
      write: over.write === false ? null : host(0),
      read: readsFrom === 'none' ? null : readsFrom === 'primary' ? host(0) : host(1),
      requireStandbyAck: true,
    },
  };
}

const base = {
  generation: 3,
  specProblems: [],
  shardsTotal: 2,
  brokers: { ready: 2, desired: 2, selector: 'app=x' },
  routingVersion: 7,
};

const condition = (s: MessageQueueClusterStatus, type: string) => s.conditions?.find((c) => c.type === type);

describe('computeStatus', () => {
  it('reports a standby behind the binlog purge in its shard and as Degraded, with the retention figures', () => {
    const behind = {
      ...outcome(1, 'Provisioning'),
      retention: {
        standbyBehindPurge: 'standby c-shard-1-1 cannot follow c-shard-1-0: its position is gone',
        binlogBytes: 1234,
        oldestMessageAgeSeconds: 60,
      },
    };
    const s = computeStatus({ ...base, previous: undefined, outcomes: [outcome(0, 'Healthy'), behind], now });
    expect(s.shards![1]).toMatchObject({
      standbyBehindBinlogPurge: true,
      binlogBytes: 1234,
      oldestMessageAgeSeconds: 60,
    });
    expect(s.shards![1].message).toMatch(/cannot follow c-shard-1-0.*must be rebuilt/);
    expect(s.shards![0].standbyBehindBinlogPurge).toBeUndefined();
    expect(condition(s, 'Degraded')).toMatchObject({ status: 'True', reason: 'StandbyBehindBinlogPurge' });
    expect(condition(s, 'Degraded')!.message).toMatch(/shard-1: .*must be rebuilt/);
  });

  it('is Ready when every shard is healthy and every broker ready', () => {
    const s = computeStatus({
      ...base,
      previous: undefined,
      outcomes: [outcome(0, 'Healthy'), outcome(1, 'Healthy')],
      now,
    });
    expect(s).toMatchObject({
      phase: 'Ready',
      observedGeneration: 3,
      shardsReady: 2,
      writableShards: 2,
      brokersReady: 2,
    });
    expect(condition(s, 'Ready')).toMatchObject({ status: 'True', reason: 'ClusterReady' });
    expect(condition(s, 'Degraded')).toMatchObject({ status: 'False', reason: 'AsExpected' });
    expect(s.shards![0]).toMatchObject({
      primaryPod: 'c-shard-0-0',
      standbyPod: 'c-shard-0-1',
      readsFrom: 'primary',
      writable: true,
    });
  });

  it('carries the instance separation as the InstancesSeparated condition, without changing readiness', () => {
    const sameNode = {
      status: 'False' as const,
      reason: 'SameNode',
      message: 'shard-1: c-shard-1-0 and c-shard-1-1 both run on node-a',
    };
    const s = computeStatus({
      ...base,
      previous: undefined,
      outcomes: [outcome(0, 'Healthy'), outcome(1, 'Healthy')],
      separation: sameNode,
      now,
    });
    expect(condition(s, 'InstancesSeparated')).toMatchObject({ ...sameNode, observedGeneration: 3 });
    expect(condition(s, 'Ready')?.status).toBe('True');
  });

  it('says which shard failed over, and stays Available while another shard takes writes', () => {
    const s = computeStatus({
      ...base,
      previous: undefined,
      outcomes: [outcome(0, 'FailedOver', { readsFrom: 'standby', write: false }), outcome(1, 'Healthy')],
      now,
    });
    expect(s.phase).toBe('Degraded');
    expect(s.writableShards).toBe(1);
    expect(s.lastFailoverTime).toBe(now.toISOString());
    expect(condition(s, 'Degraded')).toMatchObject({ status: 'True', reason: 'FailedOver' });
    expect(condition(s, 'Degraded')?.message).toContain('shard-0: FailedOver message');
    expect(condition(s, 'Available')).toMatchObject({ status: 'True' });
    expect(s.shards![0]).toMatchObject({ readsFrom: 'standby', writable: false });
  });

  it('keeps the failover count and the last switchover once the shard loop has none to report', () => {
    const switchover = {
      shard: 'shard-0',
      from: 'c-shard-0-0',
      to: 'c-shard-0-1',
      result: 'Succeeded' as const,
      message: 'done',
      time: now.toISOString(),
      writesPausedMs: 400,
      requestedBy: 'annotation',
    };
    const first = computeStatus({
      ...base,
      previous: undefined,
      outcomes: [outcome(0, 'Healthy'), outcome(1, 'Healthy')],
      failoverCount: 3,
      lastSwitchover: switchover,
      now,
    });
    expect(first).toMatchObject({ failoverCount: 3, lastSwitchover: switchover });
    const restarted = computeStatus({
      ...base,
      previous: first,
      outcomes: [outcome(0, 'Healthy'), outcome(1, 'Healthy')],
      now: later,
    });
    expect(restarted).toMatchObject({ failoverCount: 3, lastSwitchover: switchover });
  });

  it('keeps the last failover time and count after the shard recovered (Events may be deduplicated or expire)', () => {
    const failedOver = computeStatus({
      ...base,
      previous: undefined,
      outcomes: [outcome(0, 'FailedOver', { readsFrom: 'standby', write: false }), outcome(1, 'Healthy')],
      failoverCount: 1,
      now,
    });
    const recovered = computeStatus({
      ...base,
      previous: failedOver,
      outcomes: [outcome(0, 'Healthy'), outcome(1, 'Healthy')],
      now: later,
    });
    expect(recovered.phase).toBe('Ready');
    expect(recovered).toMatchObject({ lastFailoverTime: now.toISOString(), failoverCount: 1 });
  });

  it('stays Ready while a shard is switching over (its writes go to the other shards)', () => {
    const s = computeStatus({
      ...base,
      previous: undefined,
      outcomes: [outcome(0, 'SwitchingOver', { write: false }), outcome(1, 'Healthy')],
      now,
    });
    expect(s.phase).toBe('Ready');
    expect(s.writableShards).toBe(1);
  });

  it('counts a recovering shard as degraded until its standby protects it again', () => {
    const s = computeStatus({
      ...base,
      previous: undefined,
      outcomes: [outcome(0, 'Recovering', { write: false }), outcome(1, 'Healthy')],
      now,
    });
    expect(s.phase).toBe('Degraded');
    expect(condition(s, 'Progressing')).toMatchObject({ status: 'True', reason: 'ShardsProgressing' });
  });

  it('moves a condition lastTransitionTime only when its status changes', () => {
    const first = computeStatus({
      ...base,
      previous: undefined,
      outcomes: [outcome(0, 'Healthy'), outcome(1, 'Healthy')],
      now,
    });
    const same = computeStatus({
      ...base,
      previous: first,
      outcomes: [outcome(0, 'Healthy'), outcome(1, 'Healthy')],
      now: later,
    });
    expect(condition(same, 'Ready')?.lastTransitionTime).toBe(now.toISOString());
    const changed = computeStatus({
      ...base,
      previous: first,
      outcomes: [outcome(0, 'Unavailable', { readsFrom: 'none', write: false }), outcome(1, 'Healthy')],
      now: later,
    });
    expect(condition(changed, 'Ready')).toMatchObject({
      status: 'False',
      lastTransitionTime: later.toISOString(),
    });
    expect(condition(changed, 'Available')).toMatchObject({ status: 'False', reason: 'NotServing' });
  });

  it('reports spec problems as InvalidSpec and keeps what the shards last reported', () => {
    const healthy = computeStatus({
      ...base,
      previous: undefined,
      outcomes: [outcome(0, 'Healthy'), outcome(1, 'Healthy')],
      now,
    });
    const s = computeStatus({
      ...base,
      previous: healthy,
      specProblems: ['spec.shards cannot shrink'],
      outcomes: undefined,
      now: later,
    });
    expect(s.phase).toBe('Failed');
    expect(condition(s, 'Ready')).toMatchObject({
      status: 'False',
      reason: 'InvalidSpec',
      message: 'spec.shards cannot shrink',
    });
    expect(s.shards).toEqual(healthy.shards);
  });

  it('gives a restarted operator back what the last one decided', () => {
    const s = computeStatus({
      ...base,
      previous: undefined,
      outcomes: [outcome(0, 'FailedOver', { readsFrom: 'standby', write: false }), outcome(1, 'Healthy')],
      now,
    });
    expect(memoryFromStatus(s.shards![0]!)).toMatchObject({
      primaryIndex: 0,
      bootstrapped: true,
      readsFrom: 'standby',
      phase: 'FailedOver',
      failedOverAt: now.toISOString(),
    });
  });

  it('carries paused writes of a switchover across a restart', () => {
    const paused = outcome(0, 'SwitchingOver', { write: false });
    Object.assign(paused.decision.memory, { switchoverWritesPaused: true });
    const s = computeStatus({ ...base, previous: undefined, outcomes: [paused, outcome(1, 'Healthy')], now });
    expect(memoryFromStatus(s.shards![0]!)).toMatchObject({
      phase: 'SwitchingOver',
      switchoverWritesPaused: true,
    });
    expect(memoryFromStatus(s.shards![1]!).switchoverWritesPaused).toBeUndefined();
  });

  it('shows a promoted standby as the primary and carries the pending rejoin across a restart', () => {
    const promoted = outcome(0, 'StandbyUnavailable', { write: false });
    Object.assign(promoted.decision.memory, {
      primaryIndex: 1,
      failedOverAt: now.toISOString(),
      failedOverProtected: true,
      standbyMustRejoin: true,
    });
    const s = computeStatus({
      ...base,
      previous: undefined,
      outcomes: [promoted, outcome(1, 'Healthy')],
      now,
    });
    expect(s.shards![0]).toMatchObject({
      primaryPod: 'c-shard-0-1',
      standbyPod: 'c-shard-0-0',
      standbyMustRejoin: true,
    });
    expect(condition(s, 'Degraded')?.status).toBe('True');
    expect(memoryFromStatus(s.shards![0]!)).toMatchObject({
      primaryIndex: 1,
      failedOverProtected: true,
      standbyMustRejoin: true,
    });
  });
});

describe('computeStatus with backups', () => {
  const view = {
    status: {
      lastBackupTime: now.toISOString(),
      lastBackupBytes: 1234,
      lastError: '',
      target: 'directory /b',
    },
    ready: true,
    reason: 'BackupSucceeded',
    message: 'backed up 2 shard(s)',
  };
  const outcomes = [outcome(0, 'Healthy'), outcome(1, 'Healthy')];

  it('shows the last backup and a BackupReady condition with spec.backup', () => {
    const s = computeStatus({ ...base, previous: undefined, outcomes, backup: view, now });
    expect(s.backup).toEqual(view.status);
    expect(condition(s, 'BackupReady')).toMatchObject({ status: 'True', reason: 'BackupSucceeded' });
    // A failed backup is its own condition: the queue itself stays Ready.
    const failed = computeStatus({
      ...base,
      previous: s,
      outcomes,
      backup: { ...view, ready: false, reason: 'BackupFailed', message: 'target unreachable' },
      now: later,
    });
    expect(condition(failed, 'BackupReady')).toMatchObject({ status: 'False', reason: 'BackupFailed' });
    expect(condition(failed, 'Ready')).toMatchObject({ status: 'True' });
  });

  it('has no BackupReady condition without spec.backup, and drops it when spec.backup goes', () => {
    const without = computeStatus({ ...base, previous: undefined, outcomes, now });
    expect(condition(without, 'BackupReady')).toBeUndefined();
    expect(without.backup).toBeUndefined();
    const withBackup = computeStatus({ ...base, previous: undefined, outcomes, backup: view, now });
    const removed = computeStatus({ ...base, previous: withBackup, outcomes, now: later });
    expect(condition(removed, 'BackupReady')).toBeUndefined();
  });
});

describe('emptyStringsAs', () => {
  it('writes "no error" as a deleted key (the 1.20 API server refuses "") and compares it as absent', () => {
    const status = {
      phase: 'Ready',
      backup: { lastError: '', lastBackupTime: 't' },
      conditions: [{ type: 'Ready', message: '' }],
    };
    expect(emptyStringsAs(status, null)).toEqual({
      phase: 'Ready',
      backup: { lastError: null, lastBackupTime: 't' },
      conditions: [{ type: 'Ready', message: '' }],
    });
    expect(emptyStringsAs(status, undefined).backup).toEqual({ lastError: undefined, lastBackupTime: 't' });
  });
});
