import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { RoutingDocument } from '../broker/routing.js';
import { errorMessage } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { ShardSecrets } from '../shard/bootstrap.js';
import type { DefaultedCluster } from './api/types.js';
import type { EventRecorder } from './events.js';
import { RetentionLoop, retentionMetrics } from './retention/loop.js';
import { ShardManager, type ShardOutcome, nextRoutingVersion, routingDocument } from './shards/manager.js';
import { type PodLike, observeShards } from './shards/observe.js';
import { pushRouting } from './shards/routing-publisher.js';
import { memoryFromStatus, shardStatusOf } from './status.js';

export interface ClusterLoopDeps {
  /** The cluster as the cache has it now (undefined once deleted). */
  cluster(): DefaultedCluster | undefined;
  mysqlPods(): PodLike[];
  /** Base URLs of the cluster's broker pods that have an IP. */
  brokerUrls(): string[];
  secrets: ShardSecrets;
  adminToken: string;
  /** The routing document last published (the routing ConfigMap), so a restart does not republish it. */
  publishedRouting?: RoutingDocument;
  /** Asks the reconciler to write status and the routing ConfigMap. */
  changed(): void;
  events: EventRecorder;
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
    shardLag: new Gauge({
      name: 'mysqlmq_shard_replication_lag_transactions',
      help: 'Transactions the standby has not applied yet',
      labelNames,
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

  constructor(private readonly deps: ClusterLoopDeps) {
    this.manager = new ShardManager(deps.secrets, deps.log, 2000);
    this.retention = new RetentionLoop({
      admin: deps.secrets.admin,
      events: deps.events,
      metrics: deps.metrics.retention,
      log: deps.log,
    });
    const cr = deps.cluster();
    for (const s of cr?.status?.shards ?? []) this.manager.remember(s.name, memoryFromStatus(s));
    this.routing = deps.publishedRouting ?? { version: cr?.status?.routingVersion ?? 0, shards: [] };
  }

  get latest(): { outcomes?: ShardOutcome[]; observedAt: number; routing: RoutingDocument } {
    return { outcomes: this.outcomes, observedAt: this.observedAt, routing: this.routing };
  }

  /** What the next reconcile should see about a shard before the first tick finished. */
  primaryIndexOf(shard: string): number {
    return this.manager.memoryOf(shard).primaryIndex;
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
      const wait = Math.max(0, cr.spec.failover.probePeriodSeconds * 1000 - (Date.now() - started));
      await new Promise<void>((resolve) => (this.timer = setTimeout(resolve, wait)));
    }
  }

  private async tick(cr: DefaultedCluster): Promise<void> {
    const spec = cr.spec;
    const observedAt = Date.now();
    const observed = observeShards(cr.metadata.name, spec.shards, this.deps.mysqlPods());
    const now = new Date();
    const decided = await this.manager.tick(observed, {
      durability: spec.mysql.durability,
      failureThreshold: spec.failover.failureThreshold,
      promoteStandbyForReads: spec.failover.promoteStandbyForReads,
      promoteForWritesAfterMs: spec.failover.promoteForWrites
        ? spec.failover.promoteForWritesDelaySeconds * 1000
        : null,
      semiSyncTimeoutMs: spec.mysql.semiSyncTimeoutSeconds * 1000,
    });
    this.retention.maybeRun(cr, decided);
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
        }
      }
      const primary = o.instances.find((i) => i.index === o.decision.memory.primaryIndex);
      const bad = !primary?.probe || !primary.podReady;
      if (bad && !this.firstBadAt.has(o.shard)) this.firstBadAt.set(o.shard, now.getTime());
      if (!bad && o.decision.memory.readsFrom === 'primary') this.firstBadAt.delete(o.shard);
      this.deps.metrics.shardWritable.set(labels(o.shard), o.route.write ? 1 : 0);
      this.deps.metrics.shardReadable.set(labels(o.shard), o.route.read ? 1 : 0);
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
    if (routesChanged || this.ticks++ % 10 === 0 || this.lastPushedVersion !== this.routing.version) {
      const urls = this.deps.brokerUrls();
      const results = await pushRouting(urls, this.routing, this.deps.adminToken);
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
      outcomes.map((o) => ({ ...shardStatusOf(o), replicationLagSeconds: null, lagTransactions: null })),
    ]);
    if (summary !== this.lastSummary) {
      this.lastSummary = summary;
      this.deps.changed();
    }
  }
}
