import type { Registry } from 'prom-client';
import { AGENT_PORT } from '../agent/contract.js';
import { type RoutingDocument, parseRouting } from '../api/routing.js';
import { errorMessage } from '../common/errors.js';
import type { Credentials as AdminCredentials, ClientTls, Endpoint } from '../shard/connection.js';
import type { Logger } from '../common/logger.js';
import { applyObject, mergePatch, mergePatchStatus } from '../k8s/apply.js';
import { errorSummary, isConflict, isNotFound } from '../k8s/client.js';
import type { KubeRest } from '../k8s/rest.js';
import { type KubeObject, refOf, resourcePath } from '../k8s/resources.js';
import { type RunningTls, defaultCluster, withTlsDecided } from './api/defaults.js';
import {
  ANNOTATION_SWITCHOVER,
  COMPONENT_BROKER,
  COMPONENT_MYSQL,
  ConditionType,
  type DefaultedCluster,
  FINALIZER,
  LABEL_COMPONENT,
  LABEL_ROLE,
  LABEL_SHARD,
  type MessageQueueCluster,
  type MessageQueueClusterSpec,
  type MessageQueueClusterStatus,
} from './api/types.js';
import { validateSpec, validateSpecUpdate } from './api/validate.js';
import type { ReconcileResult } from './runtime/controller.js';
import type { Caches } from './caches.js';
import { ClusterLoop, type ClusterLoopMetrics } from './cluster-loop.js';
import {
  type Credentials,
  type DesiredObject,
  type OperatorPeer,
  type PdbApiVersion,
  RESTORING_INSTANCE,
  ROUTING_FILE,
  type SeedAnnotations,
  TOKEN_KEY,
  brokerPodServesTls,
  instancePodUsesTls,
  brokerSelectorString,
  clientCertificatesOn,
  credentialsFromSecret,
  credentialsSecret,
  desiredObjects,
  generateCredentials,
  generateUserToken,
  hashOf,
  initialRouting,
  missingAddedKeys,
  names,
  shardSecrets,
  tokenFromSecret,
  topicGrants,
  userSecret,
  userSecretName,
} from './desired/index.js';
import { tokenSha256 } from '../api/users.js';
import type { BackupTarget } from '../backup/target.js';
import type { EventRecorder } from './events.js';
import type { PodLike } from './shards/observe.js';
import { instanceSeparation } from './placement.js';
import { planPods } from './pod-plan.js';
import { topicNameOf } from './topics/plan.js';
import { TOPIC_KIND } from './api/topic-types.js';
import { computeStatus, emptyStringsAs } from './status.js';
import { requiresSecureTransport } from '../shard/mycnf.js';
import { BrokerCertificates } from './broker-certificates.js';
import type { BrokerTlsTrust } from './shards/routing-publisher.js';
import {
  type RestoreReport,
  type RestoringShard,
  type SeedStepStatus,
  planRestorePods,
  restoreReport,
} from './restore/plan.js';
import { checkRestoreSource, restoreFromText, restoreSpecChange, restoreTargetOf } from './restore/source.js';

export interface ShardAccess {
  cluster: DefaultedCluster;
  admin: AdminCredentials;
  shards: { shard: string; write: Endpoint | null }[];
}

export interface ReconcilerDeps {
  rest: KubeRest;
  caches: Caches;
  events: EventRecorder;
  loopMetrics: ClusterLoopMetrics;
  pdbApiVersion?: PdbApiVersion;
  /** The operator's Pods, when it protects MariaDB with a NetworkPolicy per cluster. */
  networkPolicy?: OperatorPeer;
  /** Asks the controller to reconcile a cluster again soon (the shard loop calls it on changes). */
  enqueue(key: string): void;
  log: Logger;
  registry?: Registry;
}

/** Requeue periods: a periodic resync when settled, sooner while something is on its way. */
const RESYNC_MS = 30_000;
const PROGRESS_MS = 3_000;
/** Margin for the watch cache to show a deleted Pod to the shard loop. */
const ROLL_SETTLE_MS = 2_000;

type Pod = PodLike & KubeObject & { spec?: unknown; metadata: { name: string; resourceVersion?: string } };

/**
 * Kubernetes side of a cluster, level-triggered: each call compares what the cluster asks for with
 * what the caches hold and makes one step towards it. It never waits on MySQL; the per-cluster
 * ClusterLoop does that on its own timer and reports back through `enqueue`.
 */
