import { ANNOTATION_RESTORE } from '../../agent/contract.js';
import type { RestoreRequest } from '../../agent/restore-step.js';
import type { DefaultedCluster } from '../api/types.js';
import {
  BROKER_USER,
  MONITOR_USER,
  MYSQL_ADMIN_USER,
  REPLICATION_USER,
  type SecretKey,
} from './credentials.js';
import { names } from './meta.js';

/**
 * What the Pods of a cluster created with `spec.restore` carry (docs/backup.md, "Restore into a
 * new cluster"): the first primary of each shard gets the `mysqlmq.io/restore` annotation while
 * its shard is not bootstrapped, and its seed step the environment the restore needs. Pure.
 */

/** The restore happens on instance 0, the primary a new shard starts with. */
export const RESTORING_INSTANCE = 0;

/**
 * The new cluster's accounts the restore sets passwords for, and where each password comes from.
 * root: `root@localhost` of the restored data (and `root@'%'` of a backup an older operator took,
 * which the instance's init file then drops).
 */
const ACCOUNTS: { user: string; passwordEnv: string; key: SecretKey }[] = [
  { user: 'root', passwordEnv: 'MQ_ROOT_PASSWORD', key: 'root-password' },
  { user: MYSQL_ADMIN_USER, passwordEnv: 'MQ_ADMIN_PASSWORD', key: 'admin-password' },
  { user: REPLICATION_USER, passwordEnv: 'MQ_REPLICATION_PASSWORD', key: 'replication-password' },
  { user: BROKER_USER, passwordEnv: 'MQ_BROKER_PASSWORD', key: 'broker-password' },
  { user: MONITOR_USER, passwordEnv: 'MQ_MONITOR_PASSWORD', key: 'monitor-password' },
];

/** The annotation value asking instance 0 of `shard` to restore; undefined without spec.restore. */
export function restoreRequestOf(
  cr: DefaultedCluster,
  shard: number,
  serverId: number,
): RestoreRequest | undefined {
  const restore = cr.spec.restore;
  if (!restore?.from.target) return undefined;
  return {
    cluster: restore.from.cluster,
    shard: names.shard(shard),
    // The Secret's name and the volume stay out: the step gets the keys as environment variables
    // and finds the volume mounted at the path.
    target: restore.from.target.s3
      ? { s3: { ...restore.from.target.s3, credentialsSecret: undefined } }
      : { directory: { path: restore.from.target.directory!.path } },
    ...(restore.pointInTime ? { pointInTime: restore.pointInTime } : {}),
    serverId,
    accounts: ACCOUNTS.map(({ user, passwordEnv }) => ({ user, passwordEnv })),
  };
}

export const restoreAnnotation = (request: RestoreRequest) => ({
  [ANNOTATION_RESTORE]: JSON.stringify(request),
});

/** Passwords every seed step has already (src/operator/desired/shard.ts): its init file needs them. */
const SEED_PASSWORD_ENV = new Set(['MQ_ADMIN_PASSWORD', 'MQ_MONITOR_PASSWORD']);

/**
 * The seed step's extra environment on instance 0 of a cluster with spec.restore: the request
 * (from the annotation, so it is there only until the shard is bootstrapped), the passwords of
 * the new cluster's accounts the step lacks otherwise, and the S3 credentials.
 */
export function restoreEnv(cr: DefaultedCluster): Record<string, unknown>[] {
  const restore = cr.spec.restore;
  if (!restore) return [];
  const secret = names.credentials(cr.metadata.name);
  const s3Secret = restore.from.target?.s3?.credentialsSecret;
  return [
    {
      name: 'MQ_RESTORE',
      valueFrom: { fieldRef: { fieldPath: `metadata.annotations['${ANNOTATION_RESTORE}']` } },
    },
    ...ACCOUNTS.filter((a) => !SEED_PASSWORD_ENV.has(a.passwordEnv)).map((a) => ({
      name: a.passwordEnv,
      valueFrom: { secretKeyRef: { name: secret, key: a.key } },
    })),
    ...(s3Secret
      ? [
          ['AWS_ACCESS_KEY_ID', 'accessKeyId'],
          ['AWS_SECRET_ACCESS_KEY', 'secretAccessKey'],
        ].map(([name, key]) => ({
          name,
          // Optional: a Secret deleted after the restore must not keep the Pod from starting.
          valueFrom: { secretKeyRef: { name: s3Secret, key, optional: true } },
        }))
      : []),
  ];
}

const RESTORE_SOURCE_VOLUME = 'restore-source';

/**
 * The volume of a directory target that names one (`target.directory.volume`), mounted read-only
 * at its path into the restoring instance's seed step; none otherwise (S3, or a path every Pod
 * sees). Pure.
 */
export function restoreSourceVolume(
  cr: DefaultedCluster,
): { volume: Record<string, unknown>; mount: Record<string, unknown> } | undefined {
  const directory = cr.spec.restore?.from.target?.directory;
  if (!directory?.volume) return undefined;
  return {
    volume: { ...directory.volume, name: RESTORE_SOURCE_VOLUME },
    mount: { name: RESTORE_SOURCE_VOLUME, mountPath: directory.path, readOnly: true },
  };
}
