import { MqError } from '../common/errors.js';
import { countGroups } from './queue-store.js';
import type { ShardPools } from './shard-pools.js';
import type { ShardRouter } from './shard-router.js';
import type { TopicCatalog } from './topic-catalog.js';

/**
 * Caps the consumer groups of a topic. Every group leaves a row per shard and an entry in the
 * brokers' lease caches, so a client inventing group names must not grow them without end. A
 * group already stored on some shard is always admitted; a new one only while the topic has fewer.
 */
export class GroupAdmission {
  /** topic -> groups admitted (at most `maxGroupsPerTopic` each). */
  private readonly admitted = new Map<string, Set<string>>();

  constructor(
    private readonly router: ShardRouter,
    private readonly pools: ShardPools,
    private readonly catalog: TopicCatalog,
    private readonly maxGroupsPerTopic: number,
  ) {}

  async admit(topic: string, group: string): Promise<void> {
    if (this.admitted.get(topic)?.has(group)) return;
    const counts = await Promise.all(
      this.router.readableShards().map(async (shard) => {
        const topicId = await this.catalog.idOnReadable(shard, topic);
        return topicId === undefined
          ? { groups: 0, stored: false }
          : countGroups(this.pools.get(shard.route.read!), topicId, group);
      }),
    );
    const groups = Math.max(0, ...counts.map((c) => c.groups));
    if (!counts.some((c) => c.stored) && groups >= this.maxGroupsPerTopic) {
      throw new MqError(
        409,
        'group_limit',
        `topic "${topic}" has ${groups} consumer groups, the most it may have (${this.maxGroupsPerTopic}); delete unused groups first`,
      );
    }
    let set = this.admitted.get(topic);
    if (!set) this.admitted.set(topic, (set = new Set()));
    if (set.size < this.maxGroupsPerTopic) set.add(group);
  }
}
