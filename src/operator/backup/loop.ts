import { AGENT_PORT } from '../../agent/contract.js';
import { type BackupSourceInstance, backupShard } from '../../backup/shard-backup.js';
import type { BackupTarget } from '../../backup/target.js';
import { s3CredentialsFromSecret, targetOf } from '../../backup/target-spec.js';
import { errorMessage } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import type { Credentials } from '../../shard/connection.js';
import type { BackupStatus, DefaultedCluster } from '../api/types.js';
import type { EventRecorder } from '../events.js';
import { MYSQL_PORT, type ShardOutcome } from '../shards/manager.js';
import { parseSchedule } from './schedule.js';

/** What status shows: `status.backup` and the `BackupReady` condition. */
export interface BackupView {
  status: BackupStatus;
  ready: boolean;
  reason: string;
  message: string;
}

export interface BackupLoopDeps {
  admin: Credentials;
  agentToken: string;
  /** A Secret's `data` in the cluster's namespace; undefined when it does not exist. */
  readSecret(name: string): Promise<Record<string, string> | undefined>;
  events: EventRecorder;
  log: Logger;
}

/**
 * The instance a shard is backed up from: its standby while it replicates (the copy's disk reads
 * and CPU stay off the instance that takes the writes), else its primary; undefined when neither
 * answers. Pure.
 */
export function backupSourceOf(o: ShardOutcome): BackupSourceInstance | undefined {
  const primaryIndex = o.decision.memory.primaryIndex;
  const at = (index: number) => o.instances.find((i) => i.index === index);
  const standby = at(1 - primaryIndex);
  const primary = at(primaryIndex);
  const replicating = standby?.probe?.replica?.ioRunning && standby.probe.replica.sqlRunning;
  const chosen =
    standby?.podIP && replicating ? standby : primary?.podIP && primary.probe ? primary : undefined;
  if (!chosen) return undefined;
  return {
    name: chosen.podName,
    role: chosen === standby ? 'standby' : 'primary',
    agent: `${chosen.podIP}:${AGENT_PORT}`,
    endpoint: { host: chosen.podIP!, port: MYSQL_PORT },
  };
}

const MiB = 1024 * 1024;

/** The target `spec.backup.target` names, with S3 credentials from its Secret. */
export async function backupTargetOf(
  cr: DefaultedCluster,
  readSecret: (name: string) => Promise<Record<string, string> | undefined>,
): Promise<BackupTarget> {
  const t = cr.spec.backup!.target;
  const secretName = t.s3?.credentialsSecret;
  if (!secretName) return targetOf(t);
  const data = await readSecret(secretName);
  if (!data) throw new Error(`Secret ${secretName} (spec.backup.target.s3.credentialsSecret) does not exist`);
  const credentials = s3CredentialsFromSecret(secretName, data);
  if (typeof credentials === 'string') throw new Error(credentials);
  return targetOf(t, credentials);
}

/**
 * Scheduled full backups of one cluster, driven by the shard loop's ticks but never holding them
 * up: when the schedule is due, every shard is backed up one after the other in the background,
 * streamed from an instance's agent through the operator into the target. The data plane never
 * waits on it; a failure is status, a condition and an Event, and the next run is the next
 * scheduled time.
 */
export class BackupLoop {
  private running = false;
  private scheduleText?: string;
  private nextAt?: Date;
  private status: BackupStatus;
  private result?: { ok: boolean; reason: string; message: string };

  constructor(
    private readonly deps: BackupLoopDeps,
    previous?: BackupStatus,
  ) {
    // The binlog archive fields belong to BinlogArchiveLoop.
    this.status = { ...previous };
    delete this.status.lastBinlogArchiveTime;
    delete this.status.lastBinlogArchiveError;
  }

