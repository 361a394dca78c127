import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { AGENT_PORT } from '../agent/contract.js';
import type { RoutingDocument } from '../api/routing.js';
import { errorMessage } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { ShardSecrets } from '../shard/bootstrap.js';
import { ANNOTATION_SWITCHOVER, type DefaultedCluster, type SwitchoverStatus } from './api/types.js';
import { DeadLetterWatch } from './dead-letters/watch.js';
import type { EventRecorder, EventSubject } from './events.js';
import { agentToken } from '../agent/token.js';
import { BinlogArchiveLoop } from './backup/binlog-loop.js';
import { BackupLoop, type BackupView } from './backup/loop.js';
import { RetentionLoop, retentionMetrics } from './retention/loop.js';
import { names } from './desired/meta.js';
import type { ShardMemory, SwitchoverRequest } from './shards/decide.js';
import { ShardManager, type ShardOutcome, nextRoutingVersion, routingDocument } from './shards/manager.js';
import { type PodLike, observeShards } from './shards/observe.js';
import { type BrokerTlsTrust, pushRouting } from './shards/routing-publisher.js';
import { memoryFromStatus, shardStatusOf } from './status.js';

export interface ClusterLoopDeps {
  /** The cluster as the cache has it now (undefined once deleted). */
  cluster(): DefaultedCluster | undefined;
  mysqlPods(): PodLike[];
  /** Base URLs of the cluster's broker pods that have an IP (https:// when they serve TLS). */
  brokerUrls(): string[];
  /** How to verify brokers that serve HTTPS; undefined: they serve plain HTTP. */
  brokerTls(): BrokerTlsTrust | undefined;
  secrets: ShardSecrets;
  adminToken: string;
  /** The routing document last published (the routing ConfigMap), so a restart does not republish it. */
  publishedRouting?: RoutingDocument;
  /** Asks the reconciler to write status and the routing ConfigMap. */
  changed(): void;
  /** Nodes marked unschedulable: a primary there is switched over to its standby elsewhere. */
  cordonedNodes(): Set<string>;
  /** A Secret's `data` in the cluster's namespace (backup target credentials); undefined if absent. */
  readSecret(name: string): Promise<Record<string, string> | undefined>;
  /** Removes the switchover annotation once the switchover it asked for is over (either way). */
  clearSwitchoverRequest(): Promise<void>;
  events: EventRecorder;
  /** The MessageQueueTopic of a topic of this cluster, if one exists (dead-letter Events go there). */
  topicResource(topic: string): EventSubject | undefined;
  metrics: ClusterLoopMetrics;
  log: Logger;
}

export type ClusterLoopMetrics = ReturnType<typeof clusterLoopMetrics>;

export function clusterLoopMetrics(registry: Registry) {
  const registers = [registry];
  const labelNames = ['namespace', 'cluster', 'shard'] as const;
  return {
    failovers: new Counter({
      name: 'mysqlmq_failovers_total',
      help: 'Shards whose reads moved to the standby because the primary failed',
      labelNames,
      registers,
    }),
    failoverSeconds: new Histogram({
      name: 'mysqlmq_failover_duration_seconds',
      help: 'From the first observation of a failed primary to brokers routing reads to the standby',
      labelNames,
      buckets: [0.25, 0.5, 1, 2, 3, 5, 10, 30],
      registers,
    }),
    promotions: new Counter({
      name: 'mysqlmq_promotions_total',
      help: 'Standbys made the primary of their shard because the primary stayed down (promoteForWrites)',
      labelNames,
      registers,
    }),
    shardWritable: new Gauge({
      name: 'mysqlmq_shard_writable',
      help: '1 when the shard takes writes',
      labelNames,
      registers,
    }),
    shardReadable: new Gauge({
      name: 'mysqlmq_shard_readable',
      help: '1 when the shard serves reads (from its primary or its standby)',
      labelNames,
      registers,
    }),
    shardProtected: new Gauge({
      name: 'mysqlmq_shard_standby_acknowledging',
      help: '1 when the primary has a semi-sync standby acknowledging its commits',
      labelNames,
      registers,
    }),
    shardLag: new Gauge({
      name: 'mysqlmq_shard_replication_lag_transactions',
      help: 'Transactions the standby has not applied yet',
      labelNames,
      registers,
    }),
    switchovers: new Counter({
      name: 'mysqlmq_switchovers_total',
      help: 'Planned switchovers by result (Succeeded, Failed)',
      labelNames: ['namespace', 'cluster', 'shard', 'result'] as const,
      registers,
    }),
    switchoverWritesPaused: new Histogram({
      name: 'mysqlmq_switchover_writes_paused_seconds',
      help: 'How long a switched-over shard took no writes (its writes went to the other shards)',
      labelNames,
      buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10],
      registers,
    }),
    routingPushFailures: new Counter({
      name: 'mysqlmq_routing_push_failures_total',
      help: 'Routing pushes a broker did not accept',
      labelNames: ['namespace', 'cluster'] as const,
      registers,
    }),
    retention: retentionMetrics(registry),
  };
}

