import { badRequest, errorMessage, unavailable } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { Encoding } from './requests.js';
import { endpointKey } from '../shard/connection.js';
import { readableCount } from './gaps.js';
import type { BrokerMetrics } from './metrics.js';
import { FetchCache, type FetchedMessage, fetchedMessage } from './fetch-cache.js';
import { OffsetWriter } from './offset-writer.js';
import { ShardDeadlines } from './shard-deadlines.js';
import {
  acquireLease,
  highestMessageId,
  readLease,
  readMessages,
  readPendingOffset,
  releaseLease,
  replicaAppliedPosition,
  savePendingOffset,
} from './queue-store.js';
import type { ShardPools } from './shard-pools.js';
import type { ShardRouter, ShardView } from './shard-router.js';
import type { TopicCatalog } from './topic-catalog.js';

export interface FetchRequest {
  topic: string;
  group: string;
  /** Identifies one consumer process; a group's shard is read by one consumer at a time. */
  consumer: string;
  /** Last id the consumer has seen per shard; absent shards start after the committed offset. */
  positions: Record<string, number>;
  maxMessages: number;
  maxBytes: number;
  waitMs: number;
  encoding: Encoding;
}

export interface FetchResult {
  messages: FetchedMessage[];
  /** Where the consumer stands on each shard it reads, after these messages. */
  positions: Record<string, number>;
  /** Shards another consumer of the group holds: drop their positions. */
  heldElsewhere: string[];
}

export interface ShardOffsets {
  shard: string;
  committed: number | null;
  latest: number | null;
  owner: string | null;
  error?: string;
}

/** Cached messages no reader took for this long are dropped. */
const CACHE_IDLE_MS = 5000;

export interface FetcherOptions {
  leaseTtlMs: number;
  /** How often a waiting fetch looks for messages written through other brokers. */
  pollIntervalMs: number;
  /** A gap in a shard's ids open this long is a hole for good (see gaps.ts: `maxGapAgeMs`). */
  maxGapAgeMs: number;
  /** Recently read messages kept for the other groups (fetch-cache.ts), in bytes. */
  cacheBytes: number;
  /** The largest message: a shard read assumes it until it has seen the topic's sizes. */
  maxMessageBytes: number;
  /**
   * How long one shard may take to answer its part of a fetch, a commit or a release: a fetch
   * answers with the other shards' messages after that (see shard-deadlines.ts).
   */
  shardTimeoutMs: number;
}

interface CachedLease {
  consumer: string;
  expiresAt: number;
  committed: number;
}

/**
 * Fetch for consumer groups: each shard of a topic is read by one consumer of a group at a time (a
 * lease in the shard's group_offsets row), from the consumer's position or else the group's
 * committed offset. Waiting fetches wake when this broker commits to the topic, and poll for
 * writes through other brokers.
 */
export class Fetcher {
  private readonly leases = new Map<string, CachedLease>();
  private readonly waiters = new Map<string, Set<() => void>>();
  /** Per replica serving reads: its applied GTID position and since when it has not moved. */
  private readonly replicaApplied = new Map<string, { position: string; since: number }>();
  /** Average payload size of the last read, per cache key: how many rows fit `maxBytes`. */
  private readonly rowBytes = new Map<string, number>();
  readonly cache: FetchCache;
  private readonly idleSweep: NodeJS.Timeout;
  private readonly offsetWriter: OffsetWriter;
  private readonly deadlines: ShardDeadlines;
  private closed = false;

  constructor(
    private readonly router: ShardRouter,
    private readonly pools: ShardPools,
    private readonly catalog: TopicCatalog,
    private readonly options: FetcherOptions,
    private readonly metrics: BrokerMetrics,
    private readonly log: Logger,
  ) {
    this.cache = new FetchCache(options.cacheBytes);
    this.offsetWriter = new OffsetWriter(pools);
    this.deadlines = new ShardDeadlines(options.shardTimeoutMs);
    // Messages of topics nobody reads any more need not wait to be pushed out by new ones.
    this.idleSweep = setInterval(() => this.cache.dropIdle(Date.now(), CACHE_IDLE_MS), 1000);
    this.idleSweep.unref();
  }