  /** Starts a run when one is due; returns at once. */
  maybeRun(cr: DefaultedCluster, outcomes: ShardOutcome[], now = new Date()): void {
    const spec = cr.spec.backup;
    if (!spec) return;
    const schedule = parseSchedule(spec.schedule);
    if (spec.schedule !== this.scheduleText) {
      this.scheduleText = spec.schedule;
      this.nextAt = undefined;
      if (!schedule.ok) {
        this.result = {
          ok: false,
          reason: 'InvalidSchedule',
          message: `spec.backup.schedule: ${schedule.error}`,
        };
        void this.deps.events.record(cr, 'Warning', 'BackupScheduleInvalid', this.result.message, {
          transition: true,
        });
      } else if (this.result?.reason === 'InvalidSchedule') {
        this.result = undefined;
      }
    }
    if (!schedule.ok) return;
    // A restarted operator resumes from the last backup: one missed while it was down runs now.
    if (!this.nextAt) {
      const last = this.status.lastBackupTime ? new Date(this.status.lastBackupTime) : now;
      this.nextAt = schedule.next(last) ?? undefined;
    }
    if (this.running || !this.nextAt || now < this.nextAt) return;
    // A cluster still being created has nothing to back up yet: wait for its shards.
    if (!outcomes.length || outcomes.some((o) => !o.decision.memory.bootstrapped)) return;
    this.running = true;
    this.nextAt = schedule.next(now) ?? undefined;
    void this.run(cr, outcomes, now).finally(() => (this.running = false));
  }

  /** Status and condition, for a cluster with `spec.backup`. */
  view(cr: DefaultedCluster): BackupView | undefined {
    const spec = cr.spec.backup;
    if (!spec) return undefined;
    const status: BackupStatus = {
      ...this.status,
      ...(this.nextAt ? { nextBackupTime: this.nextAt.toISOString() } : {}),
    };
    if (this.result)
      return { status, ready: this.result.ok, reason: this.result.reason, message: this.result.message };
    if (this.status.lastBackupTime && !this.status.lastError)
      return {
        status,
        ready: true,
        reason: 'BackupSucceeded',
        message: `last backup ${this.status.lastBackupTime}`,
      };
    return {
      status,
      ready: false,
      reason: this.running ? 'BackupRunning' : 'NoBackupYet',
      message: this.running
        ? 'the first backup is running'
        : `no backup yet; the first runs at ${status.nextBackupTime ?? 'the next scheduled time'}`,
    };
  }

  private async run(cr: DefaultedCluster, outcomes: ShardOutcome[], started: Date): Promise<void> {
    const spec = cr.spec.backup!;
    const failures: string[] = [];
    let bytes = 0;
    let description = '';
    try {
      const target = await backupTargetOf(cr, this.deps.readSecret);
      description = target.description;
      this.status.target = description;
      for (const o of outcomes) {
        const source = backupSourceOf(o);
        if (!source) {
          failures.push(`${o.shard}: neither instance answers`);
          continue;
        }
        try {
          const r = await backupShard({
            target,
            cluster: cr.metadata.name,
            shard: o.shard,
            source,
            admin: this.deps.admin,
            agentToken: this.deps.agentToken,
            keep: spec.keep,
            now: started,
          });
          bytes += r.manifest.bytes;
          this.deps.log.info('shard backed up', {
            shard: o.shard,
            from: source.name,
            role: source.role,
            bytes: r.manifest.bytes,
            key: r.prefix,
            pruned: r.pruned.length,
          });
        } catch (err) {
          failures.push(`${o.shard} (from ${source.name}): ${errorMessage(err)}`);
        }
      }
      target.close?.();
    } catch (err) {
      failures.push(errorMessage(err));
    }
    const seconds = Math.round((Date.now() - started.getTime()) / 1000);
    if (failures.length) {
      const message = `backup to ${description || 'the target'} failed: ${failures.join('; ')}`;
      this.status.lastError = message;
      this.result = { ok: false, reason: 'BackupFailed', message };
      this.deps.log.warn('backup failed', { failures });
      void this.deps.events.record(cr, 'Warning', 'BackupFailed', message, { transition: true });
      return;
    }
    this.status = {
      ...this.status,
      lastBackupTime: started.toISOString(),
      lastBackupBytes: bytes,
      lastError: '',
    };
    const message = `backed up ${outcomes.length} shard(s), ${(bytes / MiB).toFixed(1)} MiB, to ${description} in ${seconds} s`;
    this.result = { ok: true, reason: 'BackupSucceeded', message };
    void this.deps.events.record(cr, 'Normal', 'BackupSucceeded', message, { transition: true });
  }
}
