import { type TopicSettings, parseTopicSettings } from '../api/topic-settings.js';
import type { Logger } from '../common/logger.js';
import type { BrokerMetrics } from './metrics.js';
import { type Payload, type StoredMessage, readTopicSettings } from './queue-store.js';
import type { ShardPools } from './shard-pools.js';
import type { ShardView } from './shard-router.js';

/** A topic's settings are read again after this long, so an update reaches every broker. */
const SETTINGS_TTL_MS = 5000;

export const deadLetterTopic = (topic: string) => `${topic}.dlq`;

/** Why a message was dead-lettered. */
export type DeadLetterReason = 'handler_failed' | 'not_committed';

export interface DeadLetter {
  topic: string;
  group: string;
  shard: string;
  message: StoredMessage;
  reason: DeadLetterReason;
  deliveries: number;
  /** The last error the SDK reported for it. */
  error: string | null;
}

/**
 * The body of the copy in `<topic>.dlq`: the message (UTF-8 text as is, other bytes in base64)
 * with where it came from and why it was set aside, as one JSON object. Pure.
 */
export function deadLetterBody(d: DeadLetter): string {
  let value: string;
  let encoding: 'utf8' | 'base64' = 'utf8';
  try {
    value = new TextDecoder('utf-8', { fatal: true }).decode(d.message.payload);
  } catch {
    value = d.message.payload.toString('base64');
    encoding = 'base64';
  }
  return JSON.stringify({
    topic: d.topic,
    group: d.group,
    shard: d.shard,
    id: d.message.id,
    publishedAt: d.message.publishedAt,
    reason: d.reason,
    deliveries: d.deliveries,
    error: d.error,
    encoding,
    value,
  });
}

/**
 * Per-topic settings as the fetch path needs them (cached per shard for a few seconds), and the
 * copy of a message that exceeded the topic's maxDeliveries into `<topic>.dlq`.
 */
export class DeadLetters {
  private readonly settings = new Map<string, { value: TopicSettings; readAt: number }>();

  constructor(
    private readonly pools: ShardPools,
    /** Publishes through the broker's writer; resolves once acknowledged. */
    private readonly publish: (topic: string, payloads: Payload[], bytes: number) => Promise<unknown>,
    private readonly metrics: BrokerMetrics,
    private readonly log: Logger,
  ) {}

  /** The topic's maxDeliveries as stored on this shard (read instance), if set. */
  async maxDeliveries(shard: ShardView, topic: string): Promise<number | undefined> {
    const key = `${shard.name}\u0000${topic}`;
    const now = Date.now();
    const cached = this.settings.get(key);
    if (cached && now - cached.readAt < SETTINGS_TTL_MS) return cached.value.maxDeliveries;
    const value = parseTopicSettings(await readTopicSettings(this.pools.get(shard.route.read!), topic));
    this.settings.set(key, { value, readAt: now });
    return value.maxDeliveries;
  }

  /** Forgets cached settings of the topic (this broker just changed them). */
  invalidate(topic: string): void {
    for (const key of this.settings.keys()) if (key.endsWith(`\u0000${topic}`)) this.settings.delete(key);
  }

  /** Copies the message to `<topic>.dlq`; resolves once that copy is acknowledged. */
  async copy(d: DeadLetter): Promise<void> {
    const body = deadLetterBody(d);
    await this.publish(deadLetterTopic(d.topic), [body], Buffer.byteLength(body));
    this.metrics.deadLettered.inc({ topic: d.topic, group: d.group });
    this.log.warn('message dead-lettered', {
      topic: d.topic,
      group: d.group,
      shard: d.shard,
      id: d.message.id,
      reason: d.reason,
      deliveries: d.deliveries,
    });
  }
}
