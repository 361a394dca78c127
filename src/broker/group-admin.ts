import { MqError, badRequest, errorMessage, notFound, unavailable } from '../common/errors.js';
import type { Fetcher } from './fetcher.js';
import {
  deleteDeliveryCounts,
  deleteGroupOffset,
  deletePendingOffsets,
  earliestOffset,
  highestMessageId,
  listGroupRows,
  offsetBeforeTime,
  readLease,
  resetGroupOffset,
} from './queue-store.js';
import type { ShardPools } from './shard-pools.js';
import type { ShardRouter, ShardView } from './shard-router.js';
import type { TopicCatalog } from './topic-catalog.js';
import type { GroupInfo, GroupShard, ResetTarget } from '../api/groups.js';

/**
 * Consumer-group administration: list, reset and delete. A reset or delete writes every shard it
 * touches on its primary, so it is refused (503) while one of them takes no writes rather than
 * leaving the group half moved; it is refused (409) while consumers hold leases unless forced. A
 * forced reset starts a new generation and releases the leases: commits of consumers that read
 * under the old generation are then ignored (queue-store.ts `commitOffsets`), and their next fetch
 * starts from the new offset.
 */
export class GroupAdmin {
  constructor(
    private readonly router: ShardRouter,
    private readonly pools: ShardPools,
    private readonly catalog: TopicCatalog,
    private readonly fetcher: Fetcher,
  ) {}

  /** Every group of the topic with its members and, per shard, committed, newest, lag and owner. */
  async list(topic: string): Promise<GroupInfo[]> {
    await this.catalog.requireTopic(topic);
    const perShard = await Promise.all(
      this.router.shards().map(async (shard) => {
        if (!shard.readable) return { shard: shard.name, error: 'no instance serves reads' };
        try {
          const db = this.pools.get(shard.route.read!);
          const topicId = await this.catalog.idOnReadable(shard, topic);
          if (topicId === undefined) return { shard: shard.name, newest: 0, rows: [] };
          const [rows, newest] = await Promise.all([
            listGroupRows(db, topicId),
            highestMessageId(db, topicId),
          ]);
          return { shard: shard.name, newest, rows };
        } catch (err) {
          return { shard: shard.name, error: errorMessage(err) };
        }
      }),
    );
    const names = new Set(perShard.flatMap((s) => (s.rows ?? []).map((r) => r.group)));
    return [...names].sort().map((name): GroupInfo => {
      const shards: Record<string, GroupShard> = {};
      for (const s of perShard) {
        if (s.error !== undefined) {
          shards[s.shard] = { committed: null, newest: null, lag: null, owner: null, error: s.error };
          continue;
        }
        // A shard the group never committed on is read from its start.
        const row = s.rows!.find((r) => r.group === name);
        const committed = row?.committedId ?? 0;
        shards[s.shard] = {
          committed,
          newest: s.newest!,
          lag: Math.max(0, s.newest! - committed),
          owner: row?.owner ?? null,
        };
      }
      const members = new Set(Object.values(shards).flatMap((s) => (s.owner ? [s.owner] : [])));
      return { name, members: [...members].sort(), shards };
    });
  }

  /** Moves the group; returns the new committed offset per shard. */
  async reset(
    topic: string,
    group: string,
    target: ResetTarget,
    force: boolean,
  ): Promise<Record<string, number>> {
    await this.catalog.requireTopic(topic);
    const shards = this.targetShards(target);
    const ids = await this.writableTopicIds(shards, topic, 'reset');
    if (!force) await this.refuseWhileActive(shards, ids, group);
    // Every offset first: a bad one refuses the reset before any shard moved.
    const offsets = await Promise.all(
      shards.map((shard, i) => offsetFor(target, shard, this.pools.get(shard.route.write!), ids[i])),
    );
    await Promise.all(
      shards.map(async (shard, i) => {
        const db = this.pools.get(shard.route.write!);
        await resetGroupOffset(db, group, ids[i], offsets[i]);
        // Deliveries counted before the reset would dead-letter redelivered messages early.
        await deleteDeliveryCounts(db, group, ids[i]);
      }),
    );
    await this.forgetPending(group, topic, shards);
    return Object.fromEntries(shards.map((shard, i) => [shard.name, offsets[i]]));
  }

