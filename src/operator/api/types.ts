/**
 * The `MessageQueueCluster` API (mysqlmq.io/v1alpha1): TypeScript types for spec and status, and
 * the names every part of the operator shares (group, labels, annotations, condition types).
 *
 * The CRD in `crds/mysqlmq.io_messagequeueclusters.yaml` is the source of truth for what the API
 * server accepts; these types describe the same shape. `MessageQueueClusterSpec` is what a user
 * may send (everything optional); `DefaultedSpec` is what `withDefaults` (./defaults.ts) returns
 * and what the desired-state builders (../desired/) consume.
 */

import type { BackupTargetSpec } from '../../backup/target-spec.js';
import type { TopicRight } from '../../api/users.js';

// --- API identity ----------------------------------------------------------------------------

export const GROUP = 'mysqlmq.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}` as const;
export const KIND = 'MessageQueueCluster';
export const PLURAL = 'messagequeueclusters';
export const SINGULAR = 'messagequeuecluster';
export const SHORT_NAME = 'mqc';

/** Held on every cluster until its cleanup (per `pvcDeletionPolicy`) is done. */
export const FINALIZER = 'mysqlmq.io/finalizer';

// --- labels and annotations ------------------------------------------------------------------

/** `app.kubernetes.io/name` value on everything the operator creates. */
export const APP_NAME = 'mysqlmq';
/** `app.kubernetes.io/managed-by` value on everything the operator creates. */
export const MANAGED_BY = 'mysqlmq-operator';

export const LABEL_APP_NAME = 'app.kubernetes.io/name';
export const LABEL_APP_INSTANCE = 'app.kubernetes.io/instance';
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
/** `mysql` on MariaDB instances and their objects, `broker` on the brokers', `credentials` on the Secret. */
export const LABEL_COMPONENT = 'app.kubernetes.io/component';
export const LABEL_CLUSTER = 'mysqlmq.io/cluster';
/** `shard-<i>` on a shard's objects. */
export const LABEL_SHARD = 'mysqlmq.io/shard';
/** `0` or `1` on an instance's Pod and PVC. */
export const LABEL_INSTANCE = 'mysqlmq.io/instance';
/** `primary` or `standby` on an instance Pod; the shard Services select on it. */
export const LABEL_ROLE = 'mysqlmq.io/role';

export const COMPONENT_MYSQL = 'mysql';
export const COMPONENT_BROKER = 'broker';
export const COMPONENT_CREDENTIALS = 'credentials';

/** Label-key prefixes a user may not set through `spec.podTemplate.labels`: selectors depend on them. */
export const RESERVED_LABEL_PREFIXES = ['app.kubernetes.io/', 'mysqlmq.io/'] as const;

/**
 * Hash of everything that needs a restart to take effect: the rendered Pod spec and, for
 * MariaDB instances, the my.cnf content (a subPath mount never sees a ConfigMap change). Instance
 * Pods are operator-managed and a Pod's spec is immutable: the reconciler recreates a Pod (one at
 * a time, standby first) whose annotation differs from the desired one. On the broker Deployment
 * the annotation sits on the pod template, so a change rolls out by itself. The role label is
 * NOT part of the hash: a failover relabels pods, it never restarts them.
 */
export const ANNOTATION_CONFIG_HASH = 'mysqlmq.io/config-hash';
/**
 * On a MessageQueueCluster, set by a person or `kubectl mqc switchover`: the name of a shard
 * (`shard-0`) whose standby should become its primary. The operator removes it when done.
 */
export const ANNOTATION_SWITCHOVER = 'mysqlmq.io/switchover';
/** On the routing ConfigMap: the `version` of the routing document it holds. */
export const ANNOTATION_ROUTING_VERSION = 'mysqlmq.io/routing-version';

// --- conditions and phases -------------------------------------------------------------------