export class ClusterReconciler {
  private readonly loops = new Map<string, ClusterLoop>();
  /** The last spec that passed validation, per cluster: the shard loop keeps running on it. */
  private readonly accepted = new Map<string, DefaultedCluster>();
  /** What the operator last applied per object, so an unchanged object costs no request. */
  private readonly applied = new Map<string, { hash: string; resourceVersion?: string }>();
  /** When each cluster last deleted a Pod to roll a spec change: the next waits for a newer tick. */
  private readonly lastRollAt = new Map<string, number>();
  /** The admin user of each cluster with a shard loop (for `shardAccess`). */
  private readonly admins = new Map<string, AdminCredentials>();
  /** The credentials each cluster's Secret held when last read, to restore a deleted Secret. */
  private readonly credentials = new Map<string, Credentials>();
  /** How the shard loop verifies each cluster's HTTPS brokers (absent: plain HTTP). */
  private readonly brokerTrust = new Map<string, BrokerTlsTrust>();
  private readonly brokerCertificates: BrokerCertificates;
  /** Clusters with spec.restore whose source was found restorable (or whose Pods exist already). */
  private readonly restoreSourceOk = new Set<string>();
  /** status.restore.from per cluster, by a hash of spec.restore: built once, not per reconcile. */
  private readonly restoreFromCache = new Map<string, { hash: string; text: string }>();
  /** The CA each shard loop's MariaDB connections trust (absent: plain connections). */
  private readonly loopCa = new Map<string, string | undefined>();

  constructor(private readonly deps: ReconcilerDeps) {
    this.brokerCertificates = new BrokerCertificates({
      rest: deps.rest,
      events: deps.events,
      readSecret: (namespace, name, signal) => this.readSecret(namespace, name, signal),
    });
  }

  /**
   * What the topic reconciler needs of a cluster's shards: the admin user and, per shard, the
   * primary that takes writes now (null while it takes none), from the shard loop's routing.
   * Undefined until the cluster has a shard loop.
   */
  shardAccess(key: string): ShardAccess | undefined {
    const loop = this.loops.get(key);
    const cr = this.accepted.get(key);
    const admin = this.admins.get(key);
    if (!loop || !cr || !admin) return undefined;
    const routes = loop.latest.routing.shards;
    return {
      cluster: cr,
      admin,
      shards: Array.from({ length: cr.spec.shards }, (_, i) => {
        const shard = names.shard(i);
        return { shard, write: routes.find((r) => r.name === shard)?.write ?? null };
      }),
    };
  }

  /** Stops every shard loop (on shutdown or lost leadership). */
  stop(): void {
    for (const loop of this.loops.values()) loop.stop();
    this.loops.clear();
  }