  /** Wakes fetches waiting on `topic`; the writer calls it after each commit. */
  notify(topic: string): void {
    const set = this.waiters.get(topic);
    if (!set) return;
    this.waiters.delete(topic);
    for (const wake of set) wake();
  }

  /** Answers every waiting fetch with what it has (shutdown). */
  close(): void {
    this.closed = true;
    clearInterval(this.idleSweep);
    for (const topic of [...this.waiters.keys()]) this.notify(topic);
  }

  async fetch(req: FetchRequest): Promise<FetchResult> {
    const deadline = Date.now() + req.waitMs;
    for (;;) {
      const result = await this.fetchOnce(req);
      const left = deadline - Date.now();
      if (result.messages.length > 0 || left <= 0 || this.closed) return result;
      await this.waitForMessages(req.topic, Math.min(left, this.options.pollIntervalMs));
    }
  }

  private waitForMessages(topic: string, ms: number): Promise<void> {
    return new Promise((resolve) => {
      let set = this.waiters.get(topic);
      if (!set) this.waiters.set(topic, (set = new Set()));
      const wake = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.get(topic)?.delete(wake);
        resolve();
      }, ms);
      set.add(wake);
    });
  }

  private async fetchOnce(req: FetchRequest): Promise<FetchResult> {
    const shards = this.router.readableShards();
    if (shards.length === 0) throw unavailable('no_readable_shard', 'no shard serves reads right now');
    const perShard = Math.max(1, Math.ceil(req.maxMessages / shards.length));
    const reads = await Promise.all(shards.map((s) => this.readShard(s, req, perShard)));
    if (reads.every((r) => r.kind === 'failed')) {
      throw unavailable('no_readable_shard', 'every shard failed to answer the fetch');
    }
    return mergeShardReads(reads, req);
  }

  private async readShard(shard: ShardView, req: FetchRequest, limit: number): Promise<ShardRead> {
    const key = readKey(shard);
    // Still waiting for an earlier answer: skipped quietly (that one was logged).
    if (this.deadlines.stalled(key)) return { kind: 'failed', shard: shard.name };
    try {
      return await this.deadlines.run(key, `shard ${shard.name}`, () => this.readShardNow(shard, req, limit));
    } catch (err) {
      this.log.warn('fetch from shard failed', { shard: shard.name, error: errorMessage(err) });
      return { kind: 'failed', shard: shard.name };
    }
  }

  private async readShardNow(shard: ShardView, req: FetchRequest, limit: number): Promise<ShardRead> {
    const topicId = await this.catalog.idOnReadable(shard, req.topic);
    if (topicId === undefined) return { kind: 'empty', shard: shard.name };
    const start = await this.startPosition(shard, topicId, req);
    if (start === undefined) return { kind: 'held', shard: shard.name };
    const key = [shard.name, endpointKey(shard.route.read!), topicId, req.encoding].join('\u0000');
    // Rows of up to maxMessageBytes each: never read far more than the answer may carry.
    const rowBytes = this.rowBytes.get(key) ?? this.options.maxMessageBytes;
    const rows = Math.max(1, Math.min(limit, Math.floor(req.maxBytes / Math.max(1, rowBytes))));
    const { messages, source } = await this.cache.read(key, start, rows, () =>
      this.readDb(shard, key, topicId, start, rows, req.encoding),
    );
    this.metrics.fetchShardReads.inc({ source });
    return { kind: 'read', shard: shard.name, start, messages };
  }

  /** Messages after `start` on the shard's read instance, up to the first gap that may still fill. */
  private async readDb(
    shard: ShardView,
    key: string,
    topicId: number,
    start: number,
    rows: number,
    encoding: Encoding,
  ): Promise<FetchedMessage[]> {
    const maxGapAge = await this.maxGapAge(shard, Date.now());
    const { messages: read, shardNowMs } = await readMessages(
      this.pools.get(shard.route.read!),
      topicId,
      start,
      rows,
    );
    if (read.length > 0) {
      this.rowBytes.set(key, read.reduce((n, m) => n + m.payload.length, 0) / read.length);
    }
    // Rows were stamped by the shard's clock and are judged by it, taken before the read's
    // snapshot: brokers' clocks play no part (a gap judged old then cannot fill in that snapshot).
    const readable = shardNowMs === undefined ? 0 : readableCount(read, start, shardNowMs, maxGapAge);
    const messages = new Array<FetchedMessage>(readable);
    for (let i = 0; i < readable; i++) {
      const m = read[i];
      messages[i] = fetchedMessage(shard.name, m.id, m.publishedAt, m.payload, encoding);
    }
    return messages;
  }

  /**
   * How old a gap in the shard's ids must be to step over it. On the primary, the writer's commit
   * deadline decides. A replica shows a committed transaction only once it has applied it, which
   * can lag well behind the commit: there a gap is also stepped over only after the applied
   * position stopped moving for as long (nothing left to apply, as when the primary is down).
   */
  private async maxGapAge(shard: ShardView, now: number): Promise<number> {
    const read = shard.route.read!;
    if (shard.route.write && endpointKey(shard.route.write) === endpointKey(read)) {
      return this.options.maxGapAgeMs;
    }
    const key = endpointKey(read);
    const position = await replicaAppliedPosition(this.pools.get(read));
    const seen = this.replicaApplied.get(key);
    if (seen?.position !== position) {
      this.replicaApplied.set(key, { position, since: now });
      return Infinity;
    }
    return now - seen.since >= this.options.maxGapAgeMs ? this.options.maxGapAgeMs : Infinity;
  }

  /** Where the consumer reads this shard from, or undefined while another consumer holds it. */
  private async startPosition(
    shard: ShardView,
    topicId: number,
    req: FetchRequest,
  ): Promise<number | undefined> {
    const key = `${req.group}\u0000${req.topic}\u0000${shard.name}`;
    const given = req.positions[shard.name];
    if (!shard.writable) {
      // No lease can be written while the primary is away; reads go on from the standby.
      if (given !== undefined) return given;
      const lease = await readLease(this.pools.get(shard.route.read!), req.group, topicId);
      return Math.max(lease?.committedId ?? 0, await this.pendingOffset(shard.name, req.group, req.topic));
    }
    const now = Date.now();
    const cached = this.leases.get(key);
    if (cached?.consumer !== req.consumer || cached.expiresAt - now < this.options.leaseTtlMs / 2) {
      const lease = await acquireLease(
        this.pools.get(shard.route.write!),
        req.group,
        topicId,
        req.consumer,
        this.options.leaseTtlMs,
      );
      if (lease.owner !== req.consumer) {
        this.leases.delete(key);
        return undefined;
      }
      this.leases.set(key, {
        consumer: req.consumer,
        expiresAt: now + lease.remainingMs,
        committed: lease.committedId,
      });
    }
    return given ?? this.leases.get(key)!.committed;
  }

  /** The highest offset kept for `origin` on the other shards while it took no writes. */
  private async pendingOffset(origin: string, group: string, topic: string): Promise<number> {
    const found = await Promise.allSettled(
      this.router
        .readableShards()
        .filter((s) => s.name !== origin)
        .map((s) => readPendingOffset(this.pools.get(s.route.read!), origin, group, topic)),
    );
    return Math.max(0, ...found.map((r) => (r.status === 'fulfilled' ? r.value : 0)));
  }

  /**
   * Records that the group processed everything up to the given id on each shard. A shard whose
   * primary is down cannot take the write; its offset is kept on the first writable shard instead.
   */
  async commit(group: string, topic: string, offsets: Record<string, number>): Promise<void> {
    const shards = new Map(this.router.shards().map((s) => [s.name, s]));
    const unknown = Object.keys(offsets).find((name) => !shards.has(name));
    if (unknown) throw badRequest('unknown_shard', `shard "${unknown}" is not in the routing`);
    await Promise.all(
      Object.entries(offsets).map(async ([name, id]) => {
        const shard = shards.get(name)!;
        if (!shard.writable) {
          const keeper = this.router.writableShards().sort((a, b) => a.name.localeCompare(b.name))[0];
          if (!keeper)
            throw unavailable('offsets_unavailable', 'no shard takes writes now; commit again later');
          await this.deadlines.run(writeKey(keeper), `offsets of ${name} on ${keeper.name}`, () =>
            savePendingOffset(this.pools.get(keeper.route.write!), name, group, topic, id),
          );
          return;
        }
        await this.deadlines.run(writeKey(shard), `offsets on ${name}`, async () => {
          const topicId = await this.catalog.idOnWritable(shard, topic);
          await this.offsetWriter.commit(shard.route.write!, { group, topicId, id });
        });
        const cached = this.leases.get(`${group}\u0000${topic}\u0000${name}`);
        if (cached) cached.committed = Math.max(cached.committed, id);
      }),
    );
  }

  /** Gives up the consumer's leases so another consumer of the group can take over at once. */
  async leave(group: string, topic: string, consumer: string): Promise<void> {
    await Promise.all(
      this.router.writableShards().map(async (shard) => {
        this.leases.delete(`${group}\u0000${topic}\u0000${shard.name}`);
        await this.deadlines.run(writeKey(shard), `leases on ${shard.name}`, async () => {
          const topicId = await this.catalog.idOnReadable(shard, topic);
          if (topicId !== undefined)
            await releaseLease(this.pools.get(shard.route.write!), group, topicId, consumer);
        });
      }),
    );
  }

  /** The group's committed offset and the newest id on every readable shard. */
  async offsets(group: string, topic: string): Promise<ShardOffsets[]> {
    return Promise.all(
      this.router.readableShards().map(async (shard): Promise<ShardOffsets> => {
        try {
          return await this.deadlines.run(readKey(shard), `shard ${shard.name}`, async () => {
            const db = this.pools.get(shard.route.read!);
            const topicId = await this.catalog.idOnReadable(shard, topic);
            if (topicId === undefined)
              return { shard: shard.name, committed: null, latest: null, owner: null };
            const lease = await readLease(db, group, topicId);
            return {
              shard: shard.name,
              committed: lease?.committedId ?? 0,
              latest: await highestMessageId(db, topicId),
              owner: lease && lease.remainingMs > 0 ? lease.owner : null,
            };
          });
        } catch (err) {
          return { shard: shard.name, committed: null, latest: null, owner: null, error: errorMessage(err) };
        }
      }),
    );
  }

  recordDelivered(messages: FetchedMessage[]): void {
    const perShard = new Map<string, number>();
    for (const m of messages) perShard.set(m.shard, (perShard.get(m.shard) ?? 0) + 1);
    for (const [shard, n] of perShard) this.metrics.fetchedMessages.inc({ shard }, n);
  }
}