/** Condition types (PascalCase, observed state); `Ready` is the summary. Also usable as a type. */
export const ConditionType = {
  /** Every shard readable and writable with its standby attached, every broker ready. */
  Ready: 'Ready',
  /** Messages can be published and consumed: writable shards and ready brokers exist. */
  Available: 'Available',
  /** The operator is creating or changing something (provisioning, rolling, scaling). */
  Progressing: 'Progressing',
  /** Something runs with less than full protection or capacity (a failover, a missing standby). */
  Degraded: 'Degraded',
  /**
   * Every shard's primary and standby run on different nodes (kubernetes.io/hostname). False with
   * reason SameNode when `spec.placement.instanceAntiAffinity: preferred` let both land on one
   * node, Unschedulable when the required rule leaves an instance Pod without a node.
   */
  InstancesSeparated: 'InstancesSeparated',
} as const;
export type ConditionType = (typeof ConditionType)[keyof typeof ConditionType];

/** With `spec.backup` only: True once every shard's last scheduled backup finished. */
export const BACKUP_READY_CONDITION = 'BackupReady';
/** With `spec.restore` only: True once every shard's primary holds the restored data. */
export const RESTORED_CONDITION = 'Restored';

export type ConditionStatus = 'True' | 'False' | 'Unknown';

/** metav1.Condition (the CRD's status schema enforces the same rules). */
export interface Condition {
  type: string;
  status: ConditionStatus;
  /** CamelCase, one word: `^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$`, 1..1024 characters. */
  reason: string;
  /** Human readable, at most 32768 characters ("" allowed). */
  message: string;
  /** RFC 3339; changes only when `status` changes. */
  lastTransitionTime: string;
  observedGeneration?: number;
}

/** `status.phase`: the CRD allows exactly these. Conditions carry the detail. */
export const PHASES = ['Pending', 'Provisioning', 'Ready', 'Degraded', 'Failed', 'Deleting'] as const;
export type ClusterPhase = (typeof PHASES)[number];

// --- spec ------------------------------------------------------------------------------------

export const DURABILITIES = ['required', 'preferred'] as const;
/**
 * `required`: a shard whose standby is away takes no writes (nothing acknowledged can be lost);
 * `preferred`: after `semiSyncTimeoutSeconds` the primary degrades to asynchronous replication,
 * keeps taking writes, and status says the shard is unprotected.
 */
export type Durability = (typeof DURABILITIES)[number];

export const INSTANCE_ANTI_AFFINITIES = ['required', 'preferred'] as const;
/**
 * `required`: a shard's two instances never run on the same node (a Pod stays Pending rather
 * than share one); `preferred`: they spread when they can, and status warns when they share one.
 */
export type InstanceAntiAffinity = (typeof INSTANCE_ANTI_AFFINITIES)[number];

export const PVC_DELETION_POLICIES = ['Retain', 'Delete'] as const;
export type PvcDeletionPolicy = (typeof PVC_DELETION_POLICIES)[number];

/** A Kubernetes quantity as YAML may give it (`2`, `500m`, `1Gi`). */
export type Quantity = string | number;

/** corev1.ResourceRequirements (1.20 has no `claims`). */
export interface ResourceRequirements {
  limits?: Record<string, Quantity>;
  requests?: Record<string, Quantity>;
}

/** corev1.Toleration, passed through as given. */
export type Toleration = Record<string, unknown>;
/** corev1.Affinity (nodeAffinity, podAffinity, podAntiAffinity), passed through and merged. */
export type Affinity = Record<string, unknown>;

export interface StorageSpec {
  /** PVC request per instance, a quantity such as `10Gi`. */
  size?: string;
  /** Omitted: the cluster's default StorageClass. */
  storageClassName?: string;
}

export interface MysqlSpec {
  image?: string;
  storage?: StorageSpec;
  resources?: ResourceRequirements;
  /** my.cnf overrides (`[mariadbd]` section). Keys the operator owns are refused. */
  config?: Record<string, string>;
  durability?: Durability;
  /** Under `preferred`: how long a primary waits for its standby before going asynchronous. */
  semiSyncTimeoutSeconds?: number;
  tls?: MysqlTlsSpec;
}

/**
 * TLS on every MariaDB connection (docs/security.md, "MariaDB TLS"): the instances require it, with
 * a certificate the operator issues from the cluster's CA. On for new clusters; turning it on or off
 * later is refused (a cluster created before the default keeps plain instances).
 */
export interface MysqlTlsSpec {
  enabled?: boolean;
}

export interface BrokersSpec {
  replicas?: number;
  image?: string;
  resources?: ResourceRequirements;
  port?: number;
  /** Deprecated (spec.users): a Secret whose key `token` is a shared token with every right. */
  authSecretName?: string;
  maxMessageBytes?: number;
  tls?: BrokerTlsSpec;
  auth?: BrokerAuthSpec;
}

