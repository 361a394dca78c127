import type mysql from 'mysql2/promise';
import { errorMessage } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import { type BinlogListing, binlogStartState, listBinlogs, purgeBinlogsTo } from '../../shard/binlogs.js';
import { type Credentials, type Endpoint, connectAdmin, endpointKey } from '../../shard/connection.js';
import type { Gtid } from '../../shard/gtid.js';
import {
  deleteThrough,
  listRetentionTopics,
  lowestRows,
  prepareRetentionSession,
  topicTableStats,
} from '../../shard/retention.js';
import { type BinlogFile, purgeTarget } from './binlog-policy.js';
import { type ClusterRetention, bytesLimitThrough, expiredThrough, topicLimits } from './policy.js';

/** How the job paces itself (the defaults are what docs/benchmarks.md measured). */
export interface RetentionPacing {
  /** Rows per DELETE transaction. */
  chunkRows: number;
  /** Pause after each DELETE, so producers' commits are not queued behind a run of deletes. */
  pauseMs: number;
  /** Longest a shard's pass deletes before it yields to the next shard (the rest waits a pass). */
  passBudgetMs: number;
}

export const DEFAULT_PACING: RetentionPacing = { chunkRows: 5000, pauseMs: 10, passBudgetMs: 20_000 };

export interface RetentionPolicy extends ClusterRetention {
  binlogMinAgeMs: number;
}

/** Where a shard's binlog archive reaches (binlog archiving on), else undefined. */
export type ArchivedPositionOf = (shard: string) => Gtid[] | undefined;

/** One instance of a shard as the job sees it. */
export interface RetentionInstance {
  name: string;
  endpoint: Endpoint | null;
  /** Its `gtid_current_pos` from this tick's probe; undefined when it did not answer. */
  position?: Gtid[];
}

export interface RetentionShard {
  shard: string;
  /** The primary when it takes writes now (deletes happen only there); else null. */
  writablePrimary: Endpoint | null;
  instances: [RetentionInstance, RetentionInstance];
}

export interface TopicReport {
  topic: string;
  rows: number;
  diskBytes: number;
  oldestAgeSeconds: number | null;
  deleted: number;
  deletedThrough: number;
}

export interface InstanceBinlogReport {
  instance: string;
  files: number;
  bytes: number;
  /** The first file kept after this pass's purge (undefined when nothing was purged). */
  purgedTo?: string;
  /** Gtid_list at the start of the oldest file left: everything before it is gone. */
  oldestStartState?: Gtid[];
  error?: string;
}

export interface ShardRetentionReport {
  shard: string;
  at: number;
  topics: TopicReport[];
  binlogs: InstanceBinlogReport[];
  /** The message retention's failure, if any (binlog failures are per instance). */
  error?: string;
  /** Deleting stopped at the pass budget: more is due next pass. */
  behind: boolean;
}

/**
 * Message retention and binlog purge for a cluster's shards, on the operator's admin connections.
 * Remembers when it first saw each binlog file closed (SQL tells a file's name and size, not its
 * age): after an operator restart every closed file counts as closed at the restart, which only
 * delays a purge, never hastens it.
 */
export class RetentionJob {
  private readonly closedAt = new Map<string, Map<string, number>>();
  private readonly startStates = new Map<string, Gtid[]>();

  constructor(
    private readonly admin: Credentials,
    private readonly log: Logger,
    private readonly pacing: RetentionPacing = DEFAULT_PACING,
  ) {}

  async run(
    shard: RetentionShard,
    policy: RetentionPolicy,
    now = Date.now(),
    archivedPosition?: Gtid[],
  ): Promise<ShardRetentionReport> {
    const report: ShardRetentionReport = {
      shard: shard.shard,
      at: now,
      topics: [],
      binlogs: [],
      behind: false,
    };
    if (shard.writablePrimary) {
      try {
        await this.deleteExpired(shard.writablePrimary, policy, report, now);
      } catch (err) {
        report.error = errorMessage(err);
        this.log.warn('retention pass failed', { shard: shard.shard, error: report.error });
      }
    }
    for (const [i, instance] of shard.instances.entries()) {
      const peer = shard.instances[1 - i];
      report.binlogs.push(await this.purgeBinlogs(instance, peer, policy, Date.now(), archivedPosition));
    }
    return report;
  }

