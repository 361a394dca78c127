import { Counter, Gauge, type Registry } from 'prom-client';
import { errorMessage } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import type { Credentials } from '../../shard/connection.js';
import type { Gtid } from '../../shard/gtid.js';
import type { DefaultedCluster } from '../api/types.js';
import type { EventRecorder } from '../events.js';
import { MYSQL_PORT, type ShardOutcome } from '../shards/manager.js';
import { standbyBehindPurge } from './binlog-policy.js';
import {
  DEFAULT_PACING,
  type RetentionPacing,
  type RetentionPolicy,
  type RetentionShard,
  RetentionJob,
  type ShardRetentionReport,
} from './job.js';
import { HOUR_MS } from './policy.js';

/** What status and the shard's message show about retention (see `ShardStatus`). */
export interface ShardRetentionView {
  /** Why the standby cannot follow: binlogs it needs were purged. */
  standbyBehindPurge?: string;
  binlogBytes?: number;
  oldestMessageAgeSeconds?: number;
  error?: string;
}

export type RetentionMetrics = ReturnType<typeof retentionMetrics>;

/**
 * On the operator's /metrics rather than the brokers': the operator is the one process that reads
 * every shard with admin rights (binlog sizes need them), once per pass, whereas N stateless brokers
 * would each report the same table sizes.
 */
export function retentionMetrics(registry: Registry) {
  const registers = [registry];
  const topicLabels = ['namespace', 'cluster', 'shard', 'topic'] as const;
  const shardLabels = ['namespace', 'cluster', 'shard'] as const;
  return {
    topicRows: new Gauge({
      name: 'mysqlmq_topic_rows',
      help: 'Messages a shard holds for a topic (from its id range, at the last retention pass)',
      labelNames: topicLabels,
      registers,
    }),
    topicBytes: new Gauge({
      name: 'mysqlmq_topic_bytes',
      help: "Bytes a topic's message table takes on a shard's primary (InnoDB data and index pages)",
      labelNames: topicLabels,
      registers,
    }),
    topicOldestAge: new Gauge({
      name: 'mysqlmq_topic_oldest_message_age_seconds',
      help: 'Age of the oldest message a shard keeps for a topic',
      labelNames: topicLabels,
      registers,
    }),
    deleted: new Counter({
      name: 'mysqlmq_retention_deleted_messages_total',
      help: 'Messages deleted by retention (age or size limit)',
      labelNames: topicLabels,
      registers,
    }),
    binlogBytes: new Gauge({
      name: 'mysqlmq_binlog_bytes',
      help: 'Binary log bytes on an instance',
      labelNames: [...shardLabels, 'instance'] as const,
      registers,
    }),
    binlogFiles: new Gauge({
      name: 'mysqlmq_binlog_files',
      help: 'Binary log files on an instance',
      labelNames: [...shardLabels, 'instance'] as const,
      registers,
    }),
    errors: new Counter({
      name: 'mysqlmq_retention_errors_total',
      help: 'Retention passes or binlog purges that failed on a shard',
      labelNames: shardLabels,
      registers,
    }),
    standbyBehindPurge: new Gauge({
      name: 'mysqlmq_standby_behind_binlog_purge',
      help: "1 when a shard's standby needs binlogs its primary purged (it must be rebuilt)",
      labelNames: shardLabels,
      registers,
    }),
  };
}

export interface RetentionLoopDeps {
  admin: Credentials;
  events: EventRecorder;
  metrics: RetentionMetrics;
  log: Logger;
  pacing?: RetentionPacing;
  /** Where a shard's binlog archive reaches when archiving is on (no purge past it). */
  archivedPosition?(cr: DefaultedCluster, shard: string): Gtid[] | undefined;
}

export function retentionPolicyOf(cr: DefaultedCluster): RetentionPolicy {
  const r = cr.spec.retention;
  return {
    maxAgeMs: r.maxAgeHours * HOUR_MS,
    ...(r.maxBytesPerShard ? { maxBytesPerShard: r.maxBytesPerShard } : {}),
    binlogMinAgeMs: r.binlogMinAgeHours * HOUR_MS,
  };
}

/**
 * Retention for one cluster, driven by the shard loop's ticks but never holding them up: a pass
 * starts when `intervalSeconds` have gone by since the last one began and runs in the background,
 * one shard after the other. Deletes go to the primary only while it takes writes (they replicate
 * to the standby like any write); binlogs are purged on both instances.
 */
export class RetentionLoop {
  private readonly job: RetentionJob;
  private readonly reports = new Map<string, ShardRetentionReport>();
  private readonly behind = new Map<string, string>();
  private running = false;
  private lastStart = 0;

  constructor(private readonly deps: RetentionLoopDeps) {
    this.job = new RetentionJob(deps.admin, deps.log, deps.pacing ?? DEFAULT_PACING);
  }

  /** Starts a pass when one is due; returns at once. */
  maybeRun(cr: DefaultedCluster, outcomes: ShardOutcome[], now = Date.now()): void {
    if (this.running || now - this.lastStart < cr.spec.retention.intervalSeconds * 1000) return;
    this.running = true;
    this.lastStart = now;
    void this.pass(cr, outcomes).finally(() => (this.running = false));
  }

