/**
 * Per-topic settings: a JSON object in `mq.topics.settings` on every shard (NULL: none set). A key
 * that is absent falls back to the cluster's default. Shared by the broker, the operator (the
 * MessageQueueTopic resource writes them) and the retention and dead-letter code that reads them.
 */
export interface TopicSettings {
  /** Messages older than this are deleted; overrides the cluster's `spec.retention.maxAgeHours`. */
  retentionMaxAgeHours?: number;
  /** Oldest messages are deleted while a shard's part of the topic is larger; overrides `spec.retention.maxBytesPerShard`. */
  retentionMaxBytesPerShard?: number;
  /** Deliveries (handler failures or fetches not committed) after which a message goes to `<topic>.dlq`. */
  maxDeliveries?: number;
  /** Publishes of larger messages are refused (413); never above the broker's own limit. */
  maxMessageBytes?: number;
}

const POSITIVE_INTEGER_KEYS = [
  'retentionMaxAgeHours',
  'retentionMaxBytesPerShard',
  'maxDeliveries',
  'maxMessageBytes',
] as const satisfies readonly (keyof TopicSettings)[];

/**
 * The settings stored in a topic row, keeping only known keys with positive integer values: a row
 * written by a newer version never breaks an older reader.
 */
export function parseTopicSettings(stored: string | null | undefined): TopicSettings {
  if (!stored) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(stored);
  } catch {
    return {};
  }
  if (typeof parsed !== 'object' || parsed === null) return {};
  const settings: TopicSettings = {};
  for (const key of POSITIVE_INTEGER_KEYS) {
    const value = (parsed as Record<string, unknown>)[key];
    if (typeof value === 'number' && Number.isSafeInteger(value) && value > 0) settings[key] = value;
  }
  return settings;
}
