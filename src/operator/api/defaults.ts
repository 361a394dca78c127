import { DEFAULT_MAX_MESSAGE_BYTES } from '../../api/limits.js';
import { ACTIONS } from '../../api/users.js';
import {
  API_VERSION,
  type DefaultedCluster,
  type DefaultedSpec,
  KIND,
  type MessageQueueCluster,
  type MessageQueueClusterSpec,
  type MessageQueueClusterStatus,
} from './types.js';

/**
 * The defaults, in one place. The CRD schema (`crds/mysqlmq.io_messagequeueclusters.yaml`)
 * declares the same values; test/unit/api checks that the two agree.
 */
export const DEFAULTS = {
  shards: 2,
  mysql: {
    image: 'mariadb:10.11',
    storageSize: '10Gi',
    durability: 'required',
    semiSyncTimeoutSeconds: 5,
  },
  brokers: {
    replicas: 2,
    image: 'ghcr.io/mysqlmq/mysqlmq:0.1.0',
    port: 8080,
    maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
  },
  // On for new clusters; a running cluster that never said keeps what it runs (`withTlsDecided`).
  brokerTls: { enabled: true },
  mysqlTls: { enabled: true },
  // On: a broker anyone can reach is no place for business messages (docs/security.md).
  brokerAuth: { enabled: true },
  // Off: tokens serve every client; certificates are for those that want mTLS.
  brokerClientCertificates: { enabled: false },
  failover: {
    probePeriodSeconds: 1,
    failureThreshold: 3,
    promoteStandbyForReads: true,
    promoteForWrites: false,
    promoteForWritesDelaySeconds: 300,
  },
  placement: { instanceAntiAffinity: 'required' },
  pvcDeletionPolicy: 'Retain',
  backup: { keep: 7, binlogArchive: true, binlogArchiveIntervalSeconds: 300 },
  /** Added to spec.users unless listed (auth on), so mqctl and kubectl mqc work: its token is in NAME-user-admin. */
  adminUser: { name: 'admin', rights: [{ topic: '*', actions: ACTIONS }] },
  retention: {
    maxAgeHours: 720,
    binlogMinAgeHours: 24,
    intervalSeconds: 60,
  },
  monitoring: {
    mysqldExporter: { enabled: false },
  },
} as const;

/**
 * The spec with every default applied. The API server applies the same defaults on create, but
 * an object stored before a default existed, or sent by a client that skipped them, must work
 * too. Pure: the input is not modified and the result shares no objects with it.
 */
export function withDefaults(spec: MessageQueueClusterSpec | undefined | null): DefaultedSpec {
  const s = spec ?? {};
  const m = s.mysql ?? {};
  const b = s.brokers ?? {};
  const f = s.failover ?? {};
  const p = s.podTemplate ?? {};
  const r = s.retention ?? {};
  const exporter = s.monitoring?.mysqldExporter ?? {};
  const brokerImage = b.image || DEFAULTS.brokers.image;
  const maxBytesPerShard = r.maxBytesPerShard;
  const storageClassName = m.storage?.storageClassName;
  const authSecretName = b.authSecretName;
  const tlsSecretName = b.tls?.secretName;
  const priorityClassName = p.priorityClassName;
  const auth = b.auth?.enabled ?? DEFAULTS.brokerAuth.enabled;
  return {
    shards: s.shards ?? DEFAULTS.shards,
    mysql: {
      image: m.image || DEFAULTS.mysql.image,
      storage: {
        size: m.storage?.size || DEFAULTS.mysql.storageSize,
        ...(storageClassName ? { storageClassName } : {}),
      },
      resources: clone(m.resources ?? {}),
      config: { ...(m.config ?? {}) },
      durability: m.durability ?? DEFAULTS.mysql.durability,
      semiSyncTimeoutSeconds: m.semiSyncTimeoutSeconds ?? DEFAULTS.mysql.semiSyncTimeoutSeconds,
      tls: { enabled: m.tls?.enabled ?? DEFAULTS.mysqlTls.enabled },
    },
    brokers: {
      replicas: b.replicas ?? DEFAULTS.brokers.replicas,
      image: brokerImage,
      resources: clone(b.resources ?? {}),
      port: b.port ?? DEFAULTS.brokers.port,
      ...(authSecretName ? { authSecretName } : {}),
      maxMessageBytes: b.maxMessageBytes ?? DEFAULTS.brokers.maxMessageBytes,
      tls: {
        enabled: b.tls?.enabled ?? DEFAULTS.brokerTls.enabled,
        ...(tlsSecretName ? { secretName: tlsSecretName } : {}),
        clientCertificates: {
          enabled: b.tls?.clientCertificates?.enabled ?? DEFAULTS.brokerClientCertificates.enabled,
        },
      },
      auth: { enabled: auth },
    },
    failover: {
      probePeriodSeconds: f.probePeriodSeconds ?? DEFAULTS.failover.probePeriodSeconds,
      failureThreshold: f.failureThreshold ?? DEFAULTS.failover.failureThreshold,
      promoteStandbyForReads: f.promoteStandbyForReads ?? DEFAULTS.failover.promoteStandbyForReads,
      promoteForWrites: f.promoteForWrites ?? DEFAULTS.failover.promoteForWrites,
      promoteForWritesDelaySeconds:
        f.promoteForWritesDelaySeconds ?? DEFAULTS.failover.promoteForWritesDelaySeconds,
    },
    podTemplate: {
      ...(p.affinity ? { affinity: clone(p.affinity) } : {}),
      tolerations: clone(p.tolerations ?? []),
      nodeSelector: { ...(p.nodeSelector ?? {}) },
      labels: { ...(p.labels ?? {}) },
      annotations: { ...(p.annotations ?? {}) },
      ...(priorityClassName ? { priorityClassName } : {}),
    },
    placement: {
      instanceAntiAffinity: s.placement?.instanceAntiAffinity ?? DEFAULTS.placement.instanceAntiAffinity,
    },
    pvcDeletionPolicy: s.pvcDeletionPolicy ?? DEFAULTS.pvcDeletionPolicy,
    retention: {
      maxAgeHours: r.maxAgeHours ?? DEFAULTS.retention.maxAgeHours,
      ...(maxBytesPerShard !== undefined ? { maxBytesPerShard } : {}),
      binlogMinAgeHours: r.binlogMinAgeHours ?? DEFAULTS.retention.binlogMinAgeHours,
      intervalSeconds: r.intervalSeconds ?? DEFAULTS.retention.intervalSeconds,
    },
    monitoring: {
      mysqldExporter: {
        enabled: exporter.enabled ?? DEFAULTS.monitoring.mysqldExporter.enabled,
        // The mysqlmq image carries Debian's prometheus-mysqld-exporter (Dockerfile).
        image: exporter.image || brokerImage,
        resources: clone(exporter.resources ?? {}),
      },
    },
    // Auth off: no users at all (validateSpec refuses users listed with it off).
    users: auth
      ? [
          ...(s.users?.some((u) => u.name === DEFAULTS.adminUser.name)
            ? []
            : [{ name: DEFAULTS.adminUser.name, rights: [{ topic: '*', actions: [...ACTIONS] }] }]),
          ...clone(s.users ?? []),
        ]
      : [],
    ...(s.backup
      ? {
          backup: {
            schedule: s.backup.schedule,
            target: s.backup.target,
            keep: s.backup.keep ?? DEFAULTS.backup.keep,
            binlogArchive: s.backup.binlogArchive ?? DEFAULTS.backup.binlogArchive,
            binlogArchiveIntervalSeconds:
              s.backup.binlogArchiveIntervalSeconds ?? DEFAULTS.backup.binlogArchiveIntervalSeconds,
          },
        }
      : {}),
    ...(s.restore
      ? {
          restore: {
            from: {
              cluster: s.restore.from.cluster,
              ...((s.restore.from.target ?? s.backup?.target)
                ? { target: s.restore.from.target ?? s.backup?.target }
                : {}),
            },
            ...(s.restore.pointInTime ? { pointInTime: s.restore.pointInTime } : {}),
          },
        }
      : {}),
  };
}

