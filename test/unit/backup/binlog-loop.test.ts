import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/common/logger.js';
import { defaultCluster } from '../../../src/operator/api/defaults.js';
import type { MessageQueueClusterSpec } from '../../../src/operator/api/types.js';
import { BinlogArchiveLoop } from '../../../src/operator/backup/binlog-loop.js';
import { BackupLoop } from '../../../src/operator/backup/loop.js';
import type { EventRecorder } from '../../../src/operator/events.js';

const cluster = (backup?: MessageQueueClusterSpec['backup']) =>
  defaultCluster({
    apiVersion: 'mysqlmq.io/v1alpha1',
    kind: 'MessageQueueCluster',
    metadata: { name: 'c', namespace: 'default', uid: 'u1' },
    spec: backup ? { backup } : {},
  });
const target = { directory: { path: '/backups' } };
const deps = {
  admin: { user: 'a', password: 'p' },
  agentToken: 't',
  readSecret: async () => undefined,
  events: { record: async () => undefined } as unknown as EventRecorder,
  log: createLogger('test', 'error'),
};

describe('binlog archiving settings', () => {
  it('is on by default with spec.backup, every 300 s', () => {
    expect(cluster({ schedule: '@daily', target }).spec.backup).toMatchObject({
      binlogArchive: true,
      binlogArchiveIntervalSeconds: 300,
    });
  });

  it('holds binlog purge back until the archive was listed, and not at all when off', () => {
    const loop = new BinlogArchiveLoop(deps);
    expect(loop.archivedPosition(cluster({ schedule: '@daily', target }), 'shard-0')).toEqual([]);
    expect(
      loop.archivedPosition(cluster({ schedule: '@daily', target, binlogArchive: false }), 'shard-0'),
    ).toBeUndefined();
    expect(loop.archivedPosition(cluster(), 'shard-0')).toBeUndefined();
  });

  it('keeps its status fields across a restart, and the backup loop leaves them alone', () => {
    const previous = {
      lastBackupTime: '2026-01-05T03:00:00.000Z',
      lastBinlogArchiveTime: '2026-01-05T10:00:00.000Z',
    };
    const on = cluster({ schedule: '@daily', target });
    expect(new BinlogArchiveLoop(deps, previous).statusFields(on)).toEqual({
      lastBinlogArchiveTime: '2026-01-05T10:00:00.000Z',
    });
    expect(new BackupLoop(deps, previous).view(on)!.status).not.toHaveProperty('lastBinlogArchiveTime');
    expect(
      new BinlogArchiveLoop(deps, previous).statusFields(
        cluster({ ...on.spec.backup!, binlogArchive: false }),
      ),
    ).toEqual({});
  });
});
