import { MqError, badRequest, errorMessage, unavailable } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { endpointKey } from '../shard/connection.js';
import { ByteBudget } from './byte-budget.js';
import { readableCount } from './gaps.js';
import type { BrokerMetrics } from './metrics.js';
import { type AnswerEncoding, FetchCache, type FetchedMessage, fetchedMessage } from './fetch-cache.js';
import { OffsetWriter } from './offset-writer.js';
import { ShardDeadlines, readKey, writeKey } from './shard-deadlines.js';
import { type DeadLetterReason, type DeadLetters } from './dead-letters.js';
import { PendingState } from './pending.js';
import {
  type DeliveryCount,
  acquireLease,
  countDelivery,
  highestMessageId,
  readLease,
  readMessage,
  readMessages,
  releaseLease,
  renewLease,
  replicaAppliedPosition,
  retentionDeletedThrough,
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
  /** The group's generation per shard the positions belong to (from an earlier answer). */
  generations: Record<string, number>;
  maxMessages: number;
  maxBytes: number;
  waitMs: number;
  encoding: AnswerEncoding;
}

/** A message the SDK's handler threw for (the SDK goes back to just before it). */
export interface HandlerFailure {
  shard: string;
  id: number;
  error?: string;
}

export interface FetchResult {
  messages: FetchedMessage[];
  /** Where the consumer stands on each shard it reads, after these messages. */
  positions: Record<string, number>;
  /** Shards another consumer of the group holds: drop their positions. */
  heldElsewhere: string[];
  /**
   * The group's generation on each shard read. When it differs from the one the consumer sent, the
   * group was reset: its positions and uncommitted offsets of that shard are void.
   */
  generations: Record<string, number>;
  /** Held in the answer budget until `answered` (set by `fetch`). */
  heldBytes?: number;
}

export interface ShardOffsets {
  shard: string;
  committed: number | null;
  latest: number | null;
  owner: string | null;
  /** Retention deleted every message up to this id. */
  deletedThrough: number | null;
  /**
   * Messages after the committed offset that retention deleted before the group read them: it
   * resumes at the oldest kept message. Ids are dense, so this counts messages (an upper bound
   * only across the rare hole a rolled-back INSERT leaves).
   */
  missed: number | null;
  error?: string;
}

const NO_OFFSETS = { committed: null, latest: null, owner: null, deletedThrough: null, missed: null };

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
   * Payload bytes of the fetch answers on their way out at once. Past it, answers shrink (down to
   * one message each) until earlier ones are written: the broker's memory does not grow with the
   * number of groups fetching, nor with the maxBytes they ask for.
   */
  answerBytesInFlight: number;
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
  /** Retention deleted every id up to here (read with each lease renewal). */
  deletedThrough: number;
  generation: number;
}

/**
 * Fetch for consumer groups: each shard of a topic is read by one consumer of a group at a time (a
 * lease in the shard's group_offsets row), from the consumer's position or else the group's
 * committed offset. Waiting fetches wake when this broker commits to the topic, and poll for
 * writes through other brokers.
 */
export class Fetcher {
  private readonly leases = new Map<string, CachedLease>();
  /** Leases being renewed in the background (see renewInBackground). */
  private readonly renewing = new Set<string>();
  private readonly waiters = new Map<string, Set<() => void>>();
  /** Commits this broker's writer made, per topic (`notify`): see FetchCache.read. */
  private readonly commits = new Map<string, number>();
  /** Per replica serving reads: its applied GTID position and since when it has not moved. */
  private readonly replicaApplied = new Map<string, { position: string; since: number }>();
  /** Average payload size of the last read, per cache key: how many rows fit `maxBytes`. */
  private readonly rowBytes = new Map<string, number>();
  readonly cache: FetchCache;
  private readonly idleSweep: NodeJS.Timeout;
  private readonly offsetWriter: OffsetWriter;
  private readonly deadlines: ShardDeadlines;
  private readonly pending: PendingState;
  /** Highest message id seen per shard and topic table: commits up to it need no lookup. */
  private readonly newestSeen = new Map<string, number>();
  /** Fetch answers on their way out (FetcherOptions.answerBytesInFlight). */
  private readonly answers: ByteBudget;
  private closed = false;

