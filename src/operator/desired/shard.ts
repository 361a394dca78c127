import { AGENT_PORT, ANNOTATION_SEED_ID, ANNOTATION_SEED_SOURCE } from '../../agent/contract.js';
import { refusedOverrides, renderMyCnf, tlsOverrides } from '../../shard/mycnf.js';
import {
  ANNOTATION_CONFIG_HASH,
  COMPONENT_MYSQL,
  type DefaultedCluster,
  LABEL_CLUSTER,
  LABEL_COMPONENT,
  LABEL_INSTANCE,
  LABEL_ROLE,
  LABEL_SHARD,
} from '../api/types.js';
import { ownedKeyOf } from '../api/validate.js';
import { MONITOR_USER, type SecretKey } from './credentials.js';
import {
  RESTORING_INSTANCE,
  restoreAnnotation,
  restoreEnv,
  restoreRequestOf,
  restoreSourceVolume,
} from './restore.js';
import { MYSQL_TLS_FILES, MYSQL_TLS_MOUNT, mysqlServerName } from './mysql-tls.js';
import {
  type DesiredObject,
  type PdbApiVersion,
  type Role,
  hashOf,
  names,
  objectMeta,
  READ_ONLY_CONTAINER,
  podPlacement,
  resourcesOf,
  restrictedPodSecurity,
  withRequiredAntiAffinity,
  withSpreadAffinity,
} from './meta.js';

/** The mysql user and group of the official MariaDB image. */
const MARIADB_UID = 999;

/**
 * Desired objects of one shard (docs/operator-design.md): the my.cnf ConfigMap, two
 * operator-managed instance Pods with their PVCs, the primary and standby Services, and a PDB.
 * Pure functions of the defaulted cluster (+ the role of each instance, which the shard manager
 * decides).
 */

export const MYSQL_PORT = 3306;
export const MYCNF_MOUNT = '/etc/mysql/conf.d/mysqlmq.cnf';
/**
 * The instance's init file (`init_file`, src/shard/accounts.ts `instanceInitFile`): written by the
 * seed step from the credentials Secret into a memory-backed emptyDir, read by mariadbd at start.
 */
export const INIT_MOUNT = '/run/mysqlmq-init';
export const INIT_FILE = `${INIT_MOUNT}/init.sql`;
export const DATA_MOUNT = '/var/lib/mysql';
/** The agent's scratch space (credentials file, mariadb-backup's work files): an emptyDir. */
export const AGENT_TMP_MOUNT = '/tmp';
/** Where the official MariaDB image's mariadbd keeps its socket and pid file: an emptyDir. */
export const MARIADB_RUN_MOUNT = '/run/mysqld';
/** mariadbd's tmpdir (temporary tables, filesort files): an emptyDir of its own. */
export const MARIADB_TMP_MOUNT = '/tmp';
/** uid/gid of `mysql` in the official MariaDB image: the agent reads and writes the data files. */
export const MYSQL_UID = 999;
export const INSTANCES = [0, 1] as const;

/** server_id of instance `instance` (0|1) of shard `shard`: unique across the cluster. */
export const serverIdOf = (shard: number, instance: number) => shard * 2 + instance + 1;

/** Thrown when a builder gets a spec that `validateSpec` would have refused. */
export class InvalidSpecError extends Error {
  override readonly name = 'InvalidSpecError';
}

/**
 * The my.cnf of one instance. Throws InvalidSpecError when `spec.mysql.config` sets a key the
 * operator owns (under `spec.mysql.tls`, its TLS keys too): `renderMyCnf` applies overrides last,
 * so such a key would silently win.
 */