/**
 * Whether brokers authenticate clients (docs/security.md, "Clients and rights"). On by default:
 * every client needs a token (the `admin` user's is in Secret `NAME-user-admin`). `enabled: false`
 * is for development only: anyone reaching a broker may publish, consume and administer.
 */
export interface BrokerAuthSpec {
  enabled?: boolean;
}

/**
 * HTTPS on the brokers (docs/security.md, "TLS"). On for new clusters; a cluster created before
 * that default keeps serving plain HTTP until `enabled: true` is set (its clients need the CA first).
 */
export interface BrokerTlsSpec {
  enabled?: boolean;
  /**
   * A Secret of type kubernetes.io/tls (keys `tls.crt`, `tls.key`, and `ca.crt` for clients) that
   * the operator uses as it is; omitted: the operator issues one from its own CA (`NAME-ca`).
   */
  secretName?: string;
  clientCertificates?: BrokerClientCertificatesSpec;
}

/**
 * mTLS (docs/security.md, "mTLS client certificates"): the operator issues every user a client
 * certificate from `NAME-ca` into its Secret, and brokers take it instead of a token. Off by
 * default; needs broker TLS and authentication on.
 */
export interface BrokerClientCertificatesSpec {
  enabled?: boolean;
}

export interface FailoverSpec {
  probePeriodSeconds?: number;
  failureThreshold?: number;
  promoteStandbyForReads?: boolean;
  promoteForWrites?: boolean;
  promoteForWritesDelaySeconds?: number;
}

export interface PodTemplateSpec {
  affinity?: Affinity;
  tolerations?: Toleration[];
  nodeSelector?: Record<string, string>;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  priorityClassName?: string;
}

/** Where the MariaDB instances may run relative to each other. */
export interface PlacementSpec {
  instanceAntiAffinity?: InstanceAntiAffinity;
}

/** Message retention and binlog purge (src/operator/retention/). */
export interface RetentionSpec {
  /** Messages older than this are deleted; a topic's `retentionMaxAgeHours` overrides it. */
  maxAgeHours?: number;
  /** Payload bytes a topic may hold per shard; a topic's `retentionMaxBytesPerShard` overrides it. */
  maxBytesPerShard?: number;
  /** Binlogs closed less than this long ago are kept even when the other instance has them. */
  binlogMinAgeHours?: number;
  intervalSeconds?: number;
}

/** A `mysqld_exporter` sidecar in every MariaDB instance Pod (off by default). */
export interface MysqldExporterSpec {
  enabled?: boolean;
  /** An image with Debian's `prometheus-mysqld-exporter` (0.14); default: the brokers' image, which has it. */
  image?: string;
  resources?: ResourceRequirements;
}

export interface MonitoringSpec {
  mysqldExporter?: MysqldExporterSpec;
}

/** Scheduled full backups of every shard (src/operator/backup/, docs/backup.md). */
export interface BackupSpec {
  /** Cron, UTC: 5 fields, or 6 with seconds first, or `@daily`-style nicknames. */
  schedule: string;
  target: BackupTargetSpec;
  /** Finished backups kept per shard. */
  keep?: number;
  /** Archive each shard primary's binlogs to the target, for point-in-time restore (default true). */
  binlogArchive?: boolean;
  /** How often the current binlog is closed and archived (default 300). */
  binlogArchiveIntervalSeconds?: number;
}

/**
 * Fill a new cluster from another cluster's backups (docs/backup.md, "Restore into a new cluster"):
 * each shard's first instance restores the source's shard of the same name before it first starts.
 * Immutable: only a cluster created with it restores, once.
 */
export interface RestoreSpec {
  from: {
    /** The name of the cluster whose backups are read (`<cluster>/<shard>/` in the target). */
    cluster: string;
    /** Where its backups are; default this cluster's `spec.backup.target`. */
    target?: BackupTargetSpec;
  };
  /** RFC 3339: restore the state at this time (backup + archived binlogs); absent: the newest backup. */
  pointInTime?: string;
}

/**
 * A client of the brokers (docs/security.md, "Clients and rights"): the operator generates its
 * token into a Secret and gives the brokers the token's digest with `rights`.
 */