  async reconcile(key: string, signal: AbortSignal): Promise<ReconcileResult | void> {
    const stored = this.deps.caches.cluster(key);
    if (!stored) {
      this.forget(key);
      return;
    }
    const live = { ...stored, spec: withTlsDecided(stored.spec, this.runningTls(stored)) };
    const cr = defaultCluster(live);
    if (cr.metadata.deletionTimestamp) return this.finalize(key, cr, signal);
    if (!cr.metadata.finalizers?.includes(FINALIZER)) {
      await mergePatch(
        this.deps.rest,
        refOf(cr),
        { metadata: { finalizers: [...(cr.metadata.finalizers ?? []), FINALIZER] } },
        { resourceVersion: cr.metadata.resourceVersion, signal },
      );
      return; // the update event brings us back with the finalizer in place
    }

    const specProblems = validateSpec(live.spec);
    const restoreFrom = specProblems.length ? undefined : await this.restoreFromOf(key, cr);
    const restoreChange = specProblems.length
      ? undefined
      : restoreSpecChange(
          cr,
          restoreFrom?.text,
          cr.status?.restore,
          (cr.status?.shards ?? []).some((sh) => sh.bootstrapped),
        );
    const problems = [
      ...specProblems,
      ...this.checkAgainstLiveObjects(cr, live.spec),
      ...(restoreChange ? [restoreChange] : []),
    ];
    if (problems.length) {
      void this.deps.events.record(cr, 'Warning', 'InvalidSpec', problems.join('; '));
      await this.writeStatus(cr, problems, signal);
      return;
    }
    if (cr.spec.restore && !this.restoreSourceOk.has(key)) {
      // Checked once, before anything exists: a source that cannot be restored creates nothing.
      // Pods that exist were created after a check passed (before an operator restart).
      const problem = this.deps.caches.ofCluster('Pod', cr.metadata.namespace, cr.metadata.name).length
        ? undefined
        : (restoreFrom?.problem ??
          (await this.withRestoreTarget(cr, (target) => checkRestoreSource(cr, target))));
      if (problem) {
        const report = restoreReport(
          cr,
          restoreFrom?.text ?? cr.spec.restore.from.cluster,
          [],
          cr.status?.restore,
          problem,
          new Date(),
        );
        this.recordRestoreEvents(cr, report);
        await this.writeStatus(cr, [], signal, report);
        return { requeueAfterMs: RESYNC_MS };
      }
      this.restoreSourceOk.add(key);
    }
    this.accepted.set(key, cr);

    const credentials = await this.ensureCredentials(cr, signal);
    const trust = cr.spec.brokers.tls.enabled ? await this.brokerCertificates.ensure(cr, signal) : undefined;
    if (trust) this.brokerTrust.set(key, trust);
    else this.brokerTrust.delete(key);
    const mysqlTrust = cr.spec.mysql.tls.enabled
      ? await this.brokerCertificates.ensureMysql(cr, signal)
      : undefined;
    const loop = this.ensureLoop(key, cr, credentials, mysqlTrust?.client);
    const { routing, outcomes } = loop.latest;
    const primaryIndex = Object.fromEntries(
      Array.from({ length: cr.spec.shards }, (_, i) => {
        const shard = names.shard(i);
        return [shard, loop.primaryIndexOf(shard)];
      }),
    );
    const restoringShards = this.restoringShards(cr, loop);
    const restorePlan = planRestorePods(cr, restoringShards);
    const userDigests = cr.spec.brokers.auth.enabled ? await this.ensureUserTokens(cr, signal) : undefined;
    // Into the users' Secrets, which ensureUserTokens has just made sure exist.
    if (clientCertificatesOn(cr)) await this.brokerCertificates.ensureClientCertificates(cr, signal);
    const desired = desiredObjects(cr, {
      credentials,
      // Before the shard loop's first tick, a routing ConfigMap that exists is left as it is: it
      // holds the last routing decided, which a restarted broker must not lose.
      routing: outcomes ? routing : { ...initialRouting(cr), version: routing.version },
      primaryIndex,
      // Before the shard loop's first tick, status says what the last operator saw.
      standbyEvictable: Object.fromEntries(
        outcomes
          ? outcomes.map((o) => [o.shard, o.decision.memory.phase === 'Healthy'])
          : (cr.status?.shards ?? []).map((s) => [s.name, s.phase === 'Healthy']),
      ),
      pdbApiVersion: this.deps.pdbApiVersion,
      authSecretVersion: await this.authSecretVersion(cr, signal),
      userDigests,
      topicGrants: topicGrants(cr.metadata.name, this.deps.caches.topics(cr.metadata.namespace)),
      seeds: { ...this.seedsOf(cr, loop), ...restorePlan.seeds },
      restoring: restorePlan.restoring,
      mysqlCertificate: mysqlTrust?.certificatePem,
      mysqlCa: mysqlTrust?.client.ca,
      networkPolicy: this.deps.networkPolicy,
    });

    for (const obj of desired) {
      if (obj.kind === 'Secret') continue; // created once by ensureCredentials, never rewritten
      if (obj.kind === 'Pod') continue; // immutable spec: handled by reconcilePods
      if (obj.kind === 'ConfigMap' && obj.metadata.name === names.routing(cr.metadata.name) && !outcomes) {
        if (this.deps.caches.get('ConfigMap', cr.metadata.namespace, obj.metadata.name)) continue;
      }
      await this.apply(cr, obj, signal);
    }
    const podsProgressing = await this.reconcilePods(
      cr,
      desired.filter((o) => !(o.kind === 'Pod' && restorePlan.held.has(o.metadata.name))),
      loop.latest,
      signal,
    );

    const report = restoreReport(
      cr,
      restoreFrom?.text ?? cr.status?.restore?.from ?? cr.spec.restore?.from.cluster ?? '',
      restoringShards,
      cr.status?.restore,
      undefined,
      new Date(),
    );
    this.recordRestoreEvents(cr, report);
    const status = await this.writeStatus(cr, [], signal, report);
    const progressing = podsProgressing || status.phase !== 'Ready';
    return { requeueAfterMs: progressing ? PROGRESS_MS : RESYNC_MS };
  }

  // --- steps ----------------------------------------------------------------------------------

  private async finalize(key: string, cr: DefaultedCluster, signal: AbortSignal): Promise<void> {
    this.forget(key);
    if (!cr.metadata.finalizers?.includes(FINALIZER)) return;
    const { namespace, name } = cr.metadata;
    if (cr.spec.pvcDeletionPolicy === 'Delete') {
      const pvcs = this.deps.caches.ofCluster<KubeObject>('PersistentVolumeClaim', namespace, name);
      for (const pvc of pvcs) {
        if (pvc.metadata?.deletionTimestamp) continue;
        await this.deleteIgnoringMissing(
          refOf({ ...pvc, apiVersion: 'v1', kind: 'PersistentVolumeClaim' }),
          signal,
        );
      }
      if (pvcs.length) {
        void this.deps.events.record(
          cr,
          'Normal',
          'DeletingData',
          `deleting ${pvcs.length} PersistentVolumeClaims (pvcDeletionPolicy: Delete)`,
        );
      }
    } else {
      void this.deps.events.record(
        cr,
        'Normal',
        'RetainingData',
        `keeping the PersistentVolumeClaims data-${name}-shard-* (pvcDeletionPolicy: Retain); delete them by hand when the data is no longer needed`,
      );
    }
    await mergePatch(
      this.deps.rest,
      refOf(cr),
      { metadata: { finalizers: cr.metadata.finalizers.filter((f) => f !== FINALIZER) } },
      { resourceVersion: cr.metadata.resourceVersion, signal },
    );
    this.deps.log.info('cluster deleted', {
      namespace,
      cluster: name,
      pvcDeletionPolicy: cr.spec.pvcDeletionPolicy,
    });
  }

  private forget(key: string): void {
    this.loops.get(key)?.stop();
    this.loops.delete(key);
    this.accepted.delete(key);
    this.admins.delete(key);
    this.credentials.delete(key);
    this.brokerTrust.delete(key);
    this.loopCa.delete(key);
    this.lastRollAt.delete(key);
    this.restoreSourceOk.delete(key);
    this.restoreFromCache.delete(key);
  }