export function instanceMyCnf(cr: DefaultedCluster, shard: number, instance: number): string {
  const overrides = cr.spec.mysql.config;
  const owned = [
    ...new Set([
      ...refusedOverrides(overrides),
      ...Object.keys(overrides).filter((k) => ownedKeyOf(k)),
      ...(cr.spec.mysql.tls.enabled ? tlsOverrides(overrides) : []),
    ]),
  ];
  if (owned.length > 0) {
    throw new InvalidSpecError(
      `spec.mysql.config sets operator-owned keys (${owned.join(', ')}); run validateSpec before building objects`,
    );
  }
  return renderMyCnf({
    serverId: serverIdOf(shard, instance),
    bindAddress: '0.0.0.0',
    port: MYSQL_PORT,
    initFile: INIT_FILE,
    ...(cr.spec.mysql.tls.enabled
      ? { tls: { certFile: MYSQL_TLS_FILES.cert, keyFile: MYSQL_TLS_FILES.key, caFile: MYSQL_TLS_FILES.ca } }
      : {}),
    overrides,
  });
}

/** ConfigMap `NAME-shard-i-mycnf` with keys `instance-0.cnf` and `instance-1.cnf`. */
export function mycnfConfigMap(cr: DefaultedCluster, shard: number): DesiredObject {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: objectMeta(cr, names.mycnf(cr.metadata.name, shard), COMPONENT_MYSQL, {
      labels: { [LABEL_SHARD]: names.shard(shard) },
    }),
    data: Object.fromEntries(INSTANCES.map((i) => [`instance-${i}.cnf`, instanceMyCnf(cr, shard, i)])),
  };
}

/** Selects both instances of a shard (the PDB, the anti-affinity). */
export function shardSelector(cr: DefaultedCluster, shard: number): Record<string, string> {
  return {
    [LABEL_CLUSTER]: cr.metadata.name,
    [LABEL_COMPONENT]: COMPONENT_MYSQL,
    [LABEL_SHARD]: names.shard(shard),
  };
}

export function instanceLabels(shard: number, instance: number, role: Role): Record<string, string> {
  return { [LABEL_SHARD]: names.shard(shard), [LABEL_INSTANCE]: String(instance), [LABEL_ROLE]: role };
}

/** The role each instance of a shard has, given which one is the primary. */
export const roleOf = (instance: number, primaryIndex: number): Role =>
  instance === primaryIndex ? 'primary' : 'standby';

/**
 * The tolerations Kubernetes' DefaultTolerationSeconds admission plugin adds to every Pod that
 * lacks them. Instance Pods spell them out: `tolerations` is an atomic list, so re-applying a Pod
 * without them would "change" it on every apply (resourceVersion bumps seen on 1.20 whenever
 * spec.podTemplate.tolerations is set), and each change would wake the operator's own watch.
 */
