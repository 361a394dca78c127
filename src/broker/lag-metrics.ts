import { Gauge, type Registry } from 'prom-client';
import type mysql from 'mysql2/promise';
import { withDeadline } from '../common/deadline.js';
import { errorMessage } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { QUEUE_DATABASE, messageTable } from '../shard/schema.js';
import type { ShardPools } from './shard-pools.js';
import type { ShardRouter } from './shard-router.js';

/** One group's position on one shard's part of a topic, and how far behind the newest message it is. */
export interface GroupLag {
  topic: string;
  group: string;
  shard: string;
  /** Messages published after the group's committed id. */
  messages: number;
  /** Age of the oldest message the group has not committed; 0 when it has committed everything. */
  seconds: number;
}

/**
 * Consumer lag per topic, group and shard for `/metrics`, computed at most every `maxAgeMs` (a
 * scrape in between gets the last values, so any number of Prometheus replicas costs the same)
 * and only from indexed reads on each shard's read instance: the offsets table (one row per group
 * and topic), each topic's highest id (the last entry of its primary key) and the publish time of
 * the first uncommitted message (one primary-key seek). No scan grows with the messages stored.
 */
export class LagMetrics {
  private readonly messages: Gauge<'topic' | 'group' | 'shard'>;
  private readonly seconds: Gauge<'topic' | 'group' | 'shard'>;
  private computedAt = 0;
  private running?: Promise<void>;

  constructor(
    registry: Registry,
    private readonly router: ShardRouter,
    private readonly pools: ShardPools,
    private readonly log: Logger,
    private readonly maxAgeMs = 10_000,
    private readonly deadlineMs = 3_000,
  ) {
    const labelNames = ['topic', 'group', 'shard'] as const;
    this.messages = new Gauge({
      name: 'mq_broker_consumer_lag_messages',
      help: 'Messages published to the shard after the group committed (newest id minus committed id)',
      labelNames,
      registers: [registry],
    });
    this.seconds = new Gauge({
      name: 'mq_broker_consumer_lag_seconds',
      help: 'Age of the oldest message of the shard the group has not committed (0 when caught up)',
      labelNames,
      registers: [registry],
    });
  }

  /** Recomputes when the values are older than `maxAgeMs`; concurrent scrapes share one run. */
  async refreshIfStale(now = Date.now()): Promise<void> {
    if (now - this.computedAt < this.maxAgeMs) return;
    this.running ??= this.refresh(now).finally(() => (this.running = undefined));
    await this.running;
  }

  private async refresh(now: number): Promise<void> {
    const perShard = await Promise.all(
      this.router.readableShards().map(async (shard) => {
        const db = this.pools.get(shard.route.read!);
        try {
          const work = readShardLag(db, shard.name, now);
          work.catch(() => undefined); // abandoned at the deadline: its late failure is not news
          return await withDeadline(work, this.deadlineMs, 'lag query', () => undefined);
        } catch (err) {
          // A shard that does not answer keeps no stale values: its series disappear until it does.
          this.log.debug('lag metrics: shard unavailable', { shard: shard.name, error: errorMessage(err) });
          return [];
        }
      }),
    );
    this.messages.reset();
    this.seconds.reset();
    for (const lag of perShard.flat()) {
      const labels = { topic: lag.topic, group: lag.group, shard: lag.shard };
      this.messages.set(labels, lag.messages);
      this.seconds.set(labels, lag.seconds);
    }
    this.computedAt = now;
  }
}

/** Every group's lag on one shard (see `LagMetrics` for why each query is cheap). */
export async function readShardLag(db: mysql.Pool, shard: string, now: number): Promise<GroupLag[]> {
  const [offsets] = await db.query<mysql.RowDataPacket[]>(
    `SELECT g.group_name, g.topic_id, t.name AS topic, g.committed_id
       FROM ${QUEUE_DATABASE}.group_offsets g JOIN ${QUEUE_DATABASE}.topics t ON t.id = g.topic_id`,
  );
  const newest = new Map<number, number>();
  const out: GroupLag[] = [];
  for (const row of offsets) {
    const topicId = Number(row.topic_id);
    if (!newest.has(topicId)) {
      const [[max]] = await db.query<mysql.RowDataPacket[]>(
        `SELECT COALESCE(MAX(id), 0) AS id FROM ${messageTable(topicId)}`,
      );
      newest.set(topicId, Number(max?.id ?? 0));
    }
    const committed = Number(row.committed_id);
    const messages = Math.max(0, newest.get(topicId)! - committed);
    let seconds = 0;
    if (messages > 0) {
      const [[first]] = await db.query<mysql.RowDataPacket[]>(
        `SELECT published_at FROM ${messageTable(topicId)} WHERE id > ? ORDER BY id LIMIT 1`,
        [committed],
      );
      if (first) seconds = Math.max(0, (now - Number(first.published_at)) / 1000);
    }
    out.push({ topic: String(row.topic), group: String(row.group_name), shard, messages, seconds });
  }
  return out;
}