/**
 * The MySQL side of one cluster, on its own timer (every `probePeriodSeconds`): probe, decide, act,
 * and push routing to the brokers the moment it changes. The Kubernetes reconcile never waits on it;
 * it reads `latest` when it writes status.
 */
export class ClusterLoop {
  private readonly manager: ShardManager;
  private readonly retention: RetentionLoop;
  private readonly deadLetters: DeadLetterWatch;
  private readonly backup: BackupLoop;
  private readonly binlogArchive: BinlogArchiveLoop;
  private timer?: NodeJS.Timeout;
  private running = false;
  private stopped = false;
  private outcomes?: ShardOutcome[];
  /** When the pods behind `outcomes` were observed (ms since the epoch). */
  private observedAt = 0;
  private routing: RoutingDocument;
  private lastPushedVersion = -1;
  private ticks = 0;
  private readonly firstBadAt = new Map<string, number>();
  private lastSummary = '';
  /** The switchover annotation value already handled, ignored until the annotation changes. */
  private handledSwitchover?: string;
  /** When the routing that paused a shard's writes for a switchover was pushed. */
  private writesPausedAt?: number;
  private lastSwitchover?: SwitchoverStatus;
  /** What asked for the switchover under way: the annotation or a cordoned node. */
  private switchoverRequestedBy: 'annotation' | 'drain' = 'annotation';
  /** Per shard: when a switchover for a drain was last refused (tried again after a while). */
  private readonly drainRefusedAt = new Map<string, number>();
  private failoverCount: number;
  private backupView?: BackupView;

  constructor(private readonly deps: ClusterLoopDeps) {
    this.manager = new ShardManager(deps.secrets, deps.log, 2000);
    this.retention = new RetentionLoop({
      admin: deps.secrets.admin,
      events: deps.events,
      metrics: deps.metrics.retention,
      log: deps.log,
      archivedPosition: (cr, shard) => this.binlogArchive.archivedPosition(cr, shard),
    });
    this.deadLetters = new DeadLetterWatch({
      admin: deps.secrets.admin,
      events: deps.events,
      topicResource: deps.topicResource,
      log: deps.log,
    });
    const cr = deps.cluster();
    const backupDeps = {
      admin: deps.secrets.admin,
      agentToken: agentToken(deps.secrets.admin.password),
      readSecret: deps.readSecret,
      events: deps.events,
      log: deps.log,
    };
    this.backup = new BackupLoop(backupDeps, cr?.status?.backup);
    this.binlogArchive = new BinlogArchiveLoop(backupDeps, cr?.status?.backup);
    for (const s of cr?.status?.shards ?? []) this.manager.remember(s.name, memoryFromStatus(s));
    this.routing = deps.publishedRouting ?? { version: cr?.status?.routingVersion ?? 0, shards: [] };
    this.failoverCount = cr?.status?.failoverCount ?? 0;
  }

  get latest(): {
    outcomes?: ShardOutcome[];
    observedAt: number;
    routing: RoutingDocument;
    lastSwitchover?: SwitchoverStatus;
    failoverCount: number;
    backup?: BackupView;
  } {
    return {
      outcomes: this.outcomes,
      observedAt: this.observedAt,
      routing: this.routing,
      lastSwitchover: this.lastSwitchover,
      failoverCount: this.failoverCount,
      backup: this.backupView,
    };
  }