export const DEFAULT_NODE_TOLERATIONS = [
  { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
  { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
] as const;

function instanceTolerations(user: Record<string, unknown>[]): Record<string, unknown>[] {
  const covered = (key: string) =>
    user.some((t) => t.key === key || (t.key === undefined && t.operator === 'Exists'));
  return [
    ...structuredClone(user),
    ...DEFAULT_NODE_TOLERATIONS.filter((t) => !covered(t.key)).map((t) => ({ ...t })),
  ];
}

const secretEnv = (cr: DefaultedCluster, name: string, key: SecretKey) => ({
  name,
  valueFrom: { secretKeyRef: { name: names.credentials(cr.metadata.name), key } },
});
/** The admin user's password: the agent's connections, its token, the init file. */
const adminPasswordEnv = (cr: DefaultedCluster) => secretEnv(cr, 'MQ_ADMIN_PASSWORD', 'admin-password');

const agentMounts = [
  { name: 'data', mountPath: DATA_MOUNT },
  { name: 'agent-tmp', mountPath: AGENT_TMP_MOUNT },
];
const INIT_VOLUME = 'mysql-init';
const initMount = { name: INIT_VOLUME, mountPath: INIT_MOUNT };

/** The Secret `NAME-mysql-tls` as a directory, where `spec.mysql.tls` is on. */
const TLS_VOLUME = 'mysql-tls';
const tlsMounts = (cr: DefaultedCluster) =>
  cr.spec.mysql.tls.enabled ? [{ name: TLS_VOLUME, mountPath: MYSQL_TLS_MOUNT, readOnly: true }] : [];

/** Whether an instance Pod mounts `NAME-mysql-tls`, from its spec: its my.cnf requires TLS then. */
export function instancePodUsesTls(podSpec: unknown): boolean {
  const volumes = (podSpec as { volumes?: { name?: string }[] } | undefined)?.volumes;
  return volumes?.some((v) => v.name === TLS_VOLUME) ?? false;
}

const agentCommand = (command: 'serve' | 'seed') => [
  'node',
  '/app/dist/agent/main.js',
  command,
  '--data-dir',
  DATA_MOUNT,
  '--work-dir',
  `${AGENT_TMP_MOUNT}/mq-agent`,
];

/**
 * The agent sidecar (the mysqlmq image): streams a physical copy of this instance to an instance
 * being rebuilt. No readiness probe: the Pod's readiness is the failover signal of MariaDB alone.
 */
function agentContainer(cr: DefaultedCluster): Record<string, unknown> {
  return {
    name: 'agent',
    image: cr.spec.brokers.image,
    imagePullPolicy: 'IfNotPresent',
    command: [
      ...agentCommand('serve'),
      '--host',
      '0.0.0.0',
      '--port',
      String(AGENT_PORT),
      ...(cr.spec.mysql.tls.enabled
        ? ['--mysql-ca', MYSQL_TLS_FILES.ca, '--mysql-server-name', mysqlServerName(cr)]
        : []),
    ],
    ports: [{ name: 'agent', containerPort: AGENT_PORT, protocol: 'TCP' }],
    env: [adminPasswordEnv(cr), { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } }],
    volumeMounts: [...agentMounts, ...tlsMounts(cr)],
    securityContext: { ...READ_ONLY_CONTAINER, runAsUser: MYSQL_UID, runAsGroup: MYSQL_UID },
  };
}

export const EXPORTER_CONTAINER = 'mysqld-exporter';
export const EXPORTER_PORT = 9104;
/** Where Debian's `prometheus-mysqld-exporter` package installs mysqld_exporter. */
export const EXPORTER_BINARY = '/usr/bin/prometheus-mysqld-exporter';

/**
 * The opt-in mysqld_exporter sidecar: /metrics on port 9104 (`metrics`) about this instance,
 * read over the Pod's loopback as `mq_monitor`. The DSN names the password only as a reference to
 * the Secret-backed variable before it, so neither the Pod spec nor the logs hold it. No readiness
 * probe: the Pod's readiness stays the failover signal of MariaDB alone.
 */
function exporterContainer(cr: DefaultedCluster): Record<string, unknown> {
  const { image, resources } = cr.spec.monitoring.mysqldExporter;
  const limits = resourcesOf(resources);
  return {
    name: EXPORTER_CONTAINER,
    image,
    imagePullPolicy: 'IfNotPresent',
    command: [
      EXPORTER_BINARY,
      `--web.listen-address=:${EXPORTER_PORT}`,
      // Binlog sizes on top of the defaults (status, variables, SHOW SLAVE STATUS): the growth
      // that retention's binlog purge should bound.
      '--collect.binlog_size',
    ],
    ports: [{ name: 'metrics', containerPort: EXPORTER_PORT, protocol: 'TCP' }],
    env: [
      secretEnv(cr, 'MQ_MONITOR_PASSWORD', 'monitor-password'),
      {
        name: 'DATA_SOURCE_NAME',
        // Under spec.mysql.tls the instance refuses plain TCP; this hop is the Pod's own loopback,
        // where the certificate's chain adds nothing and the exporter has no way to be given the CA.
        value: `${MONITOR_USER}:$(MQ_MONITOR_PASSWORD)@tcp(127.0.0.1:${MYSQL_PORT})/${cr.spec.mysql.tls.enabled ? '?tls=skip-verify' : ''}`,
      },
    ],
    securityContext: READ_ONLY_CONTAINER,
    ...(limits ? { resources: limits } : {}),
  };
}

/**
 * The init step: seeds the data directory from the agent named by the `mysqlmq.io/seed-source`
 * annotation when the volume is empty or a rebuild (`mysqlmq.io/seed-id`) asks for it; otherwise
 * it does not. The operator sets the annotations on the Pods it creates. Every start it first
 * writes the instance's init file (the admin and monitor users), before mariadbd starts.
 */
function seedContainer(cr: DefaultedCluster, instance: number): Record<string, unknown> {
  const source = instance === RESTORING_INSTANCE ? restoreSourceVolume(cr) : undefined;
  const annotation = (key: string) => ({ fieldRef: { fieldPath: `metadata.annotations['${key}']` } });
  return {
    name: 'seed',
    image: cr.spec.brokers.image,
    imagePullPolicy: 'IfNotPresent',
    command: [...agentCommand('seed'), '--init-file', INIT_FILE],
    env: [
      adminPasswordEnv(cr),
      secretEnv(cr, 'MQ_MONITOR_PASSWORD', 'monitor-password'),
      { name: 'MQ_SEED_SOURCE', valueFrom: annotation(ANNOTATION_SEED_SOURCE) },
      { name: 'MQ_SEED_ID', valueFrom: annotation(ANNOTATION_SEED_ID) },
      ...(instance === RESTORING_INSTANCE ? restoreEnv(cr) : []),
    ],
    volumeMounts: [...agentMounts, initMount, ...(source ? [source.mount] : [])],
    securityContext: { ...READ_ONLY_CONTAINER, runAsUser: MYSQL_UID, runAsGroup: MYSQL_UID },
  };
}

/**
 * The two instances of a shard on different nodes: with both on one node, that node's failure
 * takes the whole shard (and every message on it) away. `spec.placement.instanceAntiAffinity:
 * preferred` relaxes the rule for clusters with fewer nodes than that needs.
 */
function instanceAffinity(cr: DefaultedCluster, shard: number): Record<string, unknown> {
  const { affinity } = cr.spec.podTemplate;
  return cr.spec.placement.instanceAntiAffinity === 'required'
    ? withRequiredAntiAffinity(affinity, shardSelector(cr, shard))
    : withSpreadAffinity(affinity, shardSelector(cr, shard));
}

/** The Pod spec of an instance: everything but the role, so a failover never changes it. */
function instancePodSpec(cr: DefaultedCluster, shard: number, instance: number): Record<string, unknown> {
  const { mysql, podTemplate } = cr.spec;
  const resources = resourcesOf(mysql.resources);
  const restoreSource = instance === RESTORING_INSTANCE ? restoreSourceVolume(cr) : undefined;
  return {
    // A crashed mariadbd restarts in the same Pod (same IP, same volume); the shard manager decides
    // when a restarted primary serves again.
    restartPolicy: 'Always',
    // InnoDB flushes its buffer pool on a clean shutdown; give it time.
    terminationGracePeriodSeconds: 60,
    // MariaDB needs no Kubernetes API access, nor one env var per Service in the namespace.
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    affinity: instanceAffinity(cr, shard),
    ...podPlacement(cr),
    tolerations: instanceTolerations(podTemplate.tolerations),
    // The image's mysql user (999) from the start: the entrypoint then skips its switch from root,
    // and fsGroup makes the data volume writable by it.
    securityContext: restrictedPodSecurity(MARIADB_UID, MARIADB_UID),
    containers: [
      {
        name: 'mariadb',
        image: mysql.image,
        imagePullPolicy: 'IfNotPresent',
        ports: [{ name: 'mysql', containerPort: MYSQL_PORT, protocol: 'TCP' }],
        // root on the unix socket only: nobody connects as root over the network (the operator
        // and agents use the admin user of the init file); its password is a person's way in.
        env: [
          secretEnv(cr, 'MARIADB_ROOT_PASSWORD', 'root-password'),
          { name: 'MARIADB_ROOT_HOST', value: 'localhost' },
        ],
        volumeMounts: [
          { name: 'data', mountPath: DATA_MOUNT },
          { name: 'mycnf', mountPath: MYCNF_MOUNT, subPath: `instance-${instance}.cnf`, readOnly: true },
          { ...initMount, readOnly: true },
          ...tlsMounts(cr),
          // The image stays read-only; the entrypoint and mariadbd write only the socket and pid
          // file (/run/mysqld) and temporary tables and files (/tmp) besides the data volume.
          { name: 'mariadb-run', mountPath: MARIADB_RUN_MOUNT },
          { name: 'mariadb-tmp', mountPath: MARIADB_TMP_MOUNT },
        ],
        securityContext: READ_ONLY_CONTAINER,
        // Ready = accepting TCP. The shard manager's MySQL probes (spec.failover) decide failover;
        // this only keeps a dead instance out of its Service within a few seconds.
        readinessProbe: {
          tcpSocket: { port: MYSQL_PORT },
          periodSeconds: 2,
          timeoutSeconds: 2,
          failureThreshold: 3,
        },
        ...(resources ? { resources } : {}),
      },
      agentContainer(cr),
      ...(cr.spec.monitoring.mysqldExporter.enabled ? [exporterContainer(cr)] : []),
    ],
    initContainers: [seedContainer(cr, instance)],
    volumes: [
      { name: 'data', persistentVolumeClaim: { claimName: names.pvc(cr.metadata.name, shard, instance) } },
      { name: 'mycnf', configMap: { name: names.mycnf(cr.metadata.name, shard) } },
      { name: 'agent-tmp', emptyDir: {} },
      { name: 'mariadb-run', emptyDir: {} },
      { name: 'mariadb-tmp', emptyDir: {} },
      // In memory: it holds passwords, which never reach a disk this way.
      { name: INIT_VOLUME, emptyDir: { medium: 'Memory' } },
      ...(restoreSource ? [restoreSource.volume] : []),
      ...(cr.spec.mysql.tls.enabled
        ? [
            {
              name: TLS_VOLUME,
              // Group-readable only: mariadbd and the agent run as the mysql group (fsGroup).
              secret: { secretName: names.mysqlTls(cr.metadata.name), defaultMode: 0o440 },
            },
          ]
        : []),
    ],
  };
}

/**
 * The value of the `mysqlmq.io/config-hash` annotation an instance Pod must carry: a hash of its
 * Pod spec and its my.cnf (mounted by subPath, so a ConfigMap change never reaches a running
 * Pod). A Pod's spec is immutable: when the live annotation differs, the reconciler deletes the
 * Pod (standby first, one at a time) and creates it again.
 */
export function mysqlPodHash(
  cr: DefaultedCluster,
  shard: number,
  instance: number,
  certificate?: string,
): string {
  return hashOf(
    instancePodSpec(cr, shard, instance),
    instanceMyCnf(cr, shard, instance),
    // mariadbd reads its certificate at start: a renewed one reaches it by a roll.
    ...(certificate ? [certificate] : []),
  );
}

/** Where a Pod created now seeds its data from (the seed step's annotations). */
export interface SeedAnnotations {
  /** `host:port` of the primary's agent. */
  source: string;
  /** A rebuild request id; absent: seed only an empty volume. */
  id?: string;
}

/**
 * Instance Pod `NAME-shard-i-N` with role label `role` (instance 0 starts as the primary). `seed`
 * names the agent its init step copies from, for a standby of a shard that already holds data;
 * `restore` asks instance 0 of a cluster with spec.restore to restore (until its shard is bootstrapped).
 * `certificate`, the instances' certificate under `spec.mysql.tls`, is part of the config hash.
 */
export function mysqlPod(
  cr: DefaultedCluster,
  shard: number,
  instance: number,
  role: Role,
  seed?: SeedAnnotations,
  restore = false,
  certificate?: string,
): DesiredObject {
  const request =
    restore && instance === RESTORING_INSTANCE
      ? restoreRequestOf(cr, shard, serverIdOf(shard, instance))
      : undefined;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: objectMeta(cr, names.pod(cr.metadata.name, shard, instance), COMPONENT_MYSQL, {
      userLabels: cr.spec.podTemplate.labels,
      labels: instanceLabels(shard, instance, role),
      annotations: {
        ...cr.spec.podTemplate.annotations,
        [ANNOTATION_CONFIG_HASH]: mysqlPodHash(cr, shard, instance, certificate),
        ...(seed ? { [ANNOTATION_SEED_SOURCE]: seed.source } : {}),
        ...(seed?.id ? { [ANNOTATION_SEED_ID]: seed.id } : {}),
        ...(request ? restoreAnnotation(request) : {}),
      },
    }),
    spec: instancePodSpec(cr, shard, instance),
  };
}