/** Whether a running cluster's brokers serve HTTPS and its instances require TLS; undefined: not known (nothing runs yet). */
export interface RunningTls {
  brokers?: boolean;
  mysql?: boolean;
}

/**
 * The spec with `tls.enabled` decided where it does not say: a cluster created before TLS was on
 * by default (the CRD then defaulted it to false, but an object stored before the field existed
 * has none) keeps what it runs, since turning TLS on would cut off its clients (brokers) or is
 * refused on a running cluster (MariaDB); a new cluster gets TLS. Pure: the input is not modified.
 */
export function withTlsDecided(
  spec: MessageQueueClusterSpec | undefined | null,
  running: RunningTls,
): MessageQueueClusterSpec {
  const s = spec ?? {};
  return {
    ...s,
    mysql: {
      ...s.mysql,
      tls: { ...s.mysql?.tls, enabled: s.mysql?.tls?.enabled ?? running.mysql ?? DEFAULTS.mysqlTls.enabled },
    },
    brokers: {
      ...s.brokers,
      tls: {
        ...s.brokers?.tls,
        enabled: s.brokers?.tls?.enabled ?? running.brokers ?? DEFAULTS.brokerTls.enabled,
      },
    },
  };
}

/** What a client reads of a cluster object to tell whether it runs TLS. */
export type ClusterTlsView = Pick<MessageQueueCluster, 'spec'> & {
  status?: Pick<MessageQueueClusterStatus, 'tls'>;
};

/**
 * Whether a cluster's brokers serve HTTPS, for a client reading the object: what the spec says,
 * else what the operator decided (`status.tls`), else the default for a cluster not yet reconciled.
 */
export function brokersServeTls(cluster: ClusterTlsView): boolean {
  return cluster.spec?.brokers?.tls?.enabled ?? cluster.status?.tls?.brokers ?? DEFAULTS.brokerTls.enabled;
}

/** Whether a cluster's MariaDB instances require TLS, read as `brokersServeTls` reads the brokers'. */
export function instancesRequireTls(cluster: ClusterTlsView): boolean {
  return cluster.spec?.mysql?.tls?.enabled ?? cluster.status?.tls?.mysql ?? DEFAULTS.mysqlTls.enabled;
}

/**
 * A cluster read from the API server, with its spec defaulted and its identity checked: the
 * desired-state builders need name, namespace and uid (for ownerReferences). Throws when one is
 * missing, which only happens with a hand-made object. Pure.
 */
export function defaultCluster(cr: MessageQueueCluster): DefaultedCluster {
  const { name, namespace, uid } = cr.metadata;
  if (!name || !namespace || !uid) {
    throw new Error('MessageQueueCluster needs metadata.name, metadata.namespace and metadata.uid');
  }
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { ...cr.metadata, name, namespace, uid },
    spec: withDefaults(cr.spec),
    ...(cr.status ? { status: cr.status } : {}),
  };
}

function clone<T>(value: T): T {
  return structuredClone(value);
}