/** The instances a shard read touches: its read instance, and its primary for the lease. */
const readKey = (s: ShardView) =>
  `${s.name}\u0000${endpointKey(s.route.read!)}\u0000${s.writable ? endpointKey(s.route.write!) : ''}`;
const writeKey = (s: ShardView) => `${s.name}\u0000\u0000${endpointKey(s.route.write!)}`;

type ShardRead =
  | { kind: 'read'; shard: string; start: number; messages: FetchedMessage[] }
  | { kind: 'empty' | 'held' | 'failed'; shard: string };

/**
 * Interleaves the shards' messages (no global order exists across shards) up to the request's
 * limits, and reports each shard's position after what is returned. Pure.
 */
export function mergeShardReads(
  reads: ShardRead[],
  req: Pick<FetchRequest, 'maxMessages' | 'maxBytes'>,
): FetchResult {
  const result: FetchResult = { messages: [], positions: {}, heldElsewhere: [] };
  const lists = reads.flatMap((r) => {
    if (r.kind === 'held') result.heldElsewhere.push(r.shard);
    if (r.kind !== 'read') return [];
    result.positions[r.shard] = r.start;
    return [{ shard: r.shard, messages: r.messages }];
  });
  let bytes = 0;
  for (let i = 0; ; i++) {
    let any = false;
    for (const list of lists) {
      const m = list.messages[i];
      if (!m) continue;
      any = true;
      const full =
        result.messages.length >= req.maxMessages ||
        (result.messages.length > 0 && bytes + m.size > req.maxBytes);
      if (full) return result;
      result.messages.push(m);
      result.positions[list.shard] = m.id;
      bytes += m.size;
    }
    if (!any) return result;
  }
}
