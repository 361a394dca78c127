import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { BackupTargetSpec } from '../backup/target-spec.js';
import { parsePointInTime } from '../backup/point-in-time.js';
import { RESTORE_MARKER_FILE } from '../backup/restore.js';
import { SEED_INCOMPLETE_FILE } from '../shard/clone.js';

/**
 * The init step's restore (`spec.restore`): what the operator asks for, and whether the data
 * directory needs it. The work itself is `restoreShard` with adoption (src/backup/).
 */

/** The value of the `mysqlmq.io/restore` annotation. Names no secret: passwords come from env. */
export interface RestoreRequest {
  /** The source cluster and its shard of the same name as this Pod's. */
  cluster: string;
  shard: string;
  /** Where the source's backups are; S3 credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY. */
  target: BackupTargetSpec;
  /** RFC 3339; absent: the newest finished backup. */
  pointInTime?: string;
  /** server_id of this instance. */
  serverId: number;
  /** The new cluster's MariaDB accounts and the environment variable holding each one's password. */
  accounts: { user: string; passwordEnv: string }[];
}

/** The request in the annotation's text, or why it is unusable; '' (no annotation): none. Pure. */
export function parseRestoreRequest(text: string): RestoreRequest | undefined | string {
  if (!text) return undefined;
  let value: Partial<RestoreRequest>;
  try {
    value = JSON.parse(text) as Partial<RestoreRequest>;
  } catch {
    return 'the mysqlmq.io/restore annotation is not JSON';
  }
  if (
    typeof value.cluster !== 'string' ||
    typeof value.shard !== 'string' ||
    typeof value.target !== 'object' ||
    typeof value.serverId !== 'number' ||
    !Array.isArray(value.accounts)
  )
    return 'the mysqlmq.io/restore annotation lacks cluster, shard, target, serverId or accounts';
  if (value.pointInTime !== undefined) {
    const at = parsePointInTime(value.pointInTime, 'pointInTime');
    if (typeof at === 'string') return at;
  }
  return value as RestoreRequest;
}

export interface RestoreDirState {
  /** mariadbd has run on it, or a restore or seed left data in it. */
  initialised: boolean;
  /** A restore finished here (its marker is present). */
  restored: boolean;
  /** A restore or seed started and did not finish. */
  incomplete: boolean;
}

export async function restoreDirState(dataDir: string): Promise<RestoreDirState> {
  return {
    initialised: existsSync(join(dataDir, 'mysql')),
    restored: existsSync(join(dataDir, RESTORE_MARKER_FILE)),
    incomplete: existsSync(join(dataDir, SEED_INCOMPLETE_FILE)),
  };
}

/**
 * Whether to restore, and why; `fail` when the volume holds other data, which a restore would
 * destroy (a reused volume): the step fails with that message rather than choose. Pure.
 */
export function planRestore(state: RestoreDirState): { restore: boolean; fail?: boolean; reason: string } {
  if (state.incomplete) return { restore: true, reason: 'an earlier restore did not finish' };
  if (state.restored) return { restore: false, reason: 'the data directory was restored already' };
  if (!state.initialised) return { restore: true, reason: 'the data directory is empty' };
  return {
    restore: false,
    fail: true,
    reason:
      'the data directory already holds data that was not restored (a reused volume?); delete its PersistentVolumeClaim to restore into an empty one',
  };
}

/** Each account's password from the environment, or which variable is missing. Pure. */
export function accountPasswords(
  accounts: RestoreRequest['accounts'],
  env: Record<string, string | undefined>,
): { user: string; password: string }[] | string {
  const missing = accounts.filter((a) => !env[a.passwordEnv]).map((a) => a.passwordEnv);
  if (missing.length) return `the environment lacks ${missing.join(', ')}`;
  return accounts.map((a) => ({ user: a.user, password: env[a.passwordEnv]! }));
}