/**
 * PVC `data-NAME-shard-i-N`. It carries an ownerReference only under `pvcDeletionPolicy: Delete`:
 * under `Retain` nothing (not the garbage collector, not a lost finalizer) can delete the data
 * together with the cluster. Switching the policy adds or removes the reference on the next apply.
 */
export function dataPvc(cr: DefaultedCluster, shard: number, instance: number): DesiredObject {
  const { storage } = cr.spec.mysql;
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: objectMeta(cr, names.pvc(cr.metadata.name, shard, instance), COMPONENT_MYSQL, {
      labels: { [LABEL_SHARD]: names.shard(shard), [LABEL_INSTANCE]: String(instance) },
      owned: cr.spec.pvcDeletionPolicy === 'Delete',
    }),
    spec: {
      accessModes: ['ReadWriteOnce'],
      resources: { requests: { storage: storage.size } },
      ...(storage.storageClassName ? { storageClassName: storage.storageClassName } : {}),
    },
  };
}

/** Service `NAME-shard-i-primary` or `-standby`, selecting the instance with that role label. */
export function shardService(cr: DefaultedCluster, shard: number, role: Role): DesiredObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: objectMeta(cr, names.shardService(cr.metadata.name, shard, role), COMPONENT_MYSQL, {
      labels: { [LABEL_SHARD]: names.shard(shard), [LABEL_ROLE]: role },
    }),
    spec: {
      type: 'ClusterIP',
      selector: { ...shardSelector(cr, shard), [LABEL_ROLE]: role },
      ports: [{ name: 'mysql', port: MYSQL_PORT, targetPort: MYSQL_PORT, protocol: 'TCP' }],
    },
  };
}