export interface UserSpec {
  name: string;
  rights: TopicRight[];
  /** The Secret (key `token`) that holds its token; default `NAME-user-<name>`. */
  secretName?: string;
}

/** What a user sends (and an old object may hold): every field is optional. */
export interface MessageQueueClusterSpec {
  shards?: number;
  mysql?: MysqlSpec;
  brokers?: BrokersSpec;
  failover?: FailoverSpec;
  podTemplate?: PodTemplateSpec;
  placement?: PlacementSpec;
  pvcDeletionPolicy?: PvcDeletionPolicy;
  retention?: RetentionSpec;
  monitoring?: MonitoringSpec;
  /** Absent: no backups (nothing changes for a cluster without it). */
  backup?: BackupSpec;
  /** Absent: a new cluster starts empty. */
  restore?: RestoreSpec;
  /**
   * Clients of the brokers; a user `admin` with every right is added unless one is listed (also
   * when the list is empty or absent, unless `brokers.auth.enabled` is false).
   */
  users?: UserSpec[];
}

/** The spec after `withDefaults`: every field with a default is present. */
export interface DefaultedSpec {
  shards: number;
  mysql: {
    image: string;
    storage: { size: string; storageClassName?: string };
    resources: ResourceRequirements;
    config: Record<string, string>;
    durability: Durability;
    semiSyncTimeoutSeconds: number;
    tls: { enabled: boolean };
  };
  brokers: {
    replicas: number;
    image: string;
    resources: ResourceRequirements;
    port: number;
    authSecretName?: string;
    maxMessageBytes: number;
    tls: { enabled: boolean; secretName?: string; clientCertificates: { enabled: boolean } };
    auth: { enabled: boolean };
  };
  failover: Required<FailoverSpec>;
  podTemplate: {
    affinity?: Affinity;
    tolerations: Toleration[];
    nodeSelector: Record<string, string>;
    labels: Record<string, string>;
    annotations: Record<string, string>;
    priorityClassName?: string;
  };
  placement: { instanceAntiAffinity: InstanceAntiAffinity };
  pvcDeletionPolicy: PvcDeletionPolicy;
  retention: {
    maxAgeHours: number;
    maxBytesPerShard?: number;
    binlogMinAgeHours: number;
    intervalSeconds: number;
  };
  monitoring: {
    mysqldExporter: { enabled: boolean; image: string; resources: ResourceRequirements };
  };
  backup?: {
    schedule: string;
    target: BackupTargetSpec;
    keep: number;
    binlogArchive: boolean;
    binlogArchiveIntervalSeconds: number;
  };
  /** `from.target` resolved (spec.backup's target when omitted; absent when neither names one). */
  restore?: { from: { cluster: string; target?: BackupTargetSpec }; pointInTime?: string };
  /**
   * With `brokers.auth.enabled`: spec.users with `admin` (listed, or added with every right), never
   * empty; without: empty (no users file, brokers run `--no-auth`).
   */
  users: UserSpec[];
}

// --- status ----------------------------------------------------------------------------------

export type ReadsFrom = 'primary' | 'standby' | 'none';

/**
 * One shard as `kubectl describe` shows it. The fields after `message` are what the shard
 * manager remembers between ticks (src/operator/shards/decide.ts `ShardMemory`): they live in
 * status so a restarted operator resumes where the last one stopped, and the CRD schema lists
 * them (a structural schema prunes status fields it does not know).
 */
export interface ShardStatus {
  /** `shard-<i>`. */
  name: string;
  primaryPod?: string;
  standbyPod?: string;
  readsFrom?: ReadsFrom;
  writable?: boolean;
  replicationLagSeconds?: number | null;
  lagTransactions?: number | null;
  /** The primary's semi-sync state: `active`, `waiting` or `off`. */
  semiSync?: string;
  lastTransitionTime?: string;
  message?: string;
  /** The shard state machine's phase (Provisioning, Healthy, FailedOver, ...). */
  phase?: string;
  /** Which instance (0 or 1) is the primary. */
  primaryIndex?: number;
  bootstrapped?: boolean;
  primaryProbeFailures?: number;
  failedOverAt?: string;
  failedOverProtected?: boolean;
  standbyMustRejoin?: boolean;
  /**
   * The standby needs binlogs its primary purged: it cannot follow by replication and must be
   * rebuilt (a physical copy from the primary or a backup). Set by the retention job's check.
   */
  standbyBehindBinlogPurge?: boolean;
  /** Binlog bytes on the primary after the last retention pass. */
  binlogBytes?: number;
  /** Age of the oldest message kept on the shard at the last retention pass. */
  oldestMessageAgeSeconds?: number;
  retentionError?: string;
  /** A rebuild of the standby by physical clone in progress. */
  rebuild?: { index: number; id: string; source: string; reason: string; since: string };
}

