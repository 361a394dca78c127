import { AGENT_PORT } from '../../agent/contract.js';
import { type ArchiveSource, type ArchivedBinlog, archiveShardBinlogs } from '../../backup/binlog-archive.js';
import { errorMessage } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import type { Credentials } from '../../shard/connection.js';
import type { Gtid } from '../../shard/gtid.js';
import type { BackupStatus, DefaultedCluster } from '../api/types.js';
import type { EventRecorder } from '../events.js';
import { MYSQL_PORT, type ShardOutcome } from '../shards/manager.js';
import { backupTargetOf } from './loop.js';

export interface BinlogArchiveLoopDeps {
  admin: Credentials;
  agentToken: string;
  readSecret(name: string): Promise<Record<string, string> | undefined>;
  events: EventRecorder;
  log: Logger;
}

/** The instance whose binlogs a shard archives: its primary, when it answers. Pure. */
export function archiveSourceOf(o: ShardOutcome): ArchiveSource | undefined {
  const primary = o.instances.find((i) => i.index === o.decision.memory.primaryIndex);
  if (!primary?.podIP || !primary.probe) return undefined;
  return {
    name: primary.podName,
    agent: `${primary.podIP}:${AGENT_PORT}`,
    endpoint: { host: primary.podIP, port: MYSQL_PORT },
  };
}

/** Whether `spec.backup` asks for binlog archiving. Pure. */
export const archivingOn = (cr: DefaultedCluster) => Boolean(cr.spec.backup?.binlogArchive);

/**
 * Binlog archiving of one cluster (point-in-time restore, docs/backup.md): every
 * `binlogArchiveIntervalSeconds`, in the background and one shard after the other, the primary's
 * current binlog is closed and every closed file not archived yet is copied through its agent to
 * the backup target. Also tells retention how far each shard's archive reaches, so no binlog is
 * purged before it is archived.
 */
export class BinlogArchiveLoop {
  private running = false;
  private lastStart = 0;
  private status: Pick<BackupStatus, 'lastBinlogArchiveTime' | 'lastBinlogArchiveError'>;
  private readonly positions = new Map<string, Gtid[]>();
  private readonly sidecars = new Map<string, ArchivedBinlog>();
  private failing?: string;
  private succeededOnce = false;

  constructor(
    private readonly deps: BinlogArchiveLoopDeps,
    previous?: BackupStatus,
  ) {
    this.status = {
      ...(previous?.lastBinlogArchiveTime ? { lastBinlogArchiveTime: previous.lastBinlogArchiveTime } : {}),
      ...(previous?.lastBinlogArchiveError
        ? { lastBinlogArchiveError: previous.lastBinlogArchiveError }
        : {}),
    };
  }

  /** Starts a run when one is due; returns at once. */
  maybeRun(cr: DefaultedCluster, outcomes: ShardOutcome[], now = Date.now()): void {
    const spec = cr.spec.backup;
    if (!spec?.binlogArchive || this.running) return;
    if (now - this.lastStart < spec.binlogArchiveIntervalSeconds * 1000) return;
    if (!outcomes.length || outcomes.some((o) => !o.decision.memory.bootstrapped)) return;
    this.running = true;
    this.lastStart = now;
    void this.run(cr, outcomes).finally(() => (this.running = false));
  }

  /**
   * Where a shard's archive reaches, for binlog purge: undefined when archiving is off, empty
   * until this operator has listed the archive (after a restart nothing is purged until then).
   */
  archivedPosition(cr: DefaultedCluster, shard: string): Gtid[] | undefined {
    if (!archivingOn(cr)) return undefined;
    return this.positions.get(shard) ?? [];
  }

  /** The fields of `status.backup` it owns (none with archiving off). */
  statusFields(cr: DefaultedCluster): Partial<BackupStatus> {
    return archivingOn(cr) ? { ...this.status } : {};
  }

  private async run(cr: DefaultedCluster, outcomes: ShardOutcome[]): Promise<void> {
    const started = new Date();
    const failures: string[] = [];
    let files = 0;
    try {
      const target = await backupTargetOf(cr, this.deps.readSecret);
      for (const o of outcomes) {
        const source = archiveSourceOf(o);
        if (!source) {
          failures.push(`${o.shard}: its primary does not answer`);
          continue;
        }
        try {
          const r = await archiveShardBinlogs({
            target,
            cluster: cr.metadata.name,
            shard: o.shard,
            source,
            admin: this.deps.admin,
            agentToken: this.deps.agentToken,
            cache: this.sidecars,
          });
          this.positions.set(o.shard, r.position);
          files += r.archived.length;
          if (r.archived.length)
            this.deps.log.info('binlogs archived', {
              shard: o.shard,
              from: source.name,
              files: r.archived.map((b) => b.file),
            });
        } catch (err) {
          failures.push(`${o.shard} (from ${source.name}): ${errorMessage(err)}`);
        }
      }
      target.close?.();
    } catch (err) {
      failures.push(errorMessage(err));
    }
    if (failures.length) {
      const message = `binlog archive failed: ${failures.join('; ')}`;
      this.status.lastBinlogArchiveError = message;
      this.deps.log.warn('binlog archive failed', { failures });
      // Once per new failure, not every interval while it lasts.
      if (message !== this.failing)
        void this.deps.events.record(cr, 'Warning', 'BinlogArchiveFailed', message, { transition: true });
      this.failing = message;
      return;
    }
    this.status = { lastBinlogArchiveTime: started.toISOString(), lastBinlogArchiveError: '' };
    // The first success, and each recovery from a failure; quiet runs in between.
    if (this.failing !== undefined || !this.succeededOnce)
      void this.deps.events.record(
        cr,
        'Normal',
        'BinlogArchived',
        `binlogs of ${outcomes.length} shard(s) archived (${files} new file(s)); a point-in-time restore can reach ${started.toISOString()}`,
        { transition: true },
      );
    this.failing = undefined;
    this.succeededOnce = true;
  }
}
