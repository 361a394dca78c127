import { describe, expect, it } from 'vitest';
import type { ReplicaStatus } from '../../../src/shard/probe.js';
import { BackupLoop, backupSourceOf } from '../../../src/operator/backup/loop.js';
import { defaultCluster } from '../../../src/operator/api/defaults.js';
import type { DefaultedCluster } from '../../../src/operator/api/types.js';
import type { EventRecorder } from '../../../src/operator/events.js';
import type { ShardOutcome } from '../../../src/operator/shards/manager.js';
import { createLogger } from '../../../src/common/logger.js';

const replica = (running: boolean): ReplicaStatus => ({
  sourceHost: '10.0.0.1',
  sourcePort: 3306,
  ioRunning: running,
  sqlRunning: running,
  secondsBehind: 0,
  lastError: '',
});

/** A shard whose primary is instance `primaryIndex`; `standby`: whether its standby replicates. */
function shard(
  primaryIndex: number,
  standby: 'replicating' | 'stopped' | 'gone',
  primaryUp = true,
): ShardOutcome {
  const probe = (replicating?: boolean) => ({
    readOnly: replicating !== undefined,
    serverId: 1,
    gtidBinlogPos: [],
    gtidCurrentPos: [],
    gtidBinlogState: [],
    semiSyncPrimaryEnabled: true,
    semiSyncPrimaryActive: true,
    semiSyncStandbys: 1,
    ...(replicating !== undefined ? { replica: replica(replicating) } : {}),
  });
  const instance = (index: number) => {
    const isPrimary = index === primaryIndex;
    const up = isPrimary ? primaryUp : standby !== 'gone';
    return {
      index,
      podName: `c-shard-0-${index}`,
      ...(up ? { podIP: `10.0.0.${index + 1}` } : {}),
      podReady: up,
      deleting: false,
      ...(up ? { probe: probe(isPrimary ? undefined : standby === 'replicating') } : {}),
    };
  };
  return {
    shard: 'shard-0',
    instances: [instance(0), instance(1)],
    decision: { memory: { primaryIndex, bootstrapped: true } },
  } as unknown as ShardOutcome;
}

describe('which instance a shard is backed up from', () => {
  it('its standby while it replicates, so the copy does not load the instance taking writes', () => {
    expect(backupSourceOf(shard(0, 'replicating'))).toEqual({
      name: 'c-shard-0-1',
      role: 'standby',
      agent: '10.0.0.2:9080',
      endpoint: { host: '10.0.0.2', port: 3306 },
    });
    expect(backupSourceOf(shard(1, 'replicating'))).toMatchObject({ name: 'c-shard-0-0', role: 'standby' });
  });

  it('its primary when the standby is gone or does not replicate; nothing when neither answers', () => {
    expect(backupSourceOf(shard(0, 'gone'))).toMatchObject({ name: 'c-shard-0-0', role: 'primary' });
    expect(backupSourceOf(shard(0, 'stopped'))).toMatchObject({ name: 'c-shard-0-0', role: 'primary' });
    expect(backupSourceOf(shard(0, 'gone', false))).toBeUndefined();
  });
});

describe('the backup schedule of a cluster', () => {
  const cluster = (schedule?: string): DefaultedCluster =>
    defaultCluster({
      apiVersion: 'mysqlmq.io/v1alpha1',
      kind: 'MessageQueueCluster',
      metadata: { name: 'c', namespace: 'default', uid: 'u1' },
      spec: schedule ? { backup: { schedule, target: { directory: { path: '/backups' } } } } : {},
    });
  const events: { type: string; reason: string; message: string }[] = [];
  const recorder = {
    record: async (_cr: unknown, type: string, reason: string, message: string) => {
      events.push({ type, reason, message });
    },
  } as unknown as EventRecorder;
  const loop = () =>
    new BackupLoop({
      admin: { user: 'a', password: 'p' },
      agentToken: 't',
      readSecret: async () => undefined,
      events: recorder,
      log: createLogger('test', 'error'),
    });

  it('a cluster without spec.backup has no backup status at all', () => {
    const l = loop();
    l.maybeRun(cluster(), [shard(0, 'replicating')]);
    expect(l.view(cluster())).toBeUndefined();
  });

  it('a bad schedule is a condition and a Warning Event, not a crash, and a fixed one clears it', () => {
    events.length = 0;
    const l = loop();
    const bad = cluster('every night');
    l.maybeRun(bad, [shard(0, 'replicating')], new Date('2026-01-05T00:00:00Z'));
    expect(l.view(bad)).toMatchObject({ ready: false, reason: 'InvalidSchedule' });
    expect(l.view(bad)!.message).toMatch(/spec.backup.schedule: schedule "every night" has 2 field/);
    expect(events).toEqual([expect.objectContaining({ type: 'Warning', reason: 'BackupScheduleInvalid' })]);

    const good = cluster('0 3 * * *');
    l.maybeRun(good, [shard(0, 'replicating')], new Date('2026-01-05T00:00:00Z'));
    expect(l.view(good)).toMatchObject({
      ready: false,
      reason: 'NoBackupYet',
      status: { nextBackupTime: '2026-01-05T03:00:00.000Z' },
    });
  });
});