/** The last planned switchover, as `kubectl describe` shows it. */
export interface SwitchoverStatus {
  shard: string;
  /** The primary pod before, and the pod meant to be primary after. */
  from: string;
  to: string;
  result: 'Succeeded' | 'Failed';
  message: string;
  /** RFC 3339. */
  time: string;
  /** How long the shard took no writes (brokers sent them to the other shards meanwhile); 0 when refused. */
  writesPausedMs: number;
  /** `annotation` (mysqlmq.io/switchover) or `drain` (the primary's node was cordoned). */
  requestedBy?: string;
}

/** The last scheduled backup, as `kubectl describe` shows it. */
export interface BackupStatus {
  /** When the last backup of every shard that finished started (RFC 3339). */
  lastBackupTime?: string;
  /** Bytes of that backup, all shards together. */
  lastBackupBytes?: number;
  /** Why the last attempt failed; empty after a success. */
  lastError?: string;
  /** When the schedule runs next (RFC 3339). */
  nextBackupTime?: string;
  /** The target, without credentials (`s3://bucket/prefix/ at endpoint`, `directory /backups`). */
  target?: string;
  /** When every shard's binlogs were last archived (RFC 3339): a restore can reach this time. */
  lastBinlogArchiveTime?: string;
  /** Why the last binlog archive run failed; empty after a success. */
  lastBinlogArchiveError?: string;
}

/** The restore of a cluster created with `spec.restore`, as `kubectl describe` shows it. */
export interface RestoreStatus {
  /** `<cluster> in <target description>` (never credentials). */
  from: string;
  pointInTime?: string;
  /** Per shard, when its primary's restore finished (RFC 3339). */
  shards?: { name: string; completedTime?: string }[];
  /** When every shard was restored (RFC 3339). */
  completedTime?: string;
  /** Why the restore cannot go on, until it can. */
  error?: string;
}

export interface MessageQueueClusterStatus {
  observedGeneration?: number;
  phase?: ClusterPhase;
  conditions?: Condition[];
  shardsReady?: number;
  shardsTotal?: number;
  writableShards?: number;
  brokersReady?: number;
  /** The scale subresource's status replicas. */
  brokerReplicas?: number;
  /** The scale subresource's selector: the broker pods' label selector as a string. */
  brokerSelector?: string;
  lastFailoverTime?: string;
  /** Failovers since the cluster was created (Events may be deduplicated or expire; this stays). */
  failoverCount?: number;
  lastSwitchover?: SwitchoverStatus;
  backup?: BackupStatus;
  restore?: RestoreStatus;
  shards?: ShardStatus[];
  /** The version of the last routing document published to brokers. */
  routingVersion?: number;
  /** What the cluster runs, also where its spec does not say (`withTlsDecided`): clients read it. */
  tls?: { brokers: boolean; mysql: boolean };
}

// --- the object ------------------------------------------------------------------------------

export interface ObjectMetaLike {
  name?: string;
  namespace?: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  deletionTimestamp?: string | Date;
  creationTimestamp?: string | Date;
  [k: string]: unknown;
}

/** A cluster as read from the API server (or written by hand in a test). */
export interface MessageQueueCluster {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMetaLike;
  spec?: MessageQueueClusterSpec;
  status?: MessageQueueClusterStatus;
}

/**
 * A cluster whose spec went through `withDefaults` and whose name, namespace and uid are known
 * (`defaultCluster` in ./defaults.ts builds one). The desired-state builders take this.
 */
export interface DefaultedCluster {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: ObjectMetaLike & { name: string; namespace: string; uid: string };
  spec: DefaultedSpec;
  status?: MessageQueueClusterStatus;
}