  constructor(
    private readonly router: ShardRouter,
    private readonly pools: ShardPools,
    private readonly catalog: TopicCatalog,
    private readonly options: FetcherOptions,
    private readonly metrics: BrokerMetrics,
    private readonly log: Logger,
    private readonly deadLetters: DeadLetters,
  ) {
    this.cache = new FetchCache(options.cacheBytes);
    this.answers = new ByteBudget(options.answerBytesInFlight);
    this.offsetWriter = new OffsetWriter(pools);
    this.deadlines = new ShardDeadlines(options.shardTimeoutMs);
    this.pending = new PendingState(router, pools, this.deadlines, log);
    // Messages of topics nobody reads any more need not wait to be pushed out by new ones.
    this.idleSweep = setInterval(() => this.cache.dropIdle(Date.now(), CACHE_IDLE_MS), 1000);
    this.idleSweep.unref();
  }

  /** Wakes fetches waiting on `topic`; the writer calls it after each commit. */
  notify(topic: string): void {
    this.commits.set(topic, (this.commits.get(topic) ?? 0) + 1);
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
      let result: FetchResult | undefined;
      try {
        result = await this.fetchOnce(req);
      } catch (err) {
        // A long-poll outlives a moment in which no shard answered (an instance busy, restarting or
        // starved of CPU): it fails only if none has answered by the end of its wait.
        const noShard = err instanceof MqError && err.code === 'no_readable_shard';
        if (!noShard || Date.now() >= deadline || this.closed) throw err;
      }
      const left = deadline - Date.now();
      if (result && (result.messages.length > 0 || left <= 0 || this.closed)) return result;
      await this.waitForMessages(req.topic, Math.max(1, Math.min(left, this.options.pollIntervalMs)));
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
    const result = mergeShardReads(reads, {
      maxMessages: req.maxMessages,
      maxBytes: Math.min(req.maxBytes, this.answers.room),
    });
    // Held at once, before another fetch looks at the room.
    result.heldBytes = result.messages.reduce((n, m) => n + m.size, 0);
    this.answers.hold(result.heldBytes);
    try {
      await Promise.all(reads.map((r) => this.countFromCommitted(r, result, req)));
    } catch (err) {
      this.answered(result);
      throw err;
    }
    return result;
  }

  /** The answer to `result` is written (or its connection gone): its bytes leave the budget. */
  answered(result: FetchResult): void {
    this.answers.release(result.heldBytes ?? 0);
    result.heldBytes = 0;
  }

  /**
   * A read from the committed offset delivers the shard's first uncommitted message again: counted
   * for maxDeliveries once it is in the answer; past the limit it leaves the answer for the
   * dead-letter topic (the shard's position in the answer is already past it).
   */
  private async countFromCommitted(r: ShardRead, result: FetchResult, req: FetchRequest): Promise<void> {
    if (r.kind !== 'read' || !r.fromCommitted || r.messages.length === 0) return;
    const first = r.messages[0].id;
    if ((result.positions[r.shard] ?? -1) < first) return;
    try {
      if (await this.overDeliveryLimit(r.fromCommitted.shard, r.fromCommitted.topicId, req, first, r.start)) {
        result.messages = result.messages.filter((m) => m.shard !== r.shard || m.id !== first);
      }
    } catch (err) {
      this.log.warn('delivery not counted', { shard: r.shard, id: first, error: errorMessage(err) });
    }
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
    const from = await this.startPosition(shard, topicId, req);
    if (from === undefined) return { kind: 'held', shard: shard.name };
    const { start, generation } = from;
    const key = [shard.name, endpointKey(shard.route.read!), topicId, req.encoding].join('\u0000');
    // Rows of up to maxMessageBytes each: never read far more than the answer may carry.
    const rowBytes = this.rowBytes.get(key) ?? this.options.maxMessageBytes;
    const rows = Math.max(1, Math.min(limit, Math.floor(req.maxBytes / Math.max(1, rowBytes))));
    const read = await this.cache.read(
      key,
      start,
      rows,
      () => this.readDb(shard, key, topicId, start, rows, req.encoding),
      () => this.commits.get(req.topic) ?? 0,
    );
    this.metrics.fetchShardReads.inc({ source: read.source });
    // Deliveries are counted on the primary only (while it is down, nothing is dead-lettered).
    const fromCommitted = from.committed && shard.writable ? { shard, topicId } : undefined;
    return { kind: 'read', shard: shard.name, start, generation, messages: read.messages, fromCommitted };
  }