  /** The last pass's results and this tick's purge check, for status; Events on a change. */
  annotate(cr: DefaultedCluster, outcomes: ShardOutcome[]): ShardOutcome[] {
    return outcomes.map((o) => {
      const report = this.reports.get(o.shard);
      const primary = o.instances.find((i) => i.index === o.decision.memory.primaryIndex)!;
      const standby = o.instances.find((i) => i.index !== o.decision.memory.primaryIndex)!;
      const primaryBinlogs = report?.binlogs.find((b) => b.instance === primary.podName);
      const reason = o.decision.memory.bootstrapped
        ? standbyBehindPurge(
            primaryBinlogs?.oldestStartState,
            standby.probe?.gtidCurrentPos,
            standby.probe?.replica,
          )
        : undefined;
      this.noteBehind(cr, o.shard, standby.podName, primary.podName, reason);
      const ages = (report?.topics ?? [])
        .map((t) => t.oldestAgeSeconds)
        .filter((a): a is number => a !== null);
      const errors = [
        report?.error,
        ...(report?.binlogs ?? []).map((b) => b.error && `${b.instance}: ${b.error}`),
      ];
      const error = errors.filter(Boolean).join('; ');
      const view: ShardRetentionView = {
        ...(reason
          ? { standbyBehindPurge: `standby ${standby.podName} cannot follow ${primary.podName}: ${reason}` }
          : {}),
        ...(primaryBinlogs && !primaryBinlogs.error ? { binlogBytes: primaryBinlogs.bytes } : {}),
        ...(ages.length ? { oldestMessageAgeSeconds: Math.round(Math.max(...ages)) } : {}),
        ...(error ? { error } : {}),
      };
      return { ...o, retention: view };
    });
  }

  private noteBehind(
    cr: DefaultedCluster,
    shard: string,
    standby: string,
    primary: string,
    reason?: string,
  ): void {
    const labels = { namespace: cr.metadata.namespace, cluster: cr.metadata.name, shard };
    this.deps.metrics.standbyBehindPurge.set(labels, reason ? 1 : 0);
    if (!reason) {
      this.behind.delete(shard);
      return;
    }
    if (this.behind.has(shard)) return;
    this.behind.set(shard, reason);
    void this.deps.events.record(
      cr,
      'Warning',
      'StandbyBehindBinlogPurge',
      `${shard}: standby ${standby} needs binlogs ${primary} no longer has (${reason}); it cannot catch up by replication and must be rebuilt from ${primary}`,
      { transition: true },
    );
  }

  private async pass(cr: DefaultedCluster, outcomes: ShardOutcome[]): Promise<void> {
    const policy = retentionPolicyOf(cr);
    for (const o of outcomes) {
      if (!o.decision.memory.bootstrapped) continue;
      const labels = { namespace: cr.metadata.namespace, cluster: cr.metadata.name, shard: o.shard };
      try {
        const report = await this.job.run(
          targetOf(o),
          policy,
          Date.now(),
          this.deps.archivedPosition?.(cr, o.shard),
        );
        this.reports.set(o.shard, report);
        this.record(labels, report);
        const failures = [
          report.error,
          ...report.binlogs.map((b) => b.error && `${b.instance}: ${b.error}`),
        ].filter(Boolean);
        if (failures.length) {
          this.deps.metrics.errors.inc(labels);
          void this.deps.events.record(
            cr,
            'Warning',
            'RetentionFailed',
            `${o.shard}: ${failures.join('; ')}`,
          );
        }
      } catch (err) {
        this.deps.metrics.errors.inc(labels);
        this.deps.log.warn('retention pass failed', { shard: o.shard, error: errorMessage(err) });
      }
    }
  }

  private record(
    labels: { namespace: string; cluster: string; shard: string },
    report: ShardRetentionReport,
  ): void {
    const m = this.deps.metrics;
    for (const t of report.topics) {
      const l = { ...labels, topic: t.topic };
      m.topicRows.set(l, t.rows);
      m.topicBytes.set(l, t.diskBytes);
      if (t.oldestAgeSeconds !== null) m.topicOldestAge.set(l, t.oldestAgeSeconds);
      else m.topicOldestAge.remove(l);
      if (t.deleted) m.deleted.inc(l, t.deleted);
    }
    for (const b of report.binlogs) {
      if (b.error) continue;
      m.binlogBytes.set({ ...labels, instance: b.instance }, b.bytes);
      m.binlogFiles.set({ ...labels, instance: b.instance }, b.files);
    }
    if (report.topics.some((t) => t.deleted)) {
      this.deps.log.info('retention deleted messages', {
        shard: report.shard,
        topics: report.topics.filter((t) => t.deleted).map((t) => `${t.topic}: ${t.deleted}`),
        behind: report.behind,
      });
    }
  }
}

function targetOf(o: ShardOutcome): RetentionShard {
  const primaryIndex = o.decision.memory.primaryIndex;
  const view = (index: number) => {
    const i = o.instances.find((x) => x.index === index)!;
    return {
      name: i.podName,
      endpoint: i.podIP ? { host: i.podIP, port: MYSQL_PORT } : null,
      ...(i.probe ? { position: i.probe.gtidCurrentPos } : {}),
    };
  };
  return {
    shard: o.shard,
    writablePrimary: o.route.write,
    instances: [view(primaryIndex), view(1 - primaryIndex)],
  };
}
