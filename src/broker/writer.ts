import type { PoolConnection } from 'mysql2/promise';
import { withDeadline } from '../common/deadline.js';
import type { Logger } from '../common/logger.js';
import { MqError, errorMessage, unavailable } from '../common/errors.js';
import type { BrokerMetrics } from './metrics.js';
import { ReusableBuffers } from '../common/reusable-buffers.js';
import { type Payload, insertMessages } from './queue-store.js';
import type { ShardPools } from './shard-pools.js';
import type { ShardRouter, ShardView } from './shard-router.js';
import type { TopicCatalog } from './topic-catalog.js';

export interface PublishResult {
  shard: string;
  /** Ids `firstId` .. `firstId + count - 1` on `shard`, in the order the messages were sent. */
  firstId: number;
  count: number;
}

export interface WriterOptions {
  maxBatchMessages: number;
  maxBatchBytes: number;
  /** Batches under way per writable shard: one commits while the next fills (group commit). */
  inflightPerShard: number;
  /** A commit slower than this is abandoned and the batch goes to the next shard. */
  commitTimeoutMs: number;
}

interface PendingPublish {
  topic: string;
  payloads: Payload[];
  bytes: number;
  resolve(result: PublishResult): void;
  reject(err: unknown): void;
}

/**
 * Coalesces publishes into multi-row INSERTs and sends each batch to the next writable shard in
 * round-robin order. A publish is resolved only after its INSERT committed (semi-sync: on two
 * servers). If a shard fails, the same batch goes to the next one before anyone is answered.
 */
export class BatchingWriter {
  private readonly pending = new Map<string, PendingPublish[]>();
  private inflight = 0;
  /** Batches under way per shard. */
  private readonly busy = new Map<string, number>();
  private closed = false;
  private drained?: () => void;
  /** INSERT statements are written into these (see ReusableBuffers). */
  private readonly statementBuffers = new ReusableBuffers();

  constructor(
    private readonly router: ShardRouter,
    private readonly pools: ShardPools,
    private readonly catalog: TopicCatalog,
    private readonly options: WriterOptions,
    private readonly metrics: BrokerMetrics,
    private readonly log: Logger,
    /** Called after each commit so waiting fetches of the topic wake at once. */
    private readonly onCommitted: (topic: string) => void,
  ) {}

  /** `bytes`: the payloads' total size. */
  publish(topic: string, payloads: Payload[], bytes: number): Promise<PublishResult> {
    if (this.closed) return Promise.reject(unavailable('shutting_down', 'broker is shutting down'));
    return new Promise((resolve, reject) => {
      let queue = this.pending.get(topic);
      if (!queue) this.pending.set(topic, (queue = []));
      queue.push({ topic, payloads, bytes, resolve, reject });
      this.pump();
    });
  }

  /** Stops taking publishes and resolves once every accepted one was committed or failed. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.inflight === 0 && this.pending.size === 0) return;
    await new Promise<void>((resolve) => (this.drained = resolve));
  }

  /**
   * Sends batches while some writable shard has fewer than `inflightPerShard` of them under way; the
   * rest waits and grows into larger batches. With no writable shard at all, batches fail at once.
   */
  private pump(): void {
    while (this.pending.size > 0) {
      const order = this.router.writeOrder();
      const first = order.findIndex((s) => (this.busy.get(s.name) ?? 0) < this.options.inflightPerShard);
      if (order.length > 0 && first < 0) return;
      const batch = this.takeBatch();
      this.inflight++;
      void this.flush(batch, [...order.slice(first), ...order.slice(0, first)]).finally(() => {
        this.inflight--;
        this.pump();
        if (this.inflight === 0 && this.pending.size === 0) this.drained?.();
      });
    }
  }

  /** Takes whole publishes of the topic that waited longest, up to the batch limits. */
  private takeBatch(): PendingPublish[] {
    const [topic, queue] = this.pending.entries().next().value as [string, PendingPublish[]];
    const batch: PendingPublish[] = [];
    let messages = 0;
    let bytes = 0;
    while (queue.length > 0) {
      const next = queue[0];
      const fits =
        messages + next.payloads.length <= this.options.maxBatchMessages &&
        bytes + next.bytes <= this.options.maxBatchBytes;
      if (batch.length > 0 && !fits) break;
      batch.push(queue.shift()!);
      messages += next.payloads.length;
      bytes += next.bytes;
    }
    this.pending.delete(topic);
    // Re-inserting moves the topic to the back, so busy topics take turns.
    if (queue.length > 0) this.pending.set(topic, queue);
    return batch;
  }