  /** Removes the group's offsets on every shard; 404 when no shard knew it. */
  async delete(topic: string, group: string, force: boolean): Promise<void> {
    await this.catalog.requireTopic(topic);
    const shards = this.router.shards();
    const ids = await this.writableTopicIds(shards, topic, 'delete');
    if (!force) await this.refuseWhileActive(shards, ids, group);
    const deleted = await Promise.all(
      shards.map(async (shard, i) => {
        const db = this.pools.get(shard.route.write!);
        await deleteDeliveryCounts(db, group, ids[i]);
        return deleteGroupOffset(db, group, ids[i]);
      }),
    );
    await this.forgetPending(group, topic, shards);
    if (!deleted.some(Boolean)) {
      throw notFound('group_not_found', `topic "${topic}" has no consumer group "${group}"`);
    }
  }

  private targetShards(target: ResetTarget): ShardView[] {
    const shards = this.router.shards();
    if (typeof target !== 'object' || !('offsets' in target)) return shards;
    const names = Object.keys(target.offsets);
    if (names.length === 0) throw badRequest('invalid_reset', 'offsets must name at least one shard');
    const unknown = names.find((n) => !shards.some((s) => s.name === n));
    if (unknown) throw badRequest('unknown_shard', `shard "${unknown}" is not in the routing`);
    return shards.filter((s) => names.includes(s.name));
  }

  /** The topic's table id on each shard's primary; 503 when one of them takes no writes. */
  private async writableTopicIds(shards: ShardView[], topic: string, action: string): Promise<number[]> {
    const down = shards.filter((s) => !s.writable).map((s) => s.name);
    if (down.length > 0) {
      throw unavailable(
        'shard_read_only',
        `cannot ${action} the group: ${down.join(', ')} take(s) no writes now (primary down); nothing was changed, retry once every shard is writable`,
      );
    }
    return Promise.all(shards.map((s) => this.catalog.idOnWritable(s, topic)));
  }

  private async refuseWhileActive(shards: ShardView[], ids: number[], group: string): Promise<void> {
    const leases = await Promise.all(
      shards.map((s, i) => readLease(this.pools.get(s.route.write!), group, ids[i])),
    );
    const active = leases.flatMap((lease, i) =>
      lease?.owner && lease.remainingMs > 0 ? [`${lease.owner} on ${shards[i].name}`] : [],
    );
    if (active.length > 0) {
      throw new MqError(
        409,
        'group_active',
        `group "${group}" has active members (${active.join(', ')}); stop them first or force it`,
      );
    }
  }

  /** Offsets kept elsewhere while a shard was down would otherwise be merged over the new ones. */
  private async forgetPending(group: string, topic: string, shards: ShardView[]): Promise<void> {
    const origins = shards.map((s) => s.name);
    await Promise.all(
      this.router
        .writableShards()
        .map((s) => deletePendingOffsets(this.pools.get(s.route.write!), group, topic, origins)),
    );
    this.fetcher.forgetLeases(group, topic);
  }
}

async function offsetFor(
  target: ResetTarget,
  shard: ShardView,
  db: Parameters<typeof highestMessageId>[0],
  topicId: number,
): Promise<number> {
  if (target === 'earliest') return earliestOffset(db, topicId);
  if (target === 'latest') return highestMessageId(db, topicId);
  if ('timestamp' in target) return offsetBeforeTime(db, topicId, target.timestamp);
  const id = target.offsets[shard.name];
  const newest = await highestMessageId(db, topicId);
  if (id > newest) {
    throw new MqError(
      422,
      'offset_out_of_range',
      `offset ${id} for ${shard.name} is past its newest message ${newest}`,
    );
  }
  return id;
}
