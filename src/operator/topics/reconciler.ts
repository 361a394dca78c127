import { errorMessage } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import { mergePatch, mergePatchStatus } from '../../k8s/apply.js';
import { isConflict, isNotFound } from '../../k8s/client.js';
import type { KubeRest } from '../../k8s/rest.js';
import { refOf, resourcePath } from '../../k8s/resources.js';
import { withAdmin } from '../../shard/connection.js';
import { TOPIC_NAME_PATTERN } from '../../shard/schema.js';
import {
  type MessageQueueTopic,
  type MessageQueueTopicStatus,
  TOPIC_FINALIZER,
  TOPIC_KIND,
} from '../api/topic-types.js';
import { API_VERSION } from '../api/types.js';
import type { Caches } from '../caches.js';
import type { EventRecorder } from '../events.js';
import type { ShardAccess } from '../reconciler.js';
import { unknownRightUsers } from '../desired/users.js';
import type { ReconcileResult } from '../runtime/controller.js';
import {
  discoveredTopics,
  isDiscovered,
  readyCondition,
  settingsJson,
  settingsOf,
  topicNameOf,
  topicOwner,
} from './plan.js';
import { dropTopic, ensureTopic, listTopicSettings } from './sql.js';

export interface TopicReconcilerDeps {
  rest: KubeRest;
  caches: Caches;
  events: EventRecorder;
  /** The cluster's shards as its shard loop sees them (see ClusterReconciler.shardAccess). */
  shardAccess(clusterKey: string): ShardAccess | undefined;
  log: Logger;
}

/** Settled topics are checked again this often (settings changed through SQL or HTTP, a shard rebuilt). */
const RESYNC_MS = 30_000;
/** While a shard is not done (its primary takes no writes, the cluster is starting). */
const PENDING_MS = 3_000;

/**
 * MessageQueueTopic resources: each pass makes the topic exist with the resource's settings on
 * every shard's writable primary (or, once deleted, drops it there), then writes status. The SQL
 * goes straight to the primaries on the admin user, as the shard loop's does; a shard whose primary
 * takes no writes is reported pending and retried.
 */
export class TopicReconciler {
  constructor(private readonly deps: TopicReconcilerDeps) {}

  async reconcile(key: string, signal: AbortSignal): Promise<ReconcileResult | void> {
    const topic = this.deps.caches.topic(key);
    if (!topic) return;
    const { namespace } = topic.metadata;
    const access = this.deps.shardAccess(`${namespace}/${topic.spec.cluster}`);
    const clusterExists = this.deps.caches.cluster(`${namespace}/${topic.spec.cluster}`) !== undefined;
    const name = topicNameOf(topic);

    if (topic.metadata.deletionTimestamp) {
      if (!topic.metadata.finalizers?.includes(TOPIC_FINALIZER)) return;
      // The cluster is gone: its data went with it (or stays on retained volumes, untouched).
      const pending = clusterExists ? await this.onShards(access, (conn) => dropTopic(conn, name)) : [];
      if (pending.length) {
        await this.writeStatus(topic, {
          ready: false,
          reason: 'Deleting',
          message: `dropping topic ${name}: waiting for ${pending.join(', ')}`,
          pending,
          signal,
        });
        return { requeueAfterMs: PENDING_MS };
      }
      await mergePatch(
        this.deps.rest,
        refOf(withKind(topic)),
        { metadata: { finalizers: topic.metadata.finalizers.filter((f) => f !== TOPIC_FINALIZER) } },
        { resourceVersion: topic.metadata.resourceVersion, signal },
      );
      void this.deps.events.record(
        eventSubject(topic),
        'Normal',
        'TopicDeleted',
        `topic ${name} dropped on every shard`,
      );
      return;
    }

    // Declared topics get the finalizer; discovered ones never (see docs/architecture.md).
    if (!isDiscovered(topic) && !topic.metadata.finalizers?.includes(TOPIC_FINALIZER)) {
      await mergePatch(
        this.deps.rest,
        refOf(withKind(topic)),
        { metadata: { finalizers: [...(topic.metadata.finalizers ?? []), TOPIC_FINALIZER] } },
        { resourceVersion: topic.metadata.resourceVersion, signal },
      );
      return;
    }

    if (!TOPIC_NAME_PATTERN.test(name)) {
      return this.fail(
        topic,
        'InvalidSpec',
        `topic name ${JSON.stringify(name)} must match ${TOPIC_NAME_PATTERN.source}`,
        signal,
      );
    }
    const owner = topicOwner(topic, this.deps.caches.topics(namespace));
    if (owner.metadata.name !== topic.metadata.name) {
      return this.fail(
        topic,
        'Conflict',
        `topic ${name} of cluster ${topic.spec.cluster} is already declared by ${owner.metadata.name}`,
        signal,
      );
    }
    if (!clusterExists) {
      return this.fail(
        topic,
        'ClusterNotFound',
        `MessageQueueCluster ${topic.spec.cluster} not found in ${namespace}`,
        signal,
      );
    }
    const unknownUsers = unknownRightUsers(topic, access?.cluster.spec.users ?? []);
    if (access && unknownUsers.length > 0) {
      return this.fail(
        topic,
        'UnknownUser',
        access.cluster.spec.brokers.auth.enabled
          ? `spec.rights names ${unknownUsers.join(', ')}, not in spec.users of MessageQueueCluster ${topic.spec.cluster}; add the user there or remove the right`
          : `spec.rights names ${unknownUsers.join(', ')}, but MessageQueueCluster ${topic.spec.cluster} authenticates no one (spec.brokers.auth.enabled: false); remove the rights, or turn authentication on and add the users to spec.users`,
        signal,
      );
    }
    const settings = settingsJson(settingsOf(topic.spec));
    const pending = await this.onShards(access, (conn) => ensureTopic(conn, name, settings));
    const total = access?.shards.length ?? 0;
    const ready = total > 0 && pending.length === 0;
    await this.writeStatus(topic, {
      ready,
      reason: ready ? 'TopicReady' : 'ShardsPending',
      message: ready
        ? `topic ${name} exists on every shard with its settings`
        : `waiting for ${total ? pending.join(', ') : 'the cluster'} to take writes`,
      pending,
      shardsReady: `${total - pending.length}/${total}`,
      signal,
    });
    return { requeueAfterMs: ready ? RESYNC_MS : PENDING_MS };
  }