  /** Commits the batch on the first of `shards` that takes it. */
  private async flush(batch: PendingPublish[], shards: ShardView[]): Promise<void> {
    const topic = batch[0].topic;
    const payloads = batch.flatMap((p) => p.payloads);
    const tried: string[] = [];
    let rejected: unknown;
    for (const shard of shards) {
      tried.push(shard.name);
      const started = performance.now();
      this.busy.set(shard.name, (this.busy.get(shard.name) ?? 0) + 1);
      try {
        const firstId = await this.insert(shard, topic, payloads).finally(() =>
          this.busy.set(shard.name, this.busy.get(shard.name)! - 1),
        );
        this.metrics.batchCommitSeconds.observe({ shard: shard.name }, (performance.now() - started) / 1000);
        this.metrics.batchSize.observe(payloads.length);
        this.metrics.publishedMessages.inc({ shard: shard.name }, payloads.length);
        let next = firstId;
        for (const p of batch) {
          p.resolve({ shard: shard.name, firstId: next, count: p.payloads.length });
          next += p.payloads.length;
        }
        this.onCommitted(topic);
        return;
      } catch (err) {
        this.metrics.writeRetries.inc({ shard: shard.name });
        if (isStatementError(err)) {
          // The instance is fine; this statement is not. Its publishes, each alone, may still go
          // through (one of them is the cause), and the shard stays in everyone's rotation.
          if (batch.length > 1) {
            await Promise.all(batch.map((p) => this.flush([p], shards)));
            return;
          }
          rejected ??= err;
        } else {
          this.router.markWriteFailed(shard.name, err);
        }
        this.log.warn('batch failed on shard, trying the next', {
          shard: shard.name,
          messages: payloads.length,
          error: errorMessage(err),
        });
      }
    }
    if (rejected !== undefined) {
      const err = new MqError(
        500,
        'write_rejected',
        `the shards refused the write: ${errorMessage(rejected)}`,
      );
      for (const p of batch) p.reject(err);
      return;
    }
    const err = unavailable(
      'no_writable_shard',
      tried.length ? `every writable shard failed (${tried.join(', ')})` : 'no shard takes writes right now',
    );
    for (const p of batch) p.reject(err);
  }

  /** INSERT with a deadline: a commit stuck waiting on a lost standby must not hold the producer. */
  private async insert(shard: ShardView, topic: string, payloads: Payload[]): Promise<number> {
    let conn: PoolConnection | undefined;
    let abandoned = false;
    const work = (async () => {
      const acquired = await this.pools.get(shard.route.write!).getConnection();
      if (abandoned) {
        acquired.destroy();
        throw new Error('abandoned');
      }
      conn = acquired;
      const topicId = await this.catalog.idOnWritable(shard, topic, acquired);
      return insertMessages(acquired, topicId, payloads, this.statementBuffers);
    })();
    try {
      const firstId = await withDeadline(work, this.options.commitTimeoutMs, 'commit', () => {
        abandoned = true;
        conn?.destroy();
      });
      conn?.release();
      return firstId;
    } catch (err) {
      // A connection that failed mid-statement is never handed to the next batch.
      (conn as PoolConnection | undefined)?.destroy();
      throw err;
    }
  }
}

/**
 * Server errors that say something about the instance rather than the statement: it is read-only
 * (fenced, or a standby now), going away, out of connections or killed our session.
 */
const INSTANCE_ERRNOS = new Set([1040, 1053, 1203, 1205, 1290, 1317, 1836, 1927, 4031]);

/**
 * A statement the server refused while the connection and instance are fine (e.g. a table dropped
 * by hand): no reason to take the shard out of the write rotation. Timeouts, lost connections and
 * pool errors carry no server errno, or are fatal.
 */
export function isStatementError(err: unknown): boolean {
  const e = err as { errno?: unknown; fatal?: unknown; sqlState?: unknown };
  return (
    typeof e?.errno === 'number' &&
    typeof e.sqlState === 'string' &&
    e.fatal !== true &&
    !INSTANCE_ERRNOS.has(e.errno)
  );
}
