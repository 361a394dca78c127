import { randomBytes } from 'node:crypto';
import { ADMIN_USER, MONITOR_USER } from '../../shard/accounts.js';
import { type ShardSecrets, withClientTls } from '../../shard/bootstrap.js';
import type { ClientTls } from '../../shard/connection.js';
import { COMPONENT_CREDENTIALS, type DefaultedCluster } from '../api/types.js';
import { type DesiredObject, names, objectMeta } from './meta.js';

/** Keys of the cluster's credentials Secret `NAME-credentials`. */
export const SECRET_KEYS = [
  'admin-password',
  'replication-password',
  'broker-password',
  'admin-token',
  'monitor-password',
  'root-password',
] as const;
export type SecretKey = (typeof SECRET_KEYS)[number];
/**
 * Keys later versions added: a Secret written by an older operator gets them generated and
 * patched in. The others are never generated again (databases were initialised with them).
 */
export const ADDED_SECRET_KEYS: readonly SecretKey[] = ['monitor-password', 'root-password'];
/** The cluster's generated secrets, by Secret key. Never logged, never in status or ConfigMaps. */
export type Credentials = Record<SecretKey, string>;

/**
 * MariaDB users (docs/security.md, "MariaDB accounts"): the operator's and agents' admin
 * (`admin-password`), replication, the brokers', the probes' and exporter's monitor. The image's
 * root exists on localhost only (`root-password`, used by nobody but a person with `kubectl exec`).
 */
export const MYSQL_ADMIN_USER = ADMIN_USER;
export const REPLICATION_USER = 'mq_repl';
export const BROKER_USER = 'mq_broker';
export { MONITOR_USER };

/**
 * Fresh random credentials (32 URL-safe characters each, 192 bits). Not pure: the caller does
 * this once, when the Secret does not exist yet, and never again (a second set would lock the
 * operator out of databases initialised with the first).
 */
export function generateCredentials(
  random: (bytes: number) => string = (n) => randomBytes(n).toString('base64url'),
): Credentials {
  return Object.fromEntries(SECRET_KEYS.map((k) => [k, random(24)])) as Credentials;
}

/** The Secret `NAME-credentials` holding `creds` (base64 `data`, so server-side apply compares it). */
export function credentialsSecret(cr: DefaultedCluster, creds: Credentials): DesiredObject {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: objectMeta(cr, names.credentials(cr.metadata.name), COMPONENT_CREDENTIALS),
    type: 'Opaque',
    data: Object.fromEntries(SECRET_KEYS.map((k) => [k, Buffer.from(creds[k], 'utf8').toString('base64')])),
  };
}

/**
 * The `data` to merge into an existing Secret that lacks only keys of `ADDED_SECRET_KEYS` (base64,
 * freshly generated); undefined when nothing is missing, or when an original key is missing (that
 * Secret cannot be repaired: its passwords are in the databases).
 */
export function missingAddedKeys(
  data: Record<string, string> | undefined,
  random: (bytes: number) => string = (n) => randomBytes(n).toString('base64url'),
): Record<string, string> | undefined {
  const missing = SECRET_KEYS.filter((k) => !data?.[k]);
  if (!missing.length || missing.some((k) => !ADDED_SECRET_KEYS.includes(k))) return undefined;
  return Object.fromEntries(missing.map((k) => [k, Buffer.from(random(24), 'utf8').toString('base64')]));
}

/** The credentials in an existing Secret's `data`; undefined when any key is missing or empty. */
export function credentialsFromSecret(data: Record<string, string> | undefined): Credentials | undefined {
  if (!data) return undefined;
  const entries = SECRET_KEYS.map((k) => [k, data[k] ? Buffer.from(data[k], 'base64').toString('utf8') : '']);
  if (entries.some(([, v]) => !v)) return undefined;
  return Object.fromEntries(entries) as Credentials;
}

/**
 * What the shard bootstrap (src/shard/bootstrap.ts) needs. `tls`, when the instances require it
 * (`spec.mysql.tls`): every connection the operator opens verifies them, and so do replicas.
 */
export function shardSecrets(creds: Credentials, tls?: ClientTls): ShardSecrets {
  const plain: ShardSecrets = {
    admin: { user: MYSQL_ADMIN_USER, password: creds['admin-password'] },
    replication: { user: REPLICATION_USER, password: creds['replication-password'] },
    broker: { user: BROKER_USER, password: creds['broker-password'] },
    monitor: { user: MONITOR_USER, password: creds['monitor-password'] },
  };
  return tls ? withClientTls(plain, tls) : plain;
}