  /**
   * Creates a MessageQueueTopic for every topic found on a cluster's writable shards that none
   * names (made through HTTP or mqctl), so `kubectl get mqt` lists every topic.
   */
  async discover(): Promise<void> {
    for (const key of this.deps.caches.clusterKeys()) {
      const access = this.deps.shardAccess(key);
      if (!access) continue;
      const found = new Map<string, string | null>();
      for (const { write } of access.shards) {
        if (!write) continue;
        try {
          const topics = await withAdmin(write, access.admin, listTopicSettings);
          for (const [topic, stored] of topics) if (!found.has(topic)) found.set(topic, stored);
        } catch (err) {
          this.deps.log.debug('topic discovery: shard unreachable', {
            cluster: key,
            error: errorMessage(err),
          });
        }
      }
      const { namespace, name, uid } = access.cluster.metadata;
      const missing = discoveredTopics({ namespace, name, uid }, found, this.deps.caches.topics(namespace));
      for (const t of missing) {
        try {
          await this.deps.rest.request({
            method: 'POST',
            path: resourcePath({ apiVersion: API_VERSION, kind: TOPIC_KIND, namespace }),
            body: t,
          });
          this.deps.log.info('discovered topic', {
            cluster: key,
            topic: t.spec.topicName,
            resource: t.metadata.name,
          });
        } catch (err) {
          // Already there: the cache had not seen it yet.
          if (!isConflict(err))
            this.deps.log.warn('could not create MessageQueueTopic', { error: errorMessage(err) });
        }
      }
    }
  }

  /** Runs `fn` on every shard's writable primary; returns the shards where it could not run. */
  private async onShards(
    access: ShardAccess | undefined,
    fn: Parameters<typeof withAdmin>[2],
  ): Promise<string[]> {
    if (!access) return ['all shards (the cluster has no shard loop yet)'];
    const pending: string[] = [];
    for (const { shard, write } of access.shards) {
      if (!write) {
        pending.push(shard);
        continue;
      }
      try {
        await withAdmin(write, access.admin, fn);
      } catch (err) {
        this.deps.log.warn('topic change failed on a shard', { shard, error: errorMessage(err) });
        pending.push(shard);
      }
    }
    return pending;
  }

  private async fail(
    topic: MessageQueueTopic,
    reason: string,
    message: string,
    signal: AbortSignal,
  ): Promise<ReconcileResult> {
    if (topic.status?.conditions?.find((c) => c.type === 'Ready')?.reason !== reason) {
      void this.deps.events.record(eventSubject(topic), 'Warning', reason, message);
    }
    await this.writeStatus(topic, { ready: false, reason, message, pending: [], signal });
    return { requeueAfterMs: RESYNC_MS };
  }

  private async writeStatus(
    topic: MessageQueueTopic,
    s: {
      ready: boolean;
      reason: string;
      message: string;
      pending: string[];
      shardsReady?: string;
      signal: AbortSignal;
    },
  ): Promise<void> {
    const previous = topic.status ?? {};
    const status: MessageQueueTopicStatus = {
      observedGeneration: topic.metadata.generation,
      topicName: topicNameOf(topic),
      shardsReady: s.shardsReady ?? previous.shardsReady,
      pendingShards: s.pending,
      message: s.message,
      conditions: [
        readyCondition(
          previous.conditions,
          s.ready,
          s.reason,
          s.message,
          topic.metadata.generation,
          new Date(),
        ),
      ],
    };
    if (JSON.stringify(status) === JSON.stringify({ ...status, ...pickKnown(previous) })) return;
    try {
      await mergePatchStatus(this.deps.rest, refOf(withKind(topic)), { ...status }, { signal: s.signal });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}

/** The status fields this reconciler writes, as they are now (to skip unchanged writes). */
function pickKnown(s: MessageQueueTopicStatus): MessageQueueTopicStatus {
  const { observedGeneration, topicName, shardsReady, pendingShards, message, conditions } = s;
  return { observedGeneration, topicName, shardsReady, pendingShards, message, conditions };
}

const withKind = (t: MessageQueueTopic) => ({ ...t, apiVersion: API_VERSION, kind: TOPIC_KIND });

const eventSubject = (t: MessageQueueTopic) => ({
  kind: TOPIC_KIND,
  metadata: {
    name: t.metadata.name,
    namespace: t.metadata.namespace,
    uid: t.metadata.uid,
    resourceVersion: t.metadata.resourceVersion,
  },
});
