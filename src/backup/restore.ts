import { mkdir, writeFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { SEED_INCOMPLETE_FILE, extractAndPrepare, rollBackPreparedTransactions } from '../shard/clone.js';
import { tmpdir } from 'node:os';
import { type AdoptOptions, adoptRestoredData } from './adopt.js';
import { type BackupManifest, STREAM_FILE, listShardBackups, readManifest } from './catalog.js';
import { type ReplayResult, backupForPointInTime, replayToPointInTime } from './point-in-time.js';
import type { BackupTarget } from './target.js';

/** Written last into a restored data directory: which backup it holds. */
export const RESTORE_MARKER_FILE = '.mysqlmq-restore.json';

export interface RestoreOptions {
  target: BackupTarget;
  cluster: string;
  shard: string;
  /** The backup's stamp (`20260105T081203Z`); omitted: the newest finished backup. */
  stamp?: string;
  /**
   * Restore the state at this time instead: the newest backup finished before it, then the
   * archived binlogs replayed up to it (docs/backup.md, "Point-in-time restore").
   */
  pointInTime?: Date;
  /** Replaced by the backup; mariadbd must not be running on it. */
  dataDir: string;
  /** Scratch space outside the data directory (a point-in-time restore's server socket, binlogs). */
  workDir?: string;
  prepareMemory?: string;
  /**
   * Make the data a new cluster's first primary (`spec.restore`): its passwords, a fresh
   * replication history (adopt.ts). Without it the data stays as the source left it.
   */
  adopt?: Omit<AdoptOptions, 'restoredFrom'>;
}

export interface RestoreResult {
  manifest: BackupManifest;
  /** With `pointInTime`: where the replay started and the archived binlogs it read. */
  replay?: ReplayResult;
}

/** The prefix of the backup to restore: the given stamp if it finished, else the newest one. */
export async function chooseBackup(
  target: BackupTarget,
  cluster: string,
  shard: string,
  stamp?: string,
): Promise<string> {
  const { complete } = await listShardBackups(target, cluster, shard);
  const where = `${target.description} for ${cluster}/${shard}`;
  if (!stamp) {
    const newest = complete.at(-1);
    if (!newest) throw new Error(`no finished backup in ${where}`);
    return newest;
  }
  const found = complete.find((p) => p.endsWith(`/${stamp}/`));
  if (!found)
    throw new Error(
      `no finished backup ${stamp} in ${where} (there are: ${complete.map((p) => p.split('/').at(-2)).join(', ') || 'none'})`,
    );
  return found;
}

/** The newest finished backup of the shard that finished at or before `point`. */
async function chooseBackupBefore(options: RestoreOptions, point: Date): Promise<string> {
  const { complete } = await listShardBackups(options.target, options.cluster, options.shard);
  const backups = [];
  for (const prefix of complete)
    backups.push({ prefix, manifest: await readManifest(options.target, prefix) });
  const chosen = backupForPointInTime(backups, point);
  if (typeof chosen === 'string')
    throw new Error(`${chosen} in ${options.target.description} for ${options.cluster}/${options.shard}`);
  return chosen.prefix;
}

/**
 * Fills `dataDir` with a shard's backup, ready for mariadbd to start on: the stream is read from the
 * target straight into `mbstream -x`, then `mariadb-backup --prepare` applies its redo log.
 * The restored server holds every message committed before the backup's `gtidAtStart`; with
 * `pointInTime`, every transaction begun before that second and none after.
 */
export async function restoreShard(options: RestoreOptions): Promise<RestoreResult> {
  const prefix = options.pointInTime
    ? await chooseBackupBefore(options, options.pointInTime)
    : await chooseBackup(options.target, options.cluster, options.shard, options.stamp);
  const manifest = await readManifest(options.target, prefix);
  const stream = await options.target.get(prefix + STREAM_FILE);
  await extractAndPrepare(stream, options.dataDir, {
    id: `restore ${prefix}`,
    source: `${options.target.description} ${prefix}`,
    prepareMemory: options.prepareMemory,
  });
  const workDir = options.workDir ?? join(tmpdir(), 'mq-agent-restore');
  await mkdir(workDir, { recursive: true, mode: 0o700 });
  await rollBackPreparedTransactions(options.dataDir, workDir);
  // The partial-copy marker stays until the replay is done: a half-replayed copy is never started.
  const replay = options.pointInTime
    ? await replayToPointInTime({
        target: options.target,
        cluster: options.cluster,
        shard: options.shard,
        manifest,
        point: options.pointInTime,
        dataDir: options.dataDir,
        workDir,
      })
    : undefined;
  if (options.adopt)
    await adoptRestoredData(options.dataDir, workDir, {
      ...options.adopt,
      restoredFrom: `${options.target.description} ${prefix}${options.pointInTime ? ` to ${options.pointInTime.toISOString()}` : ''}`,
    });
  await writeFile(
    join(options.dataDir, RESTORE_MARKER_FILE),
    JSON.stringify({
      backup: prefix,
      restoredAt: new Date().toISOString(),
      manifest,
      ...(options.pointInTime ? { pointInTime: options.pointInTime.toISOString(), replay } : {}),
    }) + '\n',
  );
  await rm(join(options.dataDir, SEED_INCOMPLETE_FILE));
  return { manifest, ...(replay ? { replay } : {}) };
}