  // --- spec.restore (src/operator/restore/) ------------------------------------------------------

  /** The restore target's description for status, or why the target cannot be built. */
  private async restoreFromOf(
    key: string,
    cr: DefaultedCluster,
  ): Promise<{ text: string; problem?: undefined } | { text?: undefined; problem: string } | undefined> {
    if (!cr.spec.restore) return undefined;
    const hash = hashOf(cr.spec.restore);
    const known = this.restoreFromCache.get(key);
    if (known?.hash === hash) return { text: known.text };
    try {
      const text = await this.withRestoreTarget(cr, (target) => restoreFromText(cr, target));
      this.restoreFromCache.set(key, { hash, text });
      return { text };
    } catch (err) {
      return { problem: `the restore target cannot be used: ${errorMessage(err)}` };
    }
  }

  private async withRestoreTarget<T>(
    cr: DefaultedCluster,
    use: (target: BackupTarget) => Promise<T> | T,
  ): Promise<T> {
    const target = await restoreTargetOf(cr, (name) => this.secretData(cr.metadata.namespace, name));
    try {
      return await use(target);
    } finally {
      target.close?.();
    }
  }

  private async secretData(namespace: string, name: string): Promise<Record<string, string> | undefined> {
    const secret = await this.readSecret(namespace, name, new AbortController().signal);
    return secret ? (secret.data ?? {}) : undefined;
  }

  /** What the restore plan reads of each shard: the shard loop's memory and instance 0's Pod. */
  private restoringShards(cr: DefaultedCluster, loop: ClusterLoop): RestoringShard[] {
    if (!cr.spec.restore) return [];
    return Array.from({ length: cr.spec.shards }, (_, i) => {
      const name = names.shard(i);
      const pod = this.deps.caches.get<
        Pod & {
          status?: {
            conditions?: { type: string; status: string }[];
            initContainerStatuses?: ({ name: string } & SeedStepStatus)[];
          };
        }
      >('Pod', cr.metadata.namespace, names.pod(cr.metadata.name, i, RESTORING_INSTANCE));
      const live = pod && !pod.metadata.deletionTimestamp ? pod : undefined;
      return {
        name,
        bootstrapped: loop.memoryOf(name).bootstrapped,
        ...(live
          ? {
              primaryPod: {
                ready:
                  live.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true,
                podIP: live.status?.podIP,
                seed: live.status?.initContainerStatuses?.find((c) => c.name === 'seed'),
              },
            }
          : {}),
      };
    });
  }

  private recordRestoreEvents(cr: DefaultedCluster, report: RestoreReport | undefined): void {
    for (const e of report?.events ?? []) void this.deps.events.record(cr, e.type, e.reason, e.message);
  }

  /**
   * What the existing objects say the spec was: the shard count and storage of the data volumes
   * that exist. Changes existing data cannot follow are checked against this, not against the
   * previous spec, which the API server does not keep.
   */
  private checkAgainstLiveObjects(cr: DefaultedCluster, spec: MessageQueueClusterSpec | undefined): string[] {
    const live = this.liveSpecOf(cr);
    return live ? validateSpecUpdate(live, spec) : [];
  }

  /**
   * What a cluster's objects say about TLS, for a spec that does not (`withTlsDecided`): the broker
   * Deployment's Pod template, the instances' my.cnf, or, without one, an instance Pod.
   */
  private runningTls(cluster: MessageQueueCluster): RunningTls {
    const { namespace, name } = cluster.metadata;
    if (!namespace || !name) return {};
    const deployment = this.deps.caches.get<KubeObject & { spec?: { template?: { spec?: unknown } } }>(
      'Deployment',
      namespace,
      names.broker(name),
    );
    return {
      brokers: deployment ? brokerPodServesTls(deployment.spec?.template?.spec) : undefined,
      mysql: this.runningMysqlTls(namespace, name),
    };
  }

  private runningMysqlTls(namespace: string, name: string): boolean | undefined {
    const mycnf = this.firstMyCnf(namespace, name);
    if (mycnf !== undefined) return requiresSecureTransport(mycnf);
    const instance = this.deps.caches
      .ofCluster<Pod>('Pod', namespace, name)
      .find((p) => p.metadata.labels?.[LABEL_COMPONENT] === COMPONENT_MYSQL);
    return instance ? instancePodUsesTls(instance.spec) : undefined;
  }

  /** Instance 0 of shard 0's my.cnf as the operator last wrote it; undefined before it exists. */
  private firstMyCnf(namespace: string, name: string): string | undefined {
    return this.deps.caches.get<KubeObject & { data?: Record<string, string> }>(
      'ConfigMap',
      namespace,
      names.mycnf(name, 0),
    )?.data?.['instance-0.cnf'];
  }