  /** Messages after `start` on the shard's read instance, up to the first gap that may still fill. */
  private async readDb(
    shard: ShardView,
    key: string,
    topicId: number,
    start: number,
    rows: number,
    encoding: AnswerEncoding,
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
      const newestKey = `${shard.name}\u0000${topicId}`;
      this.newestSeen.set(newestKey, Math.max(this.newestSeen.get(newestKey) ?? 0, read[read.length - 1].id));
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

  /**
   * Where the consumer reads this shard from (`committed`: from the group's committed offset, as
   * the consumer gave no position) and the group's generation there, or undefined while another
   * consumer holds it. A position from another generation (the group was reset since) is ignored.
   */
  private async startPosition(
    shard: ShardView,
    topicId: number,
    req: FetchRequest,
  ): Promise<{ start: number; committed: boolean; generation: number } | undefined> {
    const key = leaseKey(req.group, req.topic, shard.name);
    const positionIn = (generation: number) => {
      const sent = req.generations[shard.name];
      return sent === undefined || sent === generation ? req.positions[shard.name] : undefined;
    };
    if (!shard.writable) {
      // No lease can be written while the primary is away; reads go on from the standby.
      const db = this.pools.get(shard.route.read!);
      const lease = await readLease(db, req.group, topicId);
      const generation = lease?.generation ?? 0;
      const given = positionIn(generation);
      if (given !== undefined) return { start: given, committed: false, generation };
      const pending = await this.pending.offset(shard.name, req.group, req.topic);
      const deleted = await retentionDeletedThrough(db, topicId);
      return { start: Math.max(lease?.committedId ?? 0, pending, deleted), committed: true, generation };
    }
    const left = (this.leases.get(key)?.expiresAt ?? 0) - Date.now();
    const ttl = this.options.leaseTtlMs;
    if (this.leases.get(key)?.consumer !== req.consumer || left < ttl / 4) {
      if (!(await this.takeLease(shard, topicId, req.group, req.topic, req.consumer))) return undefined;
    } else if (left < ttl / 2) {
      this.renewInBackground(shard, topicId, req.group, req.topic, req.consumer);
    }
    const { committed, deletedThrough, generation } = this.leases.get(key)!;
    const given = positionIn(generation);
    // Ids retention deleted are known to be gone: starting past them keeps the gap rule (gaps.ts)
    // from waiting for them to fill, so the group resumes at the oldest kept message at once. A
    // position behind the committed offset is a consumer that went back after a handler error
    // over a message since dead-lettered (and committed past).
    return given === undefined
      ? { start: Math.max(committed, deletedThrough), committed: true, generation }
      : { start: Math.max(given, committed, deletedThrough), committed: false, generation };
  }

  /**
   * Takes or renews the consumer's lease on the shard and caches it; false while another consumer
   * holds it. Offsets committed and leases released while the shard took no writes come first.
   */
  private async takeLease(
    shard: ShardView,
    topicId: number,
    group: string,
    topic: string,
    consumer: string,
  ): Promise<boolean> {
    const key = leaseKey(group, topic, shard.name);
    const now = Date.now();
    await this.pending.apply(shard, group, topic, topicId);
    const db = this.pools.get(shard.route.write!);
    const lease = await acquireLease(db, group, topicId, consumer, this.options.leaseTtlMs);
    if (lease.owner !== consumer) {
      this.leases.delete(key);
      return false;
    }
    this.leases.set(key, {
      consumer,
      expiresAt: now + lease.remainingMs,
      committed: lease.committedId,
      deletedThrough: await retentionDeletedThrough(db, topicId),
      generation: lease.generation,
    });
    return true;
  }

  /**
   * Renews a lease that still runs for a while without holding up the read: the renewal is a
   * durable write, slow on a busy primary, and one past the read's shard deadline failed the
   * shard's reads until it returned. One renewal per lease at a time.
   */
  private renewInBackground(
    shard: ShardView,
    topicId: number,
    group: string,
    topic: string,
    consumer: string,
  ) {
    const key = leaseKey(group, topic, shard.name);
    if (this.renewing.has(key)) return;
    this.renewing.add(key);
    this.takeLease(shard, topicId, group, topic, consumer)
      .catch((err: unknown) =>
        this.log.warn('lease renewal failed', { shard: shard.name, group, error: errorMessage(err) }),
      )
      .finally(() => this.renewing.delete(key));
  }

  /** Drops what this broker remembers of the group's leases (after a reset or delete). */
  forgetLeases(group: string, topic: string): void {
    for (const shard of this.router.shards()) this.leases.delete(leaseKey(group, topic, shard.name));
  }

  /**
   * Counts a delivery of the shard's first uncommitted message from the committed offset; true
   * when it was delivered maxDeliveries times already without a commit, and is now dead-lettered.
   */
  private async overDeliveryLimit(
    shard: ShardView,
    topicId: number,
    req: FetchRequest,
    id: number,
    committed: number,
  ): Promise<boolean> {
    const max = await this.deadLetters.maxDeliveries(shard, req.topic);
    if (max === undefined) return false;
    const count = await countDelivery(this.pools.get(shard.route.write!), req.group, topicId, id, committed);
    if (count.attempts < max) return false;
    await this.deadLetter(shard, topicId, req.topic, req.group, id, 'not_committed', count);
    return true;
  }

  /**
   * Handler failures the SDK reports (`failed` in a fetch, from the lease holder): each counts
   * as a delivery of that message; one delivered maxDeliveries times is dead-lettered.
   */
  async recordFailures(
    group: string,
    topic: string,
    consumer: string,
    failed: readonly HandlerFailure[],
  ): Promise<void> {
    const shards = new Map(this.router.writableShards().map((s) => [s.name, s]));
    for (const f of failed) {
      // Counted on the shard's primary only: while it is down, failed messages are delivered again.
      const shard = shards.get(f.shard);
      if (!shard) continue;
      try {
        await this.recordFailure(shard, group, topic, consumer, f);
      } catch (err) {
        // A report that cannot be counted now only means one more delivery of that message.
        this.log.warn('handler failure not counted', { shard: f.shard, id: f.id, error: errorMessage(err) });
      }
    }
  }

  private async recordFailure(
    shard: ShardView,
    group: string,
    topic: string,
    consumer: string,
    f: HandlerFailure,
  ): Promise<void> {
    const max = await this.deadLetters.maxDeliveries(shard, topic);
    if (max === undefined) return;
    const { owner, topicId } = await this.leaseHolder(shard, group, topic, consumer);
    if (owner !== consumer || topicId === undefined) return;
    const committed = this.leases.get(leaseKey(group, topic, shard.name))?.committed ?? 0;
    if (f.id <= committed) return;
    const db = this.pools.get(shard.route.write!);
    const count = await countDelivery(db, group, topicId, f.id, committed, f.error ?? 'handler failed');
    if (count.attempts >= max)
      await this.deadLetter(shard, topicId, topic, group, f.id, 'handler_failed', count);
  }

  /** Copies the message to `<topic>.dlq`, then commits the group past it. */
  private async deadLetter(
    shard: ShardView,
    topicId: number,
    topic: string,
    group: string,
    id: number,
    reason: DeadLetterReason,
    count: DeliveryCount,
  ): Promise<void> {
    const message = await readMessage(this.pools.get(shard.route.write!), topicId, id);
    if (message) {
      await this.deadLetters.copy({
        topic,
        group,
        shard: shard.name,
        message,
        reason,
        deliveries: count.attempts,
        error: count.lastError,
      });
    }
    await this.offsetWriter.commit(shard.route.write!, { group, topicId, id });
    const cached = this.leases.get(leaseKey(group, topic, shard.name));
    if (cached) cached.committed = Math.max(cached.committed, id);
  }

  /**
   * Records that the group processed everything up to the given id on each shard, for `consumer`:
   * only the consumer holding a shard's lease may commit for it (one that holds none takes it, as a
   * fetch would), and never past the newest stored message. Every shard is checked before any is
   * written; a refusal (4xx) of one refuses the whole commit. A shard whose primary is down (or
   * fails the write) keeps its offset on another shard (pending.ts), applied when it takes writes
   * again. A shard that can do neither now (its primary gone before the routing says so, no other
   * shard writable) is answered in `unavailable` while the others are committed: one shard's
   * outage must not hold up the group's commits, and so its reads, on the healthy ones.
   */
  async commit(
    group: string,
    topic: string,
    consumer: string,
    offsets: Record<string, number>,
    generations: Record<string, number> = {},
  ): Promise<CommitOutcome> {
    const shards = new Map(this.router.shards().map((s) => [s.name, s]));
    const unknown = Object.keys(offsets).find((name) => !shards.has(name));
    if (unknown) throw badRequest('unknown_shard', `shard "${unknown}" is not in the routing`);
    const entries = Object.entries(offsets).map(([name, id]) => ({ shard: shards.get(name)!, id }));
    const unavailableShards: Record<string, { code: string; message: string }> = {};
    const checked = await Promise.allSettled(
      entries.map((e) =>
        this.deadlines.run(readKey(e.shard), `shard ${e.shard.name}`, () =>
          this.checkCommit(e.shard, group, topic, consumer, e.id),
        ),
      ),
    );
    const refused = checked.find(
      (c): c is PromiseRejectedResult => c.status === 'rejected' && isRefusal(c.reason),
    );
    if (refused) throw refused.reason;
    const writable = entries.filter((e, i) => {
      const check = checked[i];
      if (check.status === 'fulfilled') return true;
      unavailableShards[e.shard.name] = shardUnavailable(e.shard.name, check.reason);
      return false;
    });
    const committed: Record<string, number> = {};
    await Promise.all(
      writable.map(async ({ shard, id }) => {
        try {
          await this.commitOnShard(shard, group, topic, id, generations[shard.name]);
          committed[shard.name] = id;
        } catch (err) {
          unavailableShards[shard.name] = shardUnavailable(shard.name, err);
        }
      }),
    );
    if (Object.keys(committed).length === 0 && entries.length > 0) {
      throw unavailable(
        'offsets_unavailable',
        `no offset could be recorded now (${Object.values(unavailableShards)
          .map((u) => u.message)
          .join('; ')}); commit again later`,
      );
    }
    return { committed, unavailable: unavailableShards };
  }

  /** Writes one shard's checked offset: on its primary, or kept on another shard while it is down. */
  private async commitOnShard(
    shard: ShardView,
    group: string,
    topic: string,
    id: number,
    generation: number | undefined,
  ): Promise<void> {
    if (!shard.writable) return this.pending.saveOffset(shard.name, group, topic, id);
    const topicId = await this.catalog.idOnWritable(shard, topic);
    try {
      await this.deadlines.run(writeKey(shard), `offsets on ${shard.name}`, () =>
        this.offsetWriter.commit(shard.route.write!, { group, topicId, id, generation }),
      );
    } catch (err) {
      // The primary went away (or hangs) before the routing said so: kept as during any outage.
      this.log.warn('offset commit failed; keeping it on another shard', {
        shard: shard.name,
        error: errorMessage(err),
      });
      await this.pending.saveOffset(shard.name, group, topic, id);
    }
    const cached = this.leases.get(leaseKey(group, topic, shard.name));
    if (cached && (generation === undefined || generation === cached.generation))
      cached.committed = Math.max(cached.committed, id);
  }

  /** Throws 409 unless `consumer` holds (or can take) the shard's lease, 422 past the newest id. */
  private async checkCommit(
    shard: ShardView,
    group: string,
    topic: string,
    consumer: string,
    id: number,
  ): Promise<void> {
    const { owner, topicId } = await this.leaseHolder(shard, group, topic, consumer);
    if (owner !== consumer) {
      throw new MqError(
        409,
        'not_lease_holder',
        `consumer "${consumer}" does not hold ${shard.name} of topic "${topic}" for group "${group}" (${owner ?? 'nobody'} does); only the holder commits`,
      );
    }
    const newest = topicId === undefined ? 0 : await this.newestId(shard, topicId, id);
    if (id > newest) {
      throw new MqError(
        422,
        'offset_out_of_range',
        `offset ${id} for ${shard.name} is past the newest message of topic "${topic}" there (${newest})`,
      );
    }
  }

  /**
   * Who holds the shard's lease for the group: `consumer` when it holds it or could take it (then
   * it does). While the primary is away no lease can be taken: any consumer may commit unless
   * another holds an unexpired lease.
   */
  private async leaseHolder(
    shard: ShardView,
    group: string,
    topic: string,
    consumer: string,
  ): Promise<{ owner: string | null; topicId: number | undefined }> {
    const key = leaseKey(group, topic, shard.name);
    const now = Date.now();
    let owner: string | null;
    let topicId: number | undefined;
    const cached = this.leases.get(key);
    if (shard.writable && cached?.consumer === consumer && cached.expiresAt > now) {
      owner = consumer;
      topicId = await this.catalog.idOnWritable(shard, topic);
    } else if (shard.writable) {
      topicId = await this.catalog.idOnWritable(shard, topic);
      await this.pending.apply(shard, group, topic, topicId);
      const lease = await acquireLease(
        this.pools.get(shard.route.write!),
        group,
        topicId,
        consumer,
        this.options.leaseTtlMs,
      );
      owner = lease.owner;
      if (owner === consumer) {
        this.leases.set(key, {
          consumer,
          expiresAt: now + lease.remainingMs,
          committed: lease.committedId,
          deletedThrough: await retentionDeletedThrough(this.pools.get(shard.route.write!), topicId),
          generation: lease.generation,
        });
      }
    } else {
      // No lease can be taken while the primary is away: refuse only a shard another consumer holds.
      topicId = await this.catalog.idOnReadable(shard, topic);
      const lease =
        topicId === undefined
          ? undefined
          : await readLease(this.pools.get(shard.route.read!), group, topicId);
      owner = lease?.owner && lease.remainingMs > 0 ? lease.owner : consumer;
    }
    return { owner, topicId };
  }

  /** The newest message id of the shard's table, looked up only when `atLeast` is past what was seen. */
  private async newestId(shard: ShardView, topicId: number, atLeast: number): Promise<number> {
    const key = `${shard.name}\u0000${topicId}`;
    const seen = this.newestSeen.get(key) ?? 0;
    if (atLeast <= seen) return seen;
    const instance = shard.writable ? shard.route.write! : shard.route.read!;
    const newest = await highestMessageId(this.pools.get(instance), topicId);
    this.newestSeen.set(key, Math.max(seen, newest));
    return newest;
  }

  /**
   * A consumer's heartbeat: extends its leases on every shard where it holds one, so a consumer
   * whose handler runs longer than a lease keeps its shards while it lives. Answers the shards it
   * holds; 409 `no_lease_held` when it holds none (it should fetch again), 503 when no shard could
   * tell. A shard whose primary is down renews nothing (no lease can be written or taken there):
   * it counts as held while its standby names this consumer.
   */
  async heartbeat(group: string, topic: string, consumer: string): Promise<string[]> {
    const answers = await Promise.all(
      this.router.shards().map(async (shard) => {
        if (!shard.readable) return 'failed';
        try {
          return await this.deadlines.run(heartbeatKey(shard), `leases on ${shard.name}`, async () =>
            (await this.holdsAfterHeartbeat(shard, group, topic, consumer)) ? 'held' : 'not_held',
          );
        } catch (err) {
          this.log.warn('heartbeat on shard failed', { shard: shard.name, error: errorMessage(err) });
          return 'failed';
        }
      }),
    );
    const shards = this.router.shards();
    const held = shards.filter((_, i) => answers[i] === 'held').map((s) => s.name);
    if (held.length > 0) return held;
    if (answers.includes('failed')) {
      throw unavailable('heartbeat_unavailable', 'no shard could renew or confirm the leases right now');
    }
    throw new MqError(
      409,
      'no_lease_held',
      `consumer "${consumer}" holds no shard of topic "${topic}" for group "${group}"; fetch to take one`,
    );
  }

  private async holdsAfterHeartbeat(
    shard: ShardView,
    group: string,
    topic: string,
    consumer: string,
  ): Promise<boolean> {
    const topicId = await this.catalog.idOnReadable(shard, topic);
    if (topicId === undefined) return false;
    if (!shard.writable) {
      const lease = await readLease(this.pools.get(shard.route.read!), group, topicId);
      return lease?.owner === consumer;
    }
    const now = Date.now();
    const ttl = this.options.leaseTtlMs;
    if (!(await renewLease(this.pools.get(shard.route.write!), group, topicId, consumer, ttl))) return false;
    // The row now runs at least until `now + ttl` (the database's now is later): fetches and
    // commits through this broker need not renew it again before then.
    const cached = this.leases.get(leaseKey(group, topic, shard.name));
    if (cached?.consumer === consumer) cached.expiresAt = Math.max(cached.expiresAt, now + ttl);
    return true;
  }

  /**
   * Gives up the consumer's leases so another consumer of the group can take over at once. A shard
   * whose primary is down (or fails the write) gets the release when it takes writes again.
   */
  async leave(group: string, topic: string, consumer: string): Promise<void> {
    await Promise.all(
      this.router.shards().map(async (shard) => {
        this.leases.delete(leaseKey(group, topic, shard.name));
        const released = await this.deadlines
          .run(readKey(shard), `leases on ${shard.name}`, () => this.released(shard, group, topic, consumer))
          .catch(() => false);
        if (!released) await this.pending.saveRelease(shard.name, group, topic, consumer);
      }),
    );
  }

  /** Releases the consumer's lease on the shard; false when the release must wait for its primary. */
  private async released(shard: ShardView, group: string, topic: string, consumer: string): Promise<boolean> {
    if (!shard.readable) return false;
    try {
      const topicId = await this.catalog.idOnReadable(shard, topic);
      if (topicId === undefined) return true;
      if (shard.writable) {
        await releaseLease(this.pools.get(shard.route.write!), group, topicId, consumer);
        return true;
      }
      const lease = await readLease(this.pools.get(shard.route.read!), group, topicId);
      return !lease || lease.owner !== consumer || lease.remainingMs <= 0;
    } catch (err) {
      this.log.warn('lease release failed; keeping it on another shard', {
        shard: shard.name,
        error: errorMessage(err),
      });
      return false;
    }
  }

  /**
   * The group's committed offset (including one kept elsewhere while the shard took no writes) and
   * the newest id on every readable shard.
   */
  async offsets(group: string, topic: string): Promise<ShardOffsets[]> {
    return Promise.all(
      this.router.readableShards().map(async (shard): Promise<ShardOffsets> => {
        try {
          return await this.deadlines.run(readKey(shard), `shard ${shard.name}`, async () => {
            const db = this.pools.get(shard.route.read!);
            const topicId = await this.catalog.idOnReadable(shard, topic);
            if (topicId === undefined) return { shard: shard.name, ...NO_OFFSETS };
            const [lease, pending, latest, deletedThrough] = await Promise.all([
              readLease(db, group, topicId),
              this.pending.offset(shard.name, group, topic),
              highestMessageId(db, topicId),
              retentionDeletedThrough(db, topicId),
            ]);
            const committed = Math.max(lease?.committedId ?? 0, pending);
            return {
              shard: shard.name,
              committed,
              latest,
              owner: lease && lease.remainingMs > 0 ? lease.owner : null,
              deletedThrough,
              missed: Math.max(0, deletedThrough - committed),
            };
          });
        } catch (err) {
          return { shard: shard.name, ...NO_OFFSETS, error: errorMessage(err) };
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

/**
 * Heartbeats have deadlines of their own: a lease UPDATE is a durable commit, slow on a busy
 * primary, and one past the deadline must not fail the shard's reads at once until it returns.
 */
const heartbeatKey = (s: ShardView) => `heartbeat\u0000${readKey(s)}`;
const leaseKey = (group: string, topic: string, shard: string) => `${group}\u0000${topic}\u0000${shard}`;

type ShardRead =
  | {
      kind: 'read';
      shard: string;
      start: number;
      /** The group's generation on the shard (see startPosition). */
      generation: number;
      messages: FetchedMessage[];
      /** Set when the read started at the group's committed offset on the shard's primary. */
      fromCommitted?: { shard: ShardView; topicId: number };
    }
  | { kind: 'empty' | 'held' | 'failed'; shard: string };

/**
 * Interleaves the shards' messages (no global order exists across shards) up to the request's
 * limits, and reports each shard's position after what is returned. Pure.
 */
export function mergeShardReads(
  reads: ShardRead[],
  req: Pick<FetchRequest, 'maxMessages' | 'maxBytes'>,
): FetchResult {
  const result: FetchResult = { messages: [], positions: {}, heldElsewhere: [], generations: {} };
  const lists = reads.flatMap((r) => {
    if (r.kind === 'held') result.heldElsewhere.push(r.shard);
    if (r.kind !== 'read') return [];
    result.positions[r.shard] = r.start;
    result.generations[r.shard] = r.generation;
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

/** What a commit recorded, and the shards to commit again later. */
export interface CommitOutcome {
  committed: Record<string, number>;
  unavailable: Record<string, { code: string; message: string }>;
}

/** A 4xx: the request itself is wrong (not the holder, past the newest message), whatever the shard's health. */
const isRefusal = (err: unknown) => err instanceof MqError && err.status < 500;

function shardUnavailable(shard: string, err: unknown): { code: string; message: string } {
  if (err instanceof MqError) return err.toJSON();
  return { code: 'shard_unavailable', message: `shard ${shard}: ${errorMessage(err)}` };
}
