import type { Action } from '../../api/users.js';
import type { Condition, ObjectMetaLike } from './types.js';

/** The MessageQueueTopic resource: one topic of a MessageQueueCluster, reconciled to every shard. */
export const TOPIC_KIND = 'MessageQueueTopic';
export const TOPIC_PLURAL = 'messagequeuetopics';
/** On declared topics only: deleting the resource drops the topic's tables on every shard first. */
export const TOPIC_FINALIZER = 'mysqlmq.io/topic-cleanup';
/**
 * Set on resources the operator created for topics it found on the shards (made through HTTP or
 * mqctl). Such a resource has no finalizer: deleting it never drops data the user did not declare.
 */
export const LABEL_DISCOVERED = 'mysqlmq.io/discovered';

export interface MessageQueueTopicSpec {
  /** The MessageQueueCluster (same namespace) the topic lives in. */
  cluster: string;
  /** The broker's topic name; defaults to metadata.name. */
  topicName?: string;
  retention?: { maxAgeHours?: number; maxBytesPerShard?: number };
  maxMessageBytes?: number;
  maxDeliveries?: number;
  /**
   * Rights on this topic for users of the cluster's `spec.users`, added to what their own entry
   * grants: the team that owns a topic says who may use it, next to the topic.
   */
  rights?: TopicUserRight[];
}

/** One user's rights on the topic of the resource. */
export interface TopicUserRight {
  user: string;
  actions: Action[];
}

export interface MessageQueueTopicStatus {
  observedGeneration?: number;
  topicName?: string;
  /** `ready/total` shards holding the topic with its settings, e.g. "2/2". */
  shardsReady?: string;
  /** Shards not done yet (primary not writable): creation or, while deleting, the drop. */
  pendingShards?: string[];
  message?: string;
  conditions?: Condition[];
}

export interface MessageQueueTopic {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMetaLike & { name: string; namespace: string };
  spec: MessageQueueTopicSpec;
  status?: MessageQueueTopicStatus;
}