  /** What the next reconcile should see about a shard before the first tick finished. */
  primaryIndexOf(shard: string): number {
    return this.manager.memoryOf(shard).primaryIndex;
  }

  /** What the shard loop remembers of a shard (bootstrapped, a rebuild in progress). */
  memoryOf(shard: string): ShardMemory {
    return this.manager.memoryOf(shard);
  }

  start(): void {
    if (this.running || this.stopped) return;
    this.running = true;
    void this.loop();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      const cr = this.deps.cluster();
      if (!cr) return;
      const started = Date.now();
      try {
        await this.tick(cr);
      } catch (err) {
        this.deps.log.error('shard loop tick failed', {
          cluster: cr.metadata.name,
          error: errorMessage(err),
        });
      }
      // A shard out of the write rotation for a switchover is switched at once, not a period later.
      const wait = this.manager.switchoverPending()
        ? 0
        : Math.max(0, cr.spec.failover.probePeriodSeconds * 1000 - (Date.now() - started));
      await new Promise<void>((resolve) => (this.timer = setTimeout(resolve, wait)));
    }
  }

  private async tick(cr: DefaultedCluster): Promise<void> {
    const spec = cr.spec;
    const observedAt = Date.now();
    const observed = observeShards(cr.metadata.name, spec.shards, this.deps.mysqlPods());
    const now = new Date();
    const requested = this.switchoverRequest(
      cr,
      observed.map((o) => o.name),
    );
    const decided = await this.manager.tick(
      observed,
      {
        durability: spec.mysql.durability,
        failureThreshold: spec.failover.failureThreshold,
        promoteStandbyForReads: spec.failover.promoteStandbyForReads,
        promoteForWritesAfterMs: spec.failover.promoteForWrites
          ? spec.failover.promoteForWritesDelaySeconds * 1000
          : null,
        semiSyncTimeoutMs: spec.mysql.semiSyncTimeoutSeconds * 1000,
        cloneAgentPort: AGENT_PORT,
      },
      now,
      requested,
    );
    this.retention.maybeRun(cr, decided);
    this.deadLetters.maybeRun(cr, decided);
    this.backup.maybeRun(cr, decided);
    this.binlogArchive.maybeRun(cr, decided);
    const backupView = this.backup.view(cr);
    this.backupView = backupView && {
      ...backupView,
      status: { ...backupView.status, ...this.binlogArchive.statusFields(cr) },
    };
    const outcomes = this.retention.annotate(cr, decided);
    this.outcomes = outcomes;
    this.observedAt = observedAt;
    const labels = (shard: string) => ({
      namespace: cr.metadata.namespace,
      cluster: cr.metadata.name,
      shard,
    });
    for (const o of outcomes) {
      // The state machine's events describe what its actions did: when an action failed, report
      // the failure instead (repeats of the same failure are deduplicated).
      if (o.actionError) {
        void this.deps.events.record(cr, 'Warning', 'ShardActionFailed', `${o.shard}: ${o.actionError}`);
      } else {
        for (const e of o.decision.events) {
          void this.deps.events.record(cr, e.type, e.reason, e.message, { transition: true });
          if (e.reason === 'PromotedForWrites') this.deps.metrics.promotions.inc(labels(o.shard));
          if (FAILOVER_REASONS.has(e.reason)) this.failoverCount++;
        }
      }
      const primary = o.instances.find((i) => i.index === o.decision.memory.primaryIndex);
      const bad = !primary?.probe || !primary.podReady;
      if (bad && !this.firstBadAt.has(o.shard)) this.firstBadAt.set(o.shard, now.getTime());
      if (!bad && o.decision.memory.readsFrom === 'primary') this.firstBadAt.delete(o.shard);
      this.deps.metrics.shardWritable.set(labels(o.shard), o.route.write ? 1 : 0);
      this.deps.metrics.shardReadable.set(labels(o.shard), o.route.read ? 1 : 0);
      this.deps.metrics.shardProtected.set(labels(o.shard), o.decision.semiSync === 'active' ? 1 : 0);
      if (o.decision.lagTransactions !== null)
        this.deps.metrics.shardLag.set(labels(o.shard), o.decision.lagTransactions);
    }

    const routes = outcomes.map((o) => o.route);
    const routesChanged = JSON.stringify(routes) !== JSON.stringify(this.routing.shards);
    if (routesChanged) {
      this.routing = routingDocument(outcomes, nextRoutingVersion(this.routing.version));
      this.deps.log.info('routing changed', {
        version: this.routing.version,
        shards: this.routing.shards.map(
          (r) => `${r.name} write=${r.write?.host ?? '-'} read=${r.read?.host ?? '-'}`,
        ),
      });
    }
    // Push on every change, and now and then regardless: a broker that restarted or missed a push
    // catches up (brokers ignore a version they already have).
    const pushStartedAt = Date.now();
    if (routesChanged || this.ticks++ % 10 === 0 || this.lastPushedVersion !== this.routing.version) {
      const urls = this.deps.brokerUrls();
      const results = await pushRouting(
        urls,
        this.routing,
        this.deps.adminToken,
        1000,
        this.deps.brokerTls(),
      );
      const failed = results.filter((r) => !r.ok);
      if (failed.length) {
        this.deps.metrics.routingPushFailures.inc(
          { namespace: cr.metadata.namespace, cluster: cr.metadata.name },
          failed.length,
        );
        this.deps.log.warn('routing push failed', {
          cluster: cr.metadata.name,
          failed: failed.map((f) => `${f.url}: ${f.error}`),
        });
      } else {
        this.lastPushedVersion = this.routing.version;
      }
    }
    if (this.manager.switchoverPending() && this.writesPausedAt === undefined) {
      this.writesPausedAt = pushStartedAt;
    }
    for (const o of outcomes) if (o.decision.switchover) this.finishSwitchover(cr, o);
    if (routesChanged) {
      for (const o of outcomes) {
        const since = this.firstBadAt.get(o.shard);
        if (o.decision.events.some((e) => e.reason === 'FailedOver') && since !== undefined) {
          this.deps.metrics.failovers.inc(labels(o.shard));
          this.deps.metrics.failoverSeconds.observe(labels(o.shard), (Date.now() - since) / 1000);
        }
      }
    }
    // Lag moves every tick under load; it reaches status with the periodic reconcile instead.
    const summary = JSON.stringify([
      this.routing.version,
      this.lastSwitchover,
      this.failoverCount,
      this.backupView,
      outcomes.map((o) => ({ ...shardStatusOf(o), replicationLagSeconds: null, lagTransactions: null })),
    ]);
    if (summary !== this.lastSummary) {
      this.lastSummary = summary;
      this.deps.changed();
    }
  }

  /**
   * Which shard a switchover is asked for (the annotation), and whether the other shards can take
   * its writes meanwhile: every other shard must be Healthy, and there must be one.
   */
  private switchoverRequest(cr: DefaultedCluster, shards: string[]): Map<string, SwitchoverRequest> {
    const requests = new Map<string, SwitchoverRequest>();
    const annotated = cr.metadata.annotations?.[ANNOTATION_SWITCHOVER];
    if (annotated !== this.handledSwitchover) this.handledSwitchover = undefined;
    const asked = annotated && annotated !== this.handledSwitchover ? annotated : undefined;
    const wanted = asked ?? this.drainedPrimary(cr, shards);
    if (!wanted) return requests;
    this.switchoverRequestedBy = asked ? 'annotation' : 'drain';
    if (!shards.includes(wanted)) {
      this.recordSwitchover(cr, {
        shard: wanted,
        from: '-',
        to: '-',
        result: 'Failed',
        writesPausedMs: 0,
        message: `no shard "${wanted}" in this cluster (shards: ${shards.join(', ')})`,
        time: new Date().toISOString(),
        requestedBy: 'annotation',
      });
      return requests;
    }
    const others = shards.filter((s) => s !== wanted);
    const unhealthy = others
      .map((s) => ({ name: s, phase: this.manager.memoryOf(s).phase }))
      .filter((s) => s.phase !== 'Healthy');
    requests.set(wanted, {
      blockedBy: !others.length
        ? `the cluster has a single shard: its writes would have nowhere to go while the roles change`
        : unhealthy.length
          ? `other shards must take the writes meanwhile, but ${unhealthy.map((s) => `${s.name} is ${s.phase}`).join(', ')}`
          : undefined,
    });
    return requests;
  }

  private finishSwitchover(cr: DefaultedCluster, o: ShardOutcome): void {
    const verdict = o.decision.switchover!;
    const pausedAt = this.writesPausedAt;
    this.writesPausedAt = undefined;
    const writesPausedMs = pausedAt === undefined ? undefined : Date.now() - pausedAt;
    if (writesPausedMs !== undefined) {
      this.deps.metrics.switchoverWritesPaused.observe(
        { namespace: cr.metadata.namespace, cluster: cr.metadata.name, shard: o.shard },
        writesPausedMs / 1000,
      );
    }
    this.recordSwitchover(cr, {
      shard: o.shard,
      from: verdict.from,
      to: verdict.to,
      result: verdict.result,
      message:
        writesPausedMs === undefined
          ? verdict.message
          : `${verdict.message}; writes paused ${writesPausedMs} ms`,
      time: new Date().toISOString(),
      // Every field, every time: status is written as a merge patch, which keeps absent fields.
      writesPausedMs: writesPausedMs ?? 0,
      requestedBy: this.switchoverRequestedBy,
    });
  }

  /**
   * A Healthy shard whose primary runs on a cordoned node and whose standby does not: `kubectl
   * drain` cordons first, then evicts, and the primary's PodDisruptionBudget refuses to evict it
   * until it is the standby. One shard at a time; a refused one is tried again after a while.
   */
  private drainedPrimary(cr: DefaultedCluster, shards: string[]): string | undefined {
    const cordoned = this.deps.cordonedNodes();
    if (!cordoned.size) return undefined;
    const nodeOf = (pod: string) =>
      this.deps.mysqlPods().find((p) => p.metadata?.name === pod)?.spec?.nodeName ?? '';
    return shards.find((shard, i) => {
      const memory = this.manager.memoryOf(shard);
      if (memory.phase !== 'Healthy') return false;
      if ((this.drainRefusedAt.get(shard) ?? 0) > Date.now() - DRAIN_RETRY_MS) return false;
      const primary = names.pod(cr.metadata.name, i, memory.primaryIndex);
      const standby = names.pod(cr.metadata.name, i, 1 - memory.primaryIndex);
      return cordoned.has(nodeOf(primary)) && !cordoned.has(nodeOf(standby)) && nodeOf(standby) !== '';
    });
  }

  private recordSwitchover(cr: DefaultedCluster, record: SwitchoverStatus): void {
    this.lastSwitchover = record;
    if (record.requestedBy === 'drain') {
      if (record.result === 'Failed') this.drainRefusedAt.set(record.shard, Date.now());
      else this.drainRefusedAt.delete(record.shard);
    } else {
      this.handledSwitchover = cr.metadata.annotations?.[ANNOTATION_SWITCHOVER];
    }
    this.deps.metrics.switchovers.inc({
      namespace: cr.metadata.namespace,
      cluster: cr.metadata.name,
      shard: record.shard,
      result: record.result,
    });
    const ok = record.result === 'Succeeded';
    void this.deps.events.record(
      cr,
      ok ? 'Normal' : 'Warning',
      ok ? 'Switchover' : 'SwitchoverFailed',
      ok ? record.message : `${record.shard}: switchover refused or failed: ${record.message}`,
      { transition: true },
    );
    this.deps
      .clearSwitchoverRequest()
      .catch((err: unknown) =>
        this.deps.log.warn('could not remove the switchover annotation', { error: errorMessage(err) }),
      );
  }
}

/** How long a switchover for a drained node waits after a refusal before it is tried again. */
const DRAIN_RETRY_MS = 15_000;

/** Events that mean a shard lost its primary; `status.failoverCount` counts them. */
const FAILOVER_REASONS = new Set(['FailedOver', 'ShardUnavailable', 'PromotedForWrites']);
