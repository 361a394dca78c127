import { errorMessage, unavailable } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import {
  type PendingForShard,
  commitOffsets,
  deletePending,
  readPending,
  releaseLease,
  savePendingOffset,
  savePendingRelease,
} from './queue-store.js';
import { type ShardDeadlines, readKey, writeKey } from './shard-deadlines.js';
import type { ShardPools } from './shard-pools.js';
import type { ShardRouter, ShardView } from './shard-router.js';

/** A shard's pending rows are looked for at most this often per group and topic (per broker). */
const APPLY_INTERVAL_MS = 1000;

/**
 * What a shard cannot record while its primary is down (its standby is read-only): offsets the
 * group committed and leases consumers gave up. Both are kept on a writable shard (the keeper)
 * and applied to the origin shard when a broker next takes or renews a lease there, before the
 * lease is read, so the group resumes after what it committed and a closed consumer's shards go to
 * the rest of the group at once. Kept in the database rather than in a broker or the SDK: the
 * consumer process may be gone and any broker may take the next lease.
 */
export class PendingState {
  private readonly lastApplied = new Map<string, number>();

  constructor(
    private readonly router: ShardRouter,
    private readonly pools: ShardPools,
    private readonly deadlines: ShardDeadlines,
    private readonly log: Logger,
  ) {}

  /** The writable shard that keeps records for `origin`: the first by name, never the origin. */
  private keeper(origin: string): ShardView {
    const keeper = this.router
      .writableShards()
      .filter((s) => s.name !== origin)
      .sort((a, b) => a.name.localeCompare(b.name))[0];
    if (!keeper) throw unavailable('offsets_unavailable', 'no shard takes writes now; commit again later');
    return keeper;
  }

  /**
   * Both under the keeper's write deadline: a keeper that hangs fails the commit with a 503 the
   * SDK retries, instead of holding it until the connection times out.
   */
  async saveOffset(origin: string, group: string, topic: string, id: number): Promise<void> {
    const keeper = this.keeper(origin);
    await this.deadlines.run(writeKey(keeper), `the offset of ${origin} kept on ${keeper.name}`, () =>
      savePendingOffset(this.pools.get(keeper.route.write!), origin, group, topic, id),
    );
  }

  async saveRelease(origin: string, group: string, topic: string, consumer: string): Promise<void> {
    const keeper = this.keeper(origin);
    await this.deadlines.run(writeKey(keeper), `the lease release on ${origin} kept on ${keeper.name}`, () =>
      savePendingRelease(this.pools.get(keeper.route.write!), origin, group, topic, consumer),
    );
  }

  /** The highest offset the other shards keep for `origin` (0: none, or none readable). */
  async offset(origin: string, group: string, topic: string): Promise<number> {
    const found = await this.read(origin, group, topic);
    return Math.max(0, ...found.map((f) => f.pending.offset));
  }

  /**
   * Moves what the other shards keep for the writable `shard` into its group_offsets: the offset
   * forward only, then the releases; then deletes what was applied. Looked for at most once a
   * second per group and topic; `force` looks now.
   */
  async apply(shard: ShardView, group: string, topic: string, topicId: number, force = false): Promise<void> {
    const key = `${shard.name}\u0000${group}\u0000${topic}`;
    const now = Date.now();
    if (!force && now - (this.lastApplied.get(key) ?? 0) < APPLY_INTERVAL_MS) return;
    this.lastApplied.set(key, now);
    const found = (await this.read(shard.name, group, topic)).filter(
      (f) => f.pending.offset > 0 || f.pending.releases.length > 0,
    );
    if (found.length === 0) return;
    const db = this.pools.get(shard.route.write!);
    const offset = Math.max(0, ...found.map((f) => f.pending.offset));
    if (offset > 0) await commitOffsets(db, [{ group, topicId, id: offset }]);
    for (const consumer of new Set(found.flatMap((f) => f.pending.releases))) {
      await releaseLease(db, group, topicId, consumer);
    }
    this.log.info('pending offsets and releases applied', {
      shard: shard.name,
      group,
      topic,
      offset,
      released: found.flatMap((f) => f.pending.releases),
    });
    // Where the keeper takes no writes now, the rows stay; applying them again changes nothing.
    await Promise.all(
      found
        .filter((f) => f.keeper.writable)
        .map((f) =>
          deletePending(this.pools.get(f.keeper.route.write!), shard.name, group, topic, f.pending).catch(
            (err: unknown) =>
              this.log.warn('could not delete applied pending rows', {
                shard: f.keeper.name,
                error: errorMessage(err),
              }),
          ),
        ),
    );
  }

  /**
   * What every other readable shard keeps for `origin`; a shard that fails to answer keeps nothing.
   * A hung keeper is given up after its shard deadline (then at once while it stays hung): it must
   * not hold up the lease renewals, and so the reads, of every other shard.
   */
  private async read(
    origin: string,
    group: string,
    topic: string,
  ): Promise<{ keeper: ShardView; pending: PendingForShard }[]> {
    const keepers = this.router.readableShards().filter((s) => s.name !== origin);
    const found = await Promise.allSettled(
      keepers.map(async (keeper) => ({
        keeper,
        pending: await this.deadlines.run(readKey(keeper), `pending records on ${keeper.name}`, () =>
          readPending(this.pools.get(keeper.route.read!), origin, group, topic),
        ),
      })),
    );
    return found.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  }
}
