import type { Logger } from '../common/logger.js';
import { Informer } from '../k8s/informer.js';
import type { KubeRest } from '../k8s/rest.js';
import { type KubeObject, resourcePath } from '../k8s/resources.js';
import {
  API_VERSION,
  KIND,
  LABEL_CLUSTER,
  LABEL_MANAGED_BY,
  MANAGED_BY,
  type MessageQueueCluster,
} from './api/types.js';
import { type MessageQueueTopic, TOPIC_KIND } from './api/topic-types.js';
import { OWNED_KINDS } from './desired/cluster.js';
import type { PdbApiVersion } from './desired/meta.js';
import { grantsChanged } from './desired/users.js';

/**
 * What the reconciler reads from the watch caches: the clusters and the kinds they own, except
 * Secrets, which the operator reads by name (least privilege: no list or watch on Secrets, whose
 * cache would hold every credential of the namespace in the operator's memory).
 */
export type CachedKind = typeof KIND | Exclude<(typeof OWNED_KINDS)[number]['kind'], 'Secret'>;

/**
 * One informer per (kind, watched namespace): the clusters themselves, and everything the operator
 * created but Secrets (selected by `app.kubernetes.io/managed-by`). `namespaces` empty means all
 * namespaces.
 */
export class Caches {
  private readonly informers = new Map<CachedKind, Informer<KubeObject>[]>();
  /**
   * Nodes, watched only by a cluster-wide operator (a namespaced install grants nothing
   * cluster-wide): a cordoned node that holds a primary gets that shard switched over.
   */
  private readonly nodes?: Informer<KubeObject & { spec?: { unschedulable?: boolean } }>;
  /** MessageQueueTopics, all of them (declared by users or created for discovered topics). */
  private readonly topicInformers: Informer<KubeObject>[];

  constructor(
    rest: KubeRest,
    namespaces: string[],
    pdbApiVersion: PdbApiVersion | undefined,
    log: Logger,
    /** Whether the operator writes NetworkPolicies (and so may list and watch them). */
    networkPolicies = false,
  ) {
    const scopes = namespaces.length ? namespaces : [undefined];
    const add = (kind: CachedKind, apiVersion: string, labelSelector?: string) =>
      this.informers.set(
        kind,
        scopes.map(
          (namespace) =>
            new Informer<KubeObject>({
              rest,
              path: resourcePath({ apiVersion, kind, namespace }),
              labelSelector,
              name: `${kind}${namespace ? `/${namespace}` : ''}`,
              logger: log,
            }),
        ),
      );
    add('MessageQueueCluster', API_VERSION);
    this.topicInformers = scopes.map(
      (namespace) =>
        new Informer<KubeObject>({
          rest,
          path: resourcePath({ apiVersion: API_VERSION, kind: TOPIC_KIND, namespace }),
          name: `${TOPIC_KIND}${namespace ? `/${namespace}` : ''}`,
          logger: log,
        }),
    );
    const owned = `${LABEL_MANAGED_BY}=${MANAGED_BY}`;
    for (const { kind, apiVersion } of OWNED_KINDS) {
      if (kind === 'Secret') continue;
      // PodDisruptionBudgets come in the version discovery found, or not at all; NetworkPolicies
      // only when the operator writes them.
      if (kind === 'NetworkPolicy' && !networkPolicies) continue;
      const version = kind === 'PodDisruptionBudget' ? pdbApiVersion : apiVersion;
      if (version) add(kind, version, owned);
    }
    if (!namespaces.length) {
      this.nodes = new Informer({
        rest,
        path: resourcePath({ apiVersion: 'v1', kind: 'Node' }),
        name: 'Node',
        logger: log,
      });
    }
  }

  /** Names of the nodes marked unschedulable (`kubectl cordon`, the first step of `kubectl drain`). */
  cordonedNodes(): Set<string> {
    return new Set(
      (this.nodes?.list() ?? []).filter((n) => n.spec?.unschedulable).map((n) => n.metadata?.name ?? ''),
    );
  }

  /** The MessageQueueTopics of a namespace. */
  topics(namespace: string): MessageQueueTopic[] {
    return this.topicInformers.flatMap((i) => i.list(namespace)) as unknown as MessageQueueTopic[];
  }

  topic(key: string): MessageQueueTopic | undefined {
    const [namespace, name] = key.split('/');
    for (const i of this.topicInformers) {
      const found = i.get(name!, namespace);
      if (found) return found as unknown as MessageQueueTopic;
    }
    return undefined;
  }

  /** Calls `enqueue` with the `namespace/name` key of every MessageQueueTopic that changes. */
  /** `enqueue` gets the topic's key and its cluster's (its rights go to the cluster's users file). */
  /** `clusterKey` is undefined unless the change can alter the cluster's rights (grantsChanged). */
  onTopicChange(enqueue: (key: string, clusterKey: string | undefined) => void): void {
    for (const informer of this.topicInformers) {
      informer.onChange(({ type, obj, old }) => {
        const { namespace, name } = obj.metadata ?? {};
        const topic = obj as unknown as MessageQueueTopic;
        const affects = grantsChanged(type, topic, old as unknown as MessageQueueTopic | undefined);
        if (namespace && name)
          enqueue(`${namespace}/${name}`, affects ? `${namespace}/${topic.spec?.cluster}` : undefined);
      });
    }
  }

  private allInformers(): Informer<KubeObject>[] {
    return [...[...this.informers.values()].flat(), ...this.topicInformers];
  }

  start(): void {
    for (const i of this.allInformers()) i.start();
    this.nodes?.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.allInformers().map((i) => i.stop()));
    await this.nodes?.stop();
  }

  async synced(): Promise<void> {
    await Promise.all(this.allInformers().map((i) => i.synced));
    await this.nodes?.synced;
  }

  hasSynced(): boolean {
    return this.allInformers().every((i) => i.hasSynced()) && (this.nodes?.hasSynced() ?? true);
  }

  get<T extends KubeObject>(kind: CachedKind, namespace: string, name: string): T | undefined {
    for (const i of this.informers.get(kind) ?? []) {
      const found = i.get(name, namespace);
      if (found) return found as T;
    }
    return undefined;
  }

  /** Objects of `kind` in `namespace` that belong to cluster `cluster`. */
  ofCluster<T extends KubeObject>(kind: CachedKind, namespace: string, cluster: string): T[] {
    return (this.informers.get(kind) ?? [])
      .flatMap((i) => i.list(namespace))
      .filter((o) => o.metadata?.labels?.[LABEL_CLUSTER] === cluster) as T[];
  }

  cluster(key: string): MessageQueueCluster | undefined {
    const [namespace, name] = key.split('/');
    return this.get<MessageQueueCluster & KubeObject>(KIND, namespace!, name!);
  }

  /**
   * Calls `enqueue` with the `namespace/name` key of the cluster concerned by every change: the
   * cluster itself, or the owner named by the `mysqlmq.io/cluster` label.
   */
  onClusterChange(enqueue: (key: string) => void): void {
    for (const [kind, list] of this.informers) {
      for (const informer of list) {
        informer.onChange(({ obj }) => {
          const namespace = obj.metadata?.namespace;
          const name = kind === KIND ? obj.metadata?.name : obj.metadata?.labels?.[LABEL_CLUSTER];
          if (namespace && name) enqueue(`${namespace}/${name}`);
        });
      }
    }
  }

  clusterKeys(): string[] {
    return (this.informers.get(KIND) ?? []).flatMap((i) => i.keys());
  }
}