  private liveSpecOf(cr: DefaultedCluster): MessageQueueClusterSpec | undefined {
    const pvcs = this.deps.caches.ofCluster<
      KubeObject & { spec?: { storageClassName?: string; resources?: { requests?: { storage?: string } } } }
    >('PersistentVolumeClaim', cr.metadata.namespace, cr.metadata.name);
    if (!pvcs.length) return undefined;
    const shards = new Set(pvcs.map((p) => p.metadata?.labels?.[LABEL_SHARD])).size;
    const first = pvcs[0]!.spec;
    const mycnf = this.firstMyCnf(cr.metadata.namespace, cr.metadata.name);
    return {
      shards,
      mysql: {
        storage: {
          size: first?.resources?.requests?.storage,
          // A PVC without a class gets the default one: only a class the spec names can differ.
          storageClassName: cr.spec.mysql.storage.storageClassName ? first?.storageClassName : undefined,
        },
        // What the instances were configured with; before their my.cnf exists, what the spec says.
        tls: { enabled: mycnf === undefined ? cr.spec.mysql.tls.enabled : requiresSecureTransport(mycnf) },
      },
    };
  }

  /**
   * The cluster's generated credentials, from its Secret read by name (the operator neither lists
   * nor watches Secrets). A Secret deleted by hand is written again with the passwords this
   * operator already knows (the instances and brokers still use them); one that never existed
   * gets new ones.
   */
  private async ensureCredentials(cr: DefaultedCluster, signal: AbortSignal): Promise<Credentials> {
    const { namespace } = cr.metadata;
    const name = names.credentials(cr.metadata.name);
    const key = `${namespace}/${cr.metadata.name}`;
    const stored = await this.readSecret(namespace, name, signal);
    if (stored) return this.remember(key, await this.credentialsOf(cr, stored, signal));
    const known = this.credentials.get(key);
    const secret = credentialsSecret(cr, known ?? generateCredentials());
    try {
      await this.deps.rest.request({
        method: 'POST',
        path: resourcePath({ apiVersion: 'v1', kind: 'Secret', namespace }),
        body: secret,
        signal,
      });
      void this.deps.events.record(
        cr,
        known ? 'Warning' : 'Normal',
        known ? 'CredentialsRestored' : 'CredentialsCreated',
        known
          ? `Secret ${name} was deleted; wrote it again with the passwords in use`
          : `created Secret ${name} with generated passwords`,
      );
    } catch (err) {
      if (!isConflict(err)) throw err;
    }
    // Read back what the server holds: after a conflict another writer's passwords win (an older
    // operator's, perhaps: it may lack the keys added since).
    const written = await this.readSecret(namespace, name, signal);
    if (!written) throw new Error(`Secret ${name} was deleted while it was being written`);
    return this.remember(key, await this.credentialsOf(cr, written, signal));
  }

  /**
   * The SHA-256 digest of each user's token, by user name, from the users' Secrets read by name.
   * A missing Secret is created with a new token (the operator never rewrites one: deleting it
   * rotates the token). A Secret without a `token` key leaves its user out, with a Warning.
   */
  private async ensureUserTokens(cr: DefaultedCluster, signal: AbortSignal): Promise<Record<string, string>> {
    const { namespace } = cr.metadata;
    const digests: Record<string, string> = {};
    for (const user of cr.spec.users) {
      const name = userSecretName(cr, user);
      let secret = await this.readSecret(namespace, name, signal);
      if (!secret) {
        try {
          await this.deps.rest.request({
            method: 'POST',
            path: resourcePath({ apiVersion: 'v1', kind: 'Secret', namespace }),
            body: userSecret(cr, user, generateUserToken()),
            signal,
          });
          void this.deps.events.record(
            cr,
            'Normal',
            'UserCreated',
            `created Secret ${name} with the token of user ${user.name}`,
          );
        } catch (err) {
          if (!isConflict(err)) throw err;
        }
        secret = await this.readSecret(namespace, name, signal);
      }
      const token = tokenFromSecret(secret?.data);
      if (token) digests[user.name] = tokenSha256(token);
      else {
        void this.deps.events.record(
          cr,
          'Warning',
          'UserTokenMissing',
          `Secret ${name} has no key "${TOKEN_KEY}": user ${user.name} cannot authenticate until it does`,
        );
      }
    }
    return digests;
  }

  private remember(key: string, creds: Credentials): Credentials {
    this.credentials.set(key, creds);
    return creds;
  }

  /** The credentials a Secret holds, after adding the keys a newer operator needs. */
  private async credentialsOf(
    cr: DefaultedCluster,
    secret: KubeObject & { data?: Record<string, string> },
    signal: AbortSignal,
  ): Promise<Credentials> {
    return credentialsFromSecret(secret.data) ?? this.addMissingCredentials(cr, secret, signal);
  }