  private async deleteExpired(
    primary: Endpoint,
    policy: RetentionPolicy,
    report: ShardRetentionReport,
    now: number,
  ): Promise<void> {
    const conn = await connectAdmin(primary, this.admin);
    try {
      if (!(await prepareRetentionSession(conn))) return;
      const deadline = Date.now() + this.pacing.passBudgetMs;
      for (const topic of await listRetentionTopics(conn)) {
        const limits = topicLimits(policy, topic.settings);
        let deletedThrough = topic.deletedThrough;
        const before = await topicTableStats(conn, topic.id, deletedThrough);
        const bytesThrough = bytesLimitThrough(before, limits.maxBytes);
        const cutoff = now - limits.maxAgeMs;
        let deleted = 0;
        while (Date.now() < deadline) {
          const rows = await lowestRows(conn, topic.id, deletedThrough, this.pacing.chunkRows);
          const through = expiredThrough(rows, cutoff, bytesThrough);
          if (through === undefined) break;
          deleted += await deleteThrough(conn, topic.id, deletedThrough, through);
          deletedThrough = through;
          await new Promise((r) => setTimeout(r, this.pacing.pauseMs));
        }
        if (Date.now() >= deadline) report.behind = true;
        const after = deleted ? await topicTableStats(conn, topic.id, deletedThrough) : before;
        report.topics.push({
          topic: topic.name,
          rows: after.rows,
          diskBytes: after.diskBytes,
          oldestAgeSeconds:
            after.oldestPublishedAt === undefined
              ? null
              : Math.max(0, (Date.now() - after.oldestPublishedAt) / 1000),
          deleted,
          deletedThrough,
        });
      }
    } finally {
      conn.destroy();
    }
  }

  private async purgeBinlogs(
    instance: RetentionInstance,
    peer: RetentionInstance,
    policy: RetentionPolicy,
    now: number,
    archivedPosition: Gtid[] | undefined,
  ): Promise<InstanceBinlogReport> {
    const report: InstanceBinlogReport = { instance: instance.name, files: 0, bytes: 0 };
    if (!instance.endpoint) return { ...report, error: 'no address' };
    const key = endpointKey(instance.endpoint);
    let conn: mysql.Connection | undefined;
    try {
      conn = await connectAdmin(instance.endpoint, this.admin);
      let listing = await listBinlogs(conn);
      const files = await this.withStartStates(conn, key, listing);
      const closed = this.noteClosed(key, listing, now);
      const target = purgeTarget({
        files,
        peerPosition: peer.position,
        closedAt: closed,
        now,
        minAgeMs: policy.binlogMinAgeMs,
        ...(archivedPosition ? { archivedPosition } : {}),
      });
      if (target) {
        await purgeBinlogsTo(conn, target);
        report.purgedTo = target;
        listing = await listBinlogs(conn);
        this.log.info('binlogs purged', { instance: instance.name, keptFrom: target });
      }
      report.files = listing.length;
      report.bytes = listing.reduce((n, f) => n + f.size, 0);
      if (listing.length) report.oldestStartState = this.startStates.get(`${key}/${listing[0].name}`);
    } catch (err) {
      report.error = errorMessage(err);
    } finally {
      conn?.destroy();
    }
    return report;
  }

  /** Gtid_list of each file, read once per file (a file's start never changes). */
  private async withStartStates(
    conn: mysql.Connection,
    key: string,
    listing: BinlogListing[],
  ): Promise<BinlogFile[]> {
    const files: BinlogFile[] = [];
    for (const f of listing) {
      const id = `${key}/${f.name}`;
      let state = this.startStates.get(id);
      if (!state) {
        state = await binlogStartState(conn, f.name);
        this.startStates.set(id, state);
      }
      files.push({ ...f, startState: state });
    }
    // Forget files that are gone (purged, or a rebuilt instance starting over).
    const names = new Set(listing.map((f) => `${key}/${f.name}`));
    for (const id of this.startStates.keys())
      if (id.startsWith(`${key}/`) && !names.has(id)) this.startStates.delete(id);
    return files;
  }

  private noteClosed(key: string, listing: BinlogListing[], now: number): Map<string, number> {
    let seen = this.closedAt.get(key);
    if (!seen) this.closedAt.set(key, (seen = new Map()));
    const closedNames = new Set(listing.slice(0, -1).map((f) => f.name));
    for (const name of closedNames) if (!seen.has(name)) seen.set(name, now);
    for (const name of seen.keys()) if (!closedNames.has(name)) seen.delete(name);
    return seen;
  }
}
