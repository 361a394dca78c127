import { type Endpoint, endpointKey } from '../shard/connection.js';
import { type GroupOffset, commitOffsets } from './queue-store.js';
import type { ShardPools } from './shard-pools.js';

interface Waiter {
  resolve(): void;
  reject(err: unknown): void;
}

interface Instance {
  endpoint: Endpoint;
  /** Per group, topic and generation: the highest offset asked for and who waits for it. */
  pending: Map<string, GroupOffset & { waiters: Waiter[] }>;
  writing: boolean;
}

/**
 * Group commit for consumer offsets. Each offset commit is a durable, semi-sync replicated
 * transaction, and consumers commit after every fetch: ten groups reading at the tail made more
 * transactions than the publishes did. Commits for one instance that arrive while its statement
 * runs are written together by the next statement; each caller is answered once its offset is in.
 */
export class OffsetWriter {
  private readonly instances = new Map<string, Instance>();

  constructor(private readonly pools: ShardPools) {}

  /** Records `offset` on the instance at `endpoint` (a primary). */
  commit(endpoint: Endpoint, offset: GroupOffset): Promise<void> {
    const key = endpointKey(endpoint);
    let instance = this.instances.get(key);
    if (!instance) this.instances.set(key, (instance = { endpoint, pending: new Map(), writing: false }));
    const target = instance;
    return new Promise((resolve, reject) => {
      const entryKey = `${offset.group}\u0000${offset.topicId}\u0000${offset.generation ?? ''}`;
      const entry = target.pending.get(entryKey);
      if (entry) {
        entry.id = Math.max(entry.id, offset.id);
        entry.waiters.push({ resolve, reject });
      } else {
        target.pending.set(entryKey, { ...offset, waiters: [{ resolve, reject }] });
      }
      if (!target.writing) void this.write(target);
    });
  }

  private async write(instance: Instance): Promise<void> {
    instance.writing = true;
    while (instance.pending.size > 0) {
      // Sorted, so two brokers' statements lock the rows in the same order.
      const batch = [...instance.pending].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, entry]) => entry);
      instance.pending = new Map();
      try {
        await commitOffsets(this.pools.get(instance.endpoint), batch);
        for (const entry of batch) for (const w of entry.waiters) w.resolve();
      } catch (err) {
        for (const entry of batch) for (const w of entry.waiters) w.reject(err);
      }
    }
    instance.writing = false;
  }
}