  /**
   * A Secret written by an older operator lacks the keys added since (the monitor and root passwords): they
   * are generated and merged in, guarded by the resourceVersion read, so a concurrent writer's
   * value wins and is read back. A Secret missing an original key cannot be repaired.
   */
  private async addMissingCredentials(
    cr: DefaultedCluster,
    current: KubeObject & { data?: Record<string, string> },
    signal: AbortSignal,
  ): Promise<Credentials> {
    const { namespace } = cr.metadata;
    const name = names.credentials(cr.metadata.name);
    const added = missingAddedKeys(current.data);
    if (!added) {
      throw new Error(
        `Secret ${name} lacks one of its keys; delete it only if the cluster holds no data yet`,
      );
    }
    const ref = { apiVersion: 'v1', kind: 'Secret', namespace, name };
    try {
      await mergePatch(
        this.deps.rest,
        ref,
        { data: added },
        { resourceVersion: current.metadata?.resourceVersion, signal },
      );
      void this.deps.events.record(
        cr,
        'Normal',
        'CredentialsUpdated',
        `added ${Object.keys(added).join(', ')} to Secret ${name} (keys this operator version needs)`,
      );
    } catch (err) {
      if (!isConflict(err)) throw err;
    }
    const creds = credentialsFromSecret((await this.readSecret(namespace, name, signal))?.data);
    if (!creds) throw new Error(`Secret ${name} lacks one of its keys`);
    return creds;
  }

