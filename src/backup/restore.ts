import { writeFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { SEED_INCOMPLETE_FILE, extractAndPrepare } from '../shard/clone.js';
import { type BackupManifest, STREAM_FILE, listShardBackups, readManifest } from './catalog.js';
import type { BackupTarget } from './target.js';

/** Written last into a restored data directory: which backup it holds. */
export const RESTORE_MARKER_FILE = '.mysqlmq-restore.json';

export interface RestoreOptions {
  target: BackupTarget;
  cluster: string;
  shard: string;
  /** The backup's stamp (`20260105T081203Z`); omitted: the newest finished backup. */
  stamp?: string;
  /** Replaced by the backup; mariadbd must not be running on it. */
  dataDir: string;
  prepareMemory?: string;
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

/**
 * Fills `dataDir` with a shard's backup, ready for mariadbd to start on: the stream is read from the
 * target straight into `mbstream -x`, then `mariadb-backup --prepare` applies its redo log.
 * The restored server holds every message committed before the backup's `gtidAtStart`.
 */
export async function restoreShard(options: RestoreOptions): Promise<BackupManifest> {
  const prefix = await chooseBackup(options.target, options.cluster, options.shard, options.stamp);
  const manifest = await readManifest(options.target, prefix);
  const stream = await options.target.get(prefix + STREAM_FILE);
  await extractAndPrepare(stream, options.dataDir, {
    id: `restore ${prefix}`,
    source: `${options.target.description} ${prefix}`,
    prepareMemory: options.prepareMemory,
  });
  await writeFile(
    join(options.dataDir, RESTORE_MARKER_FILE),
    JSON.stringify({ backup: prefix, restoredAt: new Date().toISOString(), manifest }) + '\n',
  );
  await rm(join(options.dataDir, SEED_INCOMPLETE_FILE));
  return manifest;
}
