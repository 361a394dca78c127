/**
 * What a MessageQueueTopic asks of the shards and what the operator shows for it, as pure
 * functions (the reconciler in ./reconciler.ts does the I/O).
 */
import { createHash } from 'node:crypto';
import { type TopicSettings, parseTopicSettings } from '../../api/topic-settings.js';
import { TOPIC_NAME_PATTERN } from '../../shard/schema.js';
import {
  LABEL_DISCOVERED,
  type MessageQueueTopic,
  type MessageQueueTopicSpec,
  TOPIC_KIND,
} from '../api/topic-types.js';
import {
  API_VERSION,
  type Condition,
  KIND,
  LABEL_CLUSTER,
  LABEL_MANAGED_BY,
  MANAGED_BY,
} from '../api/types.js';

export const topicNameOf = (t: MessageQueueTopic): string => t.spec.topicName ?? t.metadata.name;

export const isDiscovered = (t: MessageQueueTopic): boolean =>
  t.metadata.labels?.[LABEL_DISCOVERED] === 'true';

/** The spec's settings in the shape the brokers read from `mq.topics.settings`. */
export function settingsOf(spec: MessageQueueTopicSpec): TopicSettings {
  const s: TopicSettings = {};
  if (spec.retention?.maxAgeHours) s.retentionMaxAgeHours = spec.retention.maxAgeHours;
  if (spec.retention?.maxBytesPerShard) s.retentionMaxBytesPerShard = spec.retention.maxBytesPerShard;
  if (spec.maxDeliveries) s.maxDeliveries = spec.maxDeliveries;
  if (spec.maxMessageBytes) s.maxMessageBytes = spec.maxMessageBytes;
  return s;
}

/** The stored form: JSON with a fixed key order (so equal settings compare equal), null when none. */
export function settingsJson(s: TopicSettings): string | null {
  const keys = [
    'retentionMaxAgeHours',
    'retentionMaxBytesPerShard',
    'maxDeliveries',
    'maxMessageBytes',
  ] as const;
  const ordered = Object.fromEntries(keys.filter((k) => s[k] !== undefined).map((k) => [k, s[k]]));
  return Object.keys(ordered).length ? JSON.stringify(ordered) : null;
}

/** The spec a discovered topic gets: its cluster, its name and the settings it already has. */
export function specFromStored(cluster: string, topic: string, stored: string | null): MessageQueueTopicSpec {
  const s = parseTopicSettings(stored);
  const retention = {
    ...(s.retentionMaxAgeHours ? { maxAgeHours: s.retentionMaxAgeHours } : {}),
    ...(s.retentionMaxBytesPerShard ? { maxBytesPerShard: s.retentionMaxBytesPerShard } : {}),
  };
  return {
    cluster,
    topicName: topic,
    ...(Object.keys(retention).length ? { retention } : {}),
    ...(s.maxMessageBytes ? { maxMessageBytes: s.maxMessageBytes } : {}),
    ...(s.maxDeliveries ? { maxDeliveries: s.maxDeliveries } : {}),
  };
}

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/**
 * The resource name for a discovered topic: the topic's own name when it is a valid object name
 * not taken yet, otherwise `<cluster>-<topic with _ as ->-<hash>` (a hash of cluster and topic,
 * so two clusters' topics of the same name in one namespace get different names).
 */
export function discoveredName(cluster: string, topic: string, taken: ReadonlySet<string>): string {
  if (DNS_SUBDOMAIN.test(topic) && topic.length <= 253 && !taken.has(topic)) return topic;
  const hash = createHash('sha256').update(`${cluster}/${topic}`).digest('hex').slice(0, 8);
  const base = `${cluster}-${topic}`
    .replace(/_/g, '-')
    .replace(/[^-a-z0-9.]/g, '')
    .replace(/[-.]+$/, '')
    .slice(0, 200);
  return `${base}-${hash}`;
}

/**
 * Resources to create for topics found on a cluster's shards that no MessageQueueTopic of that
 * cluster names. Owned by the cluster (garbage-collected with it), labelled discovered, no finalizer.
 */
export function discoveredTopics(
  cluster: { name: string; namespace: string; uid: string },
  found: ReadonlyMap<string, string | null>,
  existing: readonly MessageQueueTopic[],
): MessageQueueTopic[] {
  const declared = new Set(
    existing.filter((t) => t.spec.cluster === cluster.name).map((t) => topicNameOf(t)),
  );
  const taken = new Set(existing.map((t) => t.metadata.name));
  const created: MessageQueueTopic[] = [];
  for (const [topic, stored] of [...found].sort(([a], [b]) => a.localeCompare(b))) {
    if (declared.has(topic) || !TOPIC_NAME_PATTERN.test(topic)) continue;
    const name = discoveredName(cluster.name, topic, taken);
    taken.add(name);
    created.push({
      apiVersion: API_VERSION,
      kind: TOPIC_KIND,
      metadata: {
        name,
        namespace: cluster.namespace,
        labels: { [LABEL_DISCOVERED]: 'true', [LABEL_CLUSTER]: cluster.name, [LABEL_MANAGED_BY]: MANAGED_BY },
        ownerReferences: [
          {
            apiVersion: API_VERSION,
            kind: KIND,
            name: cluster.name,
            uid: cluster.uid,
            blockOwnerDeletion: false,
          },
        ],
      },
      spec: specFromStored(cluster.name, topic, stored),
    });
  }
  return created;
}

/**
 * The resource that owns the topic when several name the same cluster and topic: the oldest (then
 * by name). The others are reported as conflicts and never touch the shards, so deleting a
 * duplicate cannot drop the topic the first one declared.
 */
export function topicOwner(t: MessageQueueTopic, all: readonly MessageQueueTopic[]): MessageQueueTopic {
  const same = all.filter(
    (o) =>
      o.spec.cluster === t.spec.cluster && topicNameOf(o) === topicNameOf(t) && !o.metadata.deletionTimestamp,
  );
  const order = (o: MessageQueueTopic) =>
    `${new Date(o.metadata.creationTimestamp ?? 0).toISOString()}/${o.metadata.name}`;
  return [...same, t].sort((a, b) => order(a).localeCompare(order(b)))[0]!;
}

/** The Ready condition, keeping lastTransitionTime while the status stays the same. */
export function readyCondition(
  previous: readonly Condition[] | undefined,
  ready: boolean,
  reason: string,
  message: string,
  generation: number | undefined,
  now: Date,
): Condition {
  const status = ready ? 'True' : 'False';
  const before = previous?.find((c) => c.type === 'Ready');
  return {
    type: 'Ready',
    status,
    reason,
    message,
    lastTransitionTime: before?.status === status ? before.lastTransitionTime : now.toISOString(),
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
  };
}