  /** GET of one Secret by name; undefined when there is none. */
  private async readSecret(
    namespace: string,
    name: string,
    signal: AbortSignal,
  ): Promise<(KubeObject & { data?: Record<string, string> }) | undefined> {
    try {
      return await this.deps.rest.request<KubeObject & { data?: Record<string, string> }>({
        path: resourcePath({ apiVersion: 'v1', kind: 'Secret', namespace, name }),
        signal,
      });
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  private ensureLoop(
    key: string,
    cr: DefaultedCluster,
    credentials: Credentials,
    mysqlTls: ClientTls | undefined,
  ): ClusterLoop {
    const existing = this.loops.get(key);
    // A replaced CA (it lasts ten years) needs a loop whose connections trust the new one.
    if (existing && this.loopCa.get(key) === mysqlTls?.ca) return existing;
    existing?.stop();
    this.loopCa.set(key, mysqlTls?.ca);
    const { namespace, name } = cr.metadata;
    const pods = (component: string) =>
      this.deps.caches
        .ofCluster<Pod>('Pod', namespace, name)
        .filter((p) => p.metadata.labels?.[LABEL_COMPONENT] === component);
    const loop = new ClusterLoop({
      cluster: () => this.accepted.get(key),
      mysqlPods: () => pods(COMPONENT_MYSQL),
      brokerUrls: () => {
        const port = this.accepted.get(key)?.spec.brokers.port;
        return pods(COMPONENT_BROKER)
          .filter((p) => p.status?.podIP && !p.metadata.deletionTimestamp && p.status.phase === 'Running')
          .map((p) => `${brokerPodServesTls(p.spec) ? 'https' : 'http'}://${p.status!.podIP}:${port}`);
      },
      brokerTls: () => this.brokerTrust.get(key),
      secrets: shardSecrets(credentials, mysqlTls),
      adminToken: credentials['admin-token'],
      publishedRouting: this.publishedRouting(cr),
      changed: () => this.deps.enqueue(key),
      cordonedNodes: () => this.deps.caches.cordonedNodes(),
      readSecret: async (secretName) => {
        try {
          const secret = await this.deps.rest.request<KubeObject & { data?: Record<string, string> }>({
            path: resourcePath({ apiVersion: 'v1', kind: 'Secret', namespace, name: secretName }),
          });
          return secret.data ?? {};
        } catch (err) {
          if (isNotFound(err)) return undefined;
          throw err;
        }
      },
      clearSwitchoverRequest: async () => {
        const live = this.deps.caches.cluster(key);
        if (!live?.metadata.annotations?.[ANNOTATION_SWITCHOVER]) return;
        await mergePatch(this.deps.rest, refOf(defaultCluster(live)), {
          metadata: { annotations: { [ANNOTATION_SWITCHOVER]: null } },
        });
      },
      events: this.deps.events,
      topicResource: (topic) => {
        const t = this.deps.caches
          .topics(namespace)
          .find((r) => r.spec.cluster === name && topicNameOf(r) === topic && !r.metadata.deletionTimestamp);
        return t && { kind: TOPIC_KIND, metadata: t.metadata };
      },
      metrics: this.deps.loopMetrics,
      log: this.deps.log.child({ cluster: name, namespace }),
    });
    this.loops.set(key, loop);
    this.admins.set(key, shardSecrets(credentials, mysqlTls).admin);
    loop.start();
    return loop;
  }

  private publishedRouting(cr: DefaultedCluster): RoutingDocument | undefined {
    const cm = this.deps.caches.get<KubeObject & { data?: Record<string, string> }>(
      'ConfigMap',
      cr.metadata.namespace,
      names.routing(cr.metadata.name),
    );
    const text = cm?.data?.[ROUTING_FILE];
    if (!text) return undefined;
    try {
      return parseRouting(JSON.parse(text));
    } catch {
      return undefined; // edited by hand into something invalid: the next tick publishes anew
    }
  }

  private async authSecretVersion(cr: DefaultedCluster, signal: AbortSignal): Promise<string | undefined> {
    const secretName = cr.spec.brokers.authSecretName;
    if (!secretName) return undefined;
    try {
      const s = await this.deps.rest.request<KubeObject>({
        path: resourcePath({
          apiVersion: 'v1',
          kind: 'Secret',
          namespace: cr.metadata.namespace,
          name: secretName,
        }),
        signal,
      });
      return s.metadata?.resourceVersion;
    } catch (err) {
      if (!isNotFound(err)) throw err;
      void this.deps.events.record(
        cr,
        'Warning',
        'AuthSecretMissing',
        `Secret ${secretName} (spec.brokers.authSecretName) does not exist; brokers cannot start until it does`,
      );
      return undefined;
    }
  }

  /**
   * The seed annotations of standby Pods created now: in a shard that holds data, a standby Pod
   * created on an empty volume (a lost PVC) copies its primary; one being rebuilt copies it for
   * the shard loop's request whatever its volume holds.
   */
  private seedsOf(cr: DefaultedCluster, loop: ClusterLoop): Record<string, SeedAnnotations> {
    const seeds: Record<string, SeedAnnotations> = {};
    for (let i = 0; i < cr.spec.shards; i++) {
      const memory = loop.memoryOf(names.shard(i));
      if (!memory.bootstrapped) continue;
      const standby = names.pod(cr.metadata.name, i, 1 - memory.primaryIndex);
      const rebuild = memory.rebuild;
      if (rebuild && rebuild.index === 1 - memory.primaryIndex) {
        seeds[standby] = { source: rebuild.source, id: rebuild.id };
        continue;
      }
      const primary = this.deps.caches.get<Pod>(
        'Pod',
        cr.metadata.namespace,
        names.pod(cr.metadata.name, i, memory.primaryIndex),
      );
      if (primary?.status?.podIP) seeds[standby] = { source: `${primary.status.podIP}:${AGENT_PORT}` };
    }
    return seeds;
  }

  /** Server-side apply, skipped when the object is as the operator last left it. */
  private async apply(cr: DefaultedCluster, obj: DesiredObject, signal: AbortSignal): Promise<void> {
    const key = `${obj.kind}/${obj.metadata.namespace}/${obj.metadata.name}`;
    const hash = hashOf(obj);
    const live = this.deps.caches.get(obj.kind as 'ConfigMap', obj.metadata.namespace, obj.metadata.name);
    const last = this.applied.get(key);
    if (live && last?.hash === hash && last.resourceVersion === live.metadata?.resourceVersion) return;
    try {
      const stored = await applyObject<KubeObject>(this.deps.rest, obj, { signal });
      this.applied.set(key, { hash, resourceVersion: stored.metadata?.resourceVersion });
      if (!live)
        void this.deps.events.record(cr, 'Normal', 'Created', `created ${obj.kind} ${obj.metadata.name}`);
    } catch (err) {
      void this.deps.events.record(
        cr,
        'Warning',
        'ApplyFailed',
        `${obj.kind} ${obj.metadata.name}: ${errorSummary(err)}`,
      );
      throw err;
    }
  }

  /**
   * Instance Pods: observe (cache and the shard loop's latest tick), plan (`planPods`, pure),
   * execute the actions in order. Returns whether something is still on its way.
   */
  private async reconcilePods(
    cr: DefaultedCluster,
    desired: DesiredObject[],
    latest: ClusterLoop['latest'],
    signal: AbortSignal,
  ): Promise<boolean> {
    const { namespace } = cr.metadata;
    const key = `${namespace}/${cr.metadata.name}`;
    const wanted = desired.filter((o) => o.kind === 'Pod');
    const observed = new Map<string, Pod>();
    for (const want of wanted) {
      const pod = this.deps.caches.get<Pod>('Pod', namespace, want.metadata.name);
      if (pod) observed.set(want.metadata.name, pod);
    }
    const { outcomes } = latest;
    const shardsSettled =
      latest.observedAt > (this.lastRollAt.get(key) ?? 0) + ROLL_SETTLE_MS &&
      outcomes !== undefined &&
      outcomes.length === cr.spec.shards &&
      outcomes.every((o) => o.decision.memory.phase === 'Healthy' && o.instances.every((i) => i.podReady));
    const plan = planPods({ desired: wanted, observed, shardsSettled });

    const podRef = (name: string) => ({ apiVersion: 'v1', kind: 'Pod', namespace, name });
    for (const action of plan.actions) {
      switch (action.kind) {
        case 'create':
          try {
            await this.deps.rest.request({
              method: 'POST',
              path: resourcePath({ ...refOf(action.pod), name: undefined }),
              body: action.pod,
              signal,
            });
            void this.deps.events.record(
              cr,
              'Normal',
              'Created',
              `created Pod ${action.pod.metadata.name} (${action.role})`,
            );
          } catch (err) {
            if (!isConflict(err)) throw err;
          }
          break;
        case 'replace':
          void this.deps.events.record(
            cr,
            'Warning',
            'ReplacingPod',
            `Pod ${action.name} is ${action.phase}; deleting it so it is created again on the same volume`,
          );
          await this.deleteIgnoringMissing(podRef(action.name), signal);
          break;
        case 'rebuild':
          // The shard loop asked for a rebuild: the Pod is created again, and its seed step
          // replaces the data on the volume with a copy of the primary.
          void this.deps.events.record(
            cr,
            'Normal',
            'RebuildingPod',
            `deleting Pod ${action.name} so it is created again and seeded from ${action.source} (rebuild ${action.id})`,
          );
          await this.deleteIgnoringMissing(podRef(action.name), signal);
          break;
        case 'relabel':
          await mergePatch(
            this.deps.rest,
            podRef(action.name),
            { metadata: { labels: { [LABEL_ROLE]: action.role } } },
            { signal },
          );
          break;
        case 'reschedule':
          void this.deps.events.record(
            cr,
            'Normal',
            'ReschedulingPod',
            `recreating Pod ${action.name}, which no node took, with the changed spec`,
          );
          await this.deleteIgnoringMissing(podRef(action.name), signal);
          break;
        case 'roll':
          void this.deps.events.record(
            cr,
            'Normal',
            'RollingPod',
            `restarting ${action.role} Pod ${action.name} to apply a changed spec (${action.stale} Pods to go)`,
          );
          this.lastRollAt.set(key, Date.now());
          await this.deleteIgnoringMissing(podRef(action.name), signal);
          break;
      }
    }
    return plan.progressing;
  }

  private async writeStatus(
    cr: DefaultedCluster,
    specProblems: string[],
    signal: AbortSignal,
    restore?: RestoreReport,
  ) {
    const { namespace, name } = cr.metadata;
    const loop = this.loops.get(`${namespace}/${name}`);
    const deployment = this.deps.caches.get<KubeObject & { status?: { readyReplicas?: number } }>(
      'Deployment',
      namespace,
      names.broker(name),
    );
    const status = computeStatus({
      generation: cr.metadata.generation ?? 0,
      previous: cr.status,
      specProblems,
      outcomes: loop?.latest.outcomes,
      shardsTotal: cr.spec.shards,
      brokers: {
        ready: deployment?.status?.readyReplicas ?? 0,
        desired: cr.spec.brokers.replicas,
        selector: brokerSelectorString(cr),
      },
      routingVersion: loop?.latest.routing.version ?? cr.status?.routingVersion ?? 0,
      tls: { brokers: cr.spec.brokers.tls.enabled, mysql: cr.spec.mysql.tls.enabled },
      lastSwitchover: loop?.latest.lastSwitchover,
      backup: loop?.latest.backup,
      ...(restore ? { restore: { status: restore.status, condition: restore.condition } } : {}),
      failoverCount: loop?.latest.failoverCount,
      separation: instanceSeparation(
        name,
        cr.spec.shards,
        cr.spec.placement.instanceAntiAffinity,
        this.deps.caches
          .ofCluster<Pod>('Pod', namespace, name)
          .filter((p) => p.metadata.labels?.[LABEL_COMPONENT] === COMPONENT_MYSQL),
      ),
      now: new Date(),
    });
    // Key order differs between what the server returns and what is built here: compare by value.
    if (hashOf(emptyStringsAs(status, undefined)) === hashOf(cr.status)) return status;
    this.recordSeparationChange(cr, status);
    if (status.phase !== cr.status?.phase) {
      const ready = status.conditions?.find((c) => c.type === 'Ready');
      void this.deps.events.record(
        cr,
        status.phase === 'Ready'
          ? 'Normal'
          : status.phase === 'Provisioning' || status.phase === 'Pending'
            ? 'Normal'
            : 'Warning',
        `Cluster${status.phase}`,
        ready?.message ?? `phase ${status.phase}`,
      );
    }
    try {
      await mergePatchStatus(
        this.deps.rest,
        refOf(cr),
        emptyStringsAs(status, null) as Record<string, unknown>,
        { signal },
      );
    } catch (err) {
      // The cluster may be gone by now; anything else is retried by the controller.
      if (!isNotFound(err)) throw err;
    }
    return status;
  }

  /** A Warning Event when the instances of a shard come to share a node or find none. */
  private recordSeparationChange(cr: DefaultedCluster, status: MessageQueueClusterStatus): void {
    const type = ConditionType.InstancesSeparated;
    const next = status.conditions?.find((c) => c.type === type);
    const before = cr.status?.conditions?.find((c) => c.type === type);
    if (next?.status !== 'False' || (before?.status === 'False' && before.reason === next.reason)) return;
    const reason = next.reason === 'SameNode' ? 'InstancesOnSameNode' : 'InstanceUnschedulable';
    void this.deps.events.record(cr, 'Warning', reason, next.message);
  }

  private async deleteIgnoringMissing(
    ref: { apiVersion: string; kind: string; namespace?: string; name: string },
    signal: AbortSignal,
  ) {
    try {
      await this.deps.rest.request({ method: 'DELETE', path: resourcePath(ref), signal });
    } catch (err) {
      if (!isNotFound(err)) throw new Error(`deleting ${ref.kind} ${ref.name}: ${errorMessage(err)}`);
    }
  }
}
