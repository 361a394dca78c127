import type { BackupTarget } from './target.js';

/**
 * The layout of backups in a target and which ones to keep. A backup of a shard is the key prefix
 * `<cluster>/<shard>/<stamp>/` with `backup.xbstream` (mariadb-backup's stream) and
 * `manifest.json`, written last: a prefix without a manifest is a backup that did not finish.
 */
export const STREAM_FILE = 'backup.xbstream';
export const MANIFEST_FILE = 'manifest.json';
/** `<cluster>/<shard>/binlogs/`: archived binlogs (binlog-archive.ts), not a backup. */
export const BINLOG_DIR = 'binlogs';

export interface BackupManifest {
  formatVersion: 1;
  cluster: string;
  shard: string;
  /** The pod (or address) the copy was taken from, and its role then. */
  instance: string;
  role: 'standby' | 'primary';
  startedAt: string;
  finishedAt: string;
  /** Bytes of `backup.xbstream`. */
  bytes: number;
  /**
   * The source's `gtid_current_pos` before the copy started: every transaction in it (everything
   * acknowledged by then) is in the backup. The copy is consistent at one point between this and
   * `gtidAtEnd`.
   */
  gtidAtStart: string;
  gtidAtEnd: string;
}

/** `2026-01-05T08:12:03.123Z` -> `20260105T081203Z`: sortable, and valid in every target. Pure. */
export function backupStamp(at: Date): string {
  return at
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

export const shardPrefix = (cluster: string, shard: string) => `${cluster}/${shard}/`;
export const backupPrefix = (cluster: string, shard: string, stamp: string) =>
  `${shardPrefix(cluster, shard)}${stamp}/`;

export interface ShardBackups {
  /** Finished backups' prefixes, oldest first. */
  complete: string[];
  /** Prefixes without a manifest (a backup running now, or one that failed), oldest first. */
  incomplete: string[];
}

/** Groups a shard's keys into backups. Pure. */
export function groupBackups(keys: string[], shardKeyPrefix: string): ShardBackups {
  const byPrefix = new Map<string, Set<string>>();
  for (const key of keys) {
    if (!key.startsWith(shardKeyPrefix)) continue;
    const [stamp, file] = key.slice(shardKeyPrefix.length).split('/');
    if (!stamp || !file || stamp === BINLOG_DIR) continue;
    const prefix = `${shardKeyPrefix}${stamp}/`;
    byPrefix.set(prefix, (byPrefix.get(prefix) ?? new Set()).add(file));
  }
  const sorted = [...byPrefix.keys()].sort();
  return {
    complete: sorted.filter((p) => byPrefix.get(p)!.has(MANIFEST_FILE)),
    incomplete: sorted.filter((p) => !byPrefix.get(p)!.has(MANIFEST_FILE)),
  };
}

/**
 * What retention deletes: finished backups beyond the newest `keep`, and unfinished ones older than
 * the newest finished one (left by a failed run; a newer one may be running now). Pure.
 */
export function backupsToPrune(backups: ShardBackups, keep: number): string[] {
  const newest = backups.complete.at(-1);
  return [
    ...backups.complete.slice(0, Math.max(0, backups.complete.length - Math.max(1, keep))),
    ...(newest ? backups.incomplete.filter((p) => p < newest) : []),
  ];
}

export async function listShardBackups(
  target: BackupTarget,
  cluster: string,
  shard: string,
): Promise<ShardBackups> {
  const prefix = shardPrefix(cluster, shard);
  return groupBackups(await target.list(prefix), prefix);
}

export async function readManifest(target: BackupTarget, prefix: string): Promise<BackupManifest> {
  let text = '';
  for await (const chunk of await target.get(prefix + MANIFEST_FILE)) text += (chunk as Buffer).toString();
  return JSON.parse(text) as BackupManifest;
}

/** Deletes what `backupsToPrune` picks; returns the prefixes deleted. */
export async function pruneShardBackups(
  target: BackupTarget,
  cluster: string,
  shard: string,
  keep: number,
): Promise<string[]> {
  const doomed = backupsToPrune(await listShardBackups(target, cluster, shard), keep);
  for (const prefix of doomed) await target.removeAll(prefix);
  return doomed;
}
