import { CLONE_PATH } from '../agent/contract.js';
import { agentGet } from '../agent/seed.js';
import { type Credentials, type Endpoint, queryRows, withAdmin } from '../shard/connection.js';
import {
  type BackupManifest,
  MANIFEST_FILE,
  STREAM_FILE,
  backupPrefix,
  backupStamp,
  listShardBackups,
  pruneShardBackups,
  readManifest,
} from './catalog.js';
import { pruneArchivedBinlogs } from './binlog-archive.js';
import type { BackupTarget } from './target.js';

export interface BackupSourceInstance {
  /** Pod name (or address) for the manifest and messages. */
  name: string;
  role: 'standby' | 'primary';
  /** `host:port` of its agent, which streams `mariadb-backup --backup` of the instance. */
  agent: string;
  /** Its MariaDB endpoint, for the GTID positions around the copy. */
  endpoint: Endpoint;
}

export interface ShardBackupOptions {
  target: BackupTarget;
  cluster: string;
  shard: string;
  source: BackupSourceInstance;
  admin: Credentials;
  agentToken: string;
  /** Finished backups of the shard to keep (older ones are deleted after a success). */
  keep: number;
  now?: Date;
  /** The agent sending nothing for this long fails the backup. */
  idleTimeoutMs?: number;
}

export interface ShardBackupResult {
  prefix: string;
  manifest: BackupManifest;
  /** Older backups deleted by retention. */
  pruned: string[];
  /** Archived binlogs deleted because every kept backup holds them. */
  prunedBinlogs: string[];
}

const currentGtid = (endpoint: Endpoint, admin: Credentials) =>
  withAdmin(endpoint, admin, async (c) =>
    String((await queryRows(c, 'SELECT @@gtid_current_pos AS gtid'))[0]?.gtid ?? ''),
  );

/**
 * A full backup of one shard: the agent's hot physical copy of `source` streamed into the target
 * (never to local disk on the way), then the manifest, then retention. A failure removes what was
 * written and rejects with the reason.
 */
export async function backupShard(options: ShardBackupOptions): Promise<ShardBackupResult> {
  const { target, cluster, shard, source } = options;
  const started = options.now ?? new Date();
  const prefix = backupPrefix(cluster, shard, backupStamp(started));
  const gtidAtStart = await currentGtid(source.endpoint, options.admin);
  let bytes: number;
  try {
    const stream = await agentGet(
      source.agent,
      CLONE_PATH,
      options.agentToken,
      options.idleTimeoutMs ?? 120_000,
    );
    bytes = await target.put(prefix + STREAM_FILE, stream);
  } catch (err) {
    await target.removeAll(prefix).catch(() => undefined);
    throw err;
  }
  const manifest: BackupManifest = {
    formatVersion: 1,
    cluster,
    shard,
    instance: source.name,
    role: source.role,
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    bytes,
    gtidAtStart,
    gtidAtEnd: await currentGtid(source.endpoint, options.admin).catch(() => ''),
  };
  await target.put(prefix + MANIFEST_FILE, JSON.stringify(manifest, null, 2) + '\n');
  const pruned = await pruneShardBackups(target, cluster, shard, options.keep);
  const oldestKept = (await listShardBackups(target, cluster, shard)).complete[0];
  const prunedBinlogs = oldestKept
    ? await pruneArchivedBinlogs(target, cluster, shard, (await readManifest(target, oldestKept)).gtidAtStart)
    : [];
  return { prefix, manifest, pruned, prunedBinlogs };
}