/**
 * PDB `NAME-shard-i` on the standby: a drain may evict it while the shard is Healthy
 * (minAvailable 0), and not while the primary is away or the standby is not in sync
 * (minAvailable 1), so a shard is never emptied by voluntary disruptions. The primary has its
 * own PDB: the eviction API refuses a pod that two PDBs select, so each selects one role.
 * Integer minAvailable, not maxUnavailable: with maxUnavailable the disruption controller counts
 * the pods expected from their owner's scale subresource, which on a MessageQueueCluster is the
 * broker replicas.
 */
export function shardPdb(
  cr: DefaultedCluster,
  shard: number,
  apiVersion: PdbApiVersion,
  standbyEvictable = false,
): DesiredObject {
  return {
    apiVersion,
    kind: 'PodDisruptionBudget',
    metadata: objectMeta(cr, names.shardPdb(cr.metadata.name, shard), COMPONENT_MYSQL, {
      labels: { [LABEL_SHARD]: names.shard(shard) },
    }),
    spec: {
      minAvailable: standbyEvictable ? 0 : 1,
      selector: { matchLabels: { ...shardSelector(cr, shard), [LABEL_ROLE]: 'standby' } },
    },
  };
}

/**
 * PDB `NAME-shard-i-primary`, minAvailable 1 on the pod labelled primary: `kubectl drain`
 * cannot evict a primary. It retries, and meanwhile the operator sees the node cordoned and
 * switches the shard over; the former primary, now the standby, is then evicted like any standby.
 */
export function primaryPdb(cr: DefaultedCluster, shard: number, apiVersion: PdbApiVersion): DesiredObject {
  return {
    apiVersion,
    kind: 'PodDisruptionBudget',
    metadata: objectMeta(cr, names.primaryPdb(cr.metadata.name, shard), COMPONENT_MYSQL, {
      labels: { [LABEL_SHARD]: names.shard(shard) },
    }),
    spec: {
      minAvailable: 1,
      selector: { matchLabels: { ...shardSelector(cr, shard), [LABEL_ROLE]: 'primary' } },
    },
  };
}
