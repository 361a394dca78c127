import type mysql from 'mysql2/promise';
import { MqError, errorMessage, notFound, unavailable } from '../common/errors.js';
import {
  createTopic,
  findTopicId,
  listTopics,
  readTopicSettings,
  writeTopicSettings,
} from './queue-store.js';
import type { SettingsPatch } from './requests.js';
import type { ShardPools } from './shard-pools.js';
import type { ShardRouter, ShardView } from './shard-router.js';

/**
 * Topic names and their per-shard table ids. Every shard holds every topic; a shard that was down
 * when a topic was created gets it on its first write.
 */
export class TopicCatalog {
  private readonly known = new Set<string>();
  /** shard name -> topic -> table id on that shard (ids never change for a shard's data). */
  private readonly ids = new Map<string, Map<string, number>>();

  /** Creations run one at a time, so concurrent ones cannot all pass the topic limit. */
  private creating: Promise<unknown> = Promise.resolve();
  private listedAt = 0;

  constructor(
    private readonly router: ShardRouter,
    private readonly pools: ShardPools,
    private readonly maxTopics: number,
  ) {}

  /**
   * Creates the topic on every writable shard, with `settings` (JSON) where it is new; returns
   * false when it already existed.
   */
  create(topic: string, settings: string | null = null): Promise<boolean> {
    const done = this.creating.then(() => this.createNow(topic, settings));
    this.creating = done.catch(() => undefined);
    return done;
  }

  private async createNow(topic: string, settings: string | null): Promise<boolean> {
    const writable = this.router.writableShards();
    if (writable.length === 0) throw unavailable('no_writable_shard', 'no shard takes writes right now');
    // At the limit, a flood of new names is refused from what was listed within the last second.
    const stale = Date.now() - this.listedAt > 1000;
    if (!this.known.has(topic) && (this.known.size < this.maxTopics || stale)) await this.list();
    const existed = this.known.has(topic);
    if (!existed && this.known.size >= this.maxTopics) {
      throw new MqError(
        409,
        'topic_limit',
        `the cluster has ${this.known.size} topics, the most this broker creates (${this.maxTopics}); delete one first`,
      );
    }
    const results = await Promise.allSettled(
      writable.map((s) => this.idOnWritable(s, topic, undefined, settings)),
    );
    if (!results.some((r) => r.status === 'fulfilled')) {
      throw unavailable('no_writable_shard', `could not create topic "${topic}" on any shard`);
    }
    this.known.add(topic);
    return !existed;
  }

  /**
   * Applies the patch (a number sets a key, null removes it) to the topic's settings on every
   * shard and returns them. A shard that takes no writes now cannot be changed: 503 naming it, after
   * the others were; the same request again completes it.
   */
  async updateSettings(topic: string, patch: SettingsPatch): Promise<Record<string, unknown>> {
    const shards = this.router.shards();
    let merged: Record<string, unknown> = {};
    const results = await Promise.allSettled(
      shards.map(async (shard) => {
        if (!shard.writable) throw new Error('takes no writes now');
        const db = this.pools.get(shard.route.write!);
        await this.idOnWritable(shard, topic);
        const stored = await readTopicSettings(db, topic);
        const settings = { ...parseObject(stored) };
        for (const [key, value] of Object.entries(patch)) {
          if (value === null) delete settings[key];
          else settings[key] = value;
        }
        await writeTopicSettings(db, topic, JSON.stringify(settings));
        merged = settings;
      }),
    );
    const failed = results.flatMap((r, i) =>
      r.status === 'rejected' ? [`${shards[i].name} (${errorMessage(r.reason)})`] : [],
    );
    if (failed.length > 0) {
      throw unavailable(
        'settings_incomplete',
        `settings of "${topic}" not changed on ${failed.join(', ')}; send the same request again`,
      );
    }
    return merged;
  }

  /** Throws 404 unless some shard knows the topic. */
  async requireTopic(topic: string): Promise<void> {
    if (!(await this.exists(topic))) {
      throw notFound('topic_not_found', `topic "${topic}" does not exist; create it first`);
    }
  }

  async exists(topic: string): Promise<boolean> {
    if (this.known.has(topic)) return true;
    await this.list();
    return this.known.has(topic);
  }

  /** Union of the topics of every readable shard. */
  async list(): Promise<string[]> {
    const results = await Promise.allSettled(
      this.router.readableShards().map((s) => listTopics(this.pools.get(s.route.read!))),
    );
    for (const r of results) if (r.status === 'fulfilled') r.value.forEach((t) => this.known.add(t));
    this.listedAt = Date.now();
    return [...this.known].sort();
  }

  /** The topic's table id on the shard's write instance, creating the topic there if needed. */
  async idOnWritable(
    shard: ShardView,
    topic: string,
    db?: mysql.Pool | mysql.PoolConnection,
    settings: string | null = null,
  ): Promise<number> {
    const cached = this.cache(shard.name).get(topic);
    if (cached !== undefined) return cached;
    const target = db ?? this.pools.get(shard.route.write!);
    const id = (await findTopicId(target, topic)) ?? (await createTopic(target, topic, settings));
    this.cache(shard.name).set(topic, id);
    return id;
  }

  /** The topic's table id on the shard's read instance, or undefined if the shard lacks it. */
  async idOnReadable(shard: ShardView, topic: string): Promise<number | undefined> {
    const cached = this.cache(shard.name).get(topic);
    if (cached !== undefined) return cached;
    const id = await findTopicId(this.pools.get(shard.route.read!), topic);
    if (id !== undefined) this.cache(shard.name).set(topic, id);
    return id;
  }

  private cache(shard: string): Map<string, number> {
    let m = this.ids.get(shard);
    if (!m) this.ids.set(shard, (m = new Map()));
    return m;
  }
}

/** A stored settings object as is (keys a newer version wrote are kept). */
function parseObject(stored: string | null): Record<string, unknown> {
  try {
    const parsed: unknown = stored ? JSON.parse(stored) : {};
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : {};
  } catch {
    return {};
  }
}
