import { listShardBackups, readManifest } from '../../backup/catalog.js';
import { backupForPointInTime } from '../../backup/point-in-time.js';
import type { BackupTarget } from '../../backup/target.js';
import { s3CredentialsFromSecret, targetOf } from '../../backup/target-spec.js';
import { errorMessage } from '../../common/errors.js';
import type { DefaultedCluster, RestoreStatus } from '../api/types.js';
import { names } from '../desired/index.js';

/**
 * Before a cluster with `spec.restore` creates anything: can its source be restored? The operator
 * reads the source's catalog itself, so the common mistakes (a wrong name, a shard count that
 * differs, a point before the oldest backup, an unreachable target) are a condition and an Event
 * rather than Pods failing one by one.
 */

/** The most shards a cluster may have (the CRD's maximum): how far "more shards" is counted. */
const MAX_SHARDS = 64;

/** The restore's source target; S3 credentials from the Secret it names. */
export async function restoreTargetOf(
  cr: DefaultedCluster,
  readSecret: (name: string) => Promise<Record<string, string> | undefined>,
): Promise<BackupTarget> {
  const t = cr.spec.restore!.from.target!;
  const secretName = t.s3?.credentialsSecret;
  if (!secretName) return targetOf(t);
  const data = await readSecret(secretName);
  if (!data) throw new Error(`Secret ${secretName} (the restore target's credentialsSecret) does not exist`);
  const credentials = s3CredentialsFromSecret(secretName, data);
  if (typeof credentials === 'string') throw new Error(credentials);
  return targetOf(t, credentials);
}

/** `<cluster> in <target>`: status.restore.from. */
export const restoreFromText = (cr: DefaultedCluster, target: BackupTarget) =>
  `${cr.spec.restore!.from.cluster} in ${target.description}`;

/** Why the source cannot be restored into `cr`, or undefined when every shard has a usable backup. */
export async function checkRestoreSource(
  cr: DefaultedCluster,
  target: BackupTarget,
): Promise<string | undefined> {
  const source = cr.spec.restore!.from.cluster;
  const where = `${source} in ${target.description}`;
  const point = cr.spec.restore!.pointInTime ? new Date(cr.spec.restore!.pointInTime) : undefined;
  try {
    const missing: string[] = [];
    const unusable: string[] = [];
    for (let i = 0; i < cr.spec.shards; i++) {
      const { complete } = await listShardBackups(target, source, names.shard(i));
      if (!complete.length) {
        missing.push(names.shard(i));
        continue;
      }
      if (!point) continue;
      const backups = [];
      for (const prefix of complete) backups.push({ prefix, manifest: await readManifest(target, prefix) });
      const chosen = backupForPointInTime(backups, point);
      if (typeof chosen === 'string') unusable.push(`${names.shard(i)}: ${chosen}`);
    }
    if (missing.length === cr.spec.shards)
      return `no finished backup of ${where}: check spec.restore.from (cluster name and target)`;
    let sourceShards = cr.spec.shards - missing.length;
    if (!missing.length)
      while (
        sourceShards < MAX_SHARDS &&
        (await listShardBackups(target, source, names.shard(sourceShards))).complete.length
      )
        sourceShards++;
    if (missing.length || sourceShards !== cr.spec.shards)
      return `${where} has backups of ${missing.length ? `only some of its shards (none of ${missing.join(', ')})` : `${sourceShards} shards`}, this cluster has spec.shards ${cr.spec.shards}: a restore needs the same number of shards, each with a backup`;
    if (unusable.length) return `cannot restore ${where} to ${point!.toISOString()}: ${unusable.join('; ')}`;
    return undefined;
  } catch (err) {
    return `cannot read the backups of ${where}: ${errorMessage(err)}`;
  }
}

/**
 * A spec.restore that differs from the one the cluster was created with (status.restore), or one
 * added to a cluster that already holds data: refused, since a restore happens only into a new
 * cluster (Kubernetes 1.20 has no CEL rule to make the field immutable). Pure.
 */
export function restoreSpecChange(
  cr: DefaultedCluster,
  from: string | undefined,
  previous: RestoreStatus | undefined,
  holdsData: boolean,
): string | undefined {
  const restore = cr.spec.restore;
  if (!previous) {
    return restore && holdsData
      ? 'spec.restore was added to a cluster that already holds data: a restore only fills a new cluster; remove spec.restore, or create a new cluster with it'
      : undefined;
  }
  const was = `from ${previous.from}${previous.pointInTime ? ` to ${previous.pointInTime}` : ''}`;
  if (!restore)
    return previous.completedTime
      ? undefined
      : `spec.restore cannot be removed while the restore runs (${was}); put it back`;
  if (
    (from !== undefined && from !== previous.from) ||
    (restore.pointInTime ?? '') !== (previous.pointInTime ?? '')
  )
    return `spec.restore cannot change after the cluster was created (it was restored ${was}); put it back`;
  return undefined;
}
