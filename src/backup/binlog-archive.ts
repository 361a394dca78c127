import { Transform, type TransformCallback } from 'node:stream';
import { BINLOG_PATH } from '../agent/contract.js';
import { agentGet } from '../agent/seed.js';
import { binlogStartState, flushBinlogs, listBinlogs } from '../shard/binlogs.js';
import { type Credentials, type Endpoint, connectAdmin, queryRows } from '../shard/connection.js';
import { type Gtid, parseGtidList } from '../shard/gtid.js';
import { BINLOG_DIR, shardPrefix } from './catalog.js';
import type { BackupTarget } from './target.js';

/**
 * Archived binary logs of a shard, for point-in-time restore: each closed binlog file of the
 * shard's primary is copied to `<cluster>/<shard>/binlogs/<stamp-ms>-<file>.binlog` with a `.json`
 * sidecar written last, so a reader trusts only complete pairs. The stamp (archive time in ms) keeps
 * files of different servers apart: after a failover the new primary's files reuse the same names.
 */
const BINLOG_SUFFIX = '.binlog';
const SIDECAR_SUFFIX = '.json';

export interface ArchivedBinlog {
  formatVersion: 1;
  cluster: string;
  shard: string;
  /** The pod (or address) whose binlog this is. */
  server: string;
  file: string;
  bytes: number;
  /** The Gtid_list at the file's start: the last GTID per domain and server written before it. */
  gtidStart: string;
  /** The Gtid_list at the start of the next file: everything in this file is covered by it. */
  gtidEnd: string;
  /** Timestamps of the file's first and last events (second resolution, as the binlog has them). */
  firstEventTime: string;
  lastEventTime: string;
  archivedAt: string;
}

/** An archived binlog and its key (the `.binlog` object; the sidecar is the same with `.json`). */
export interface ArchivedBinlogEntry {
  key: string;
  binlog: ArchivedBinlog;
}

export const binlogArchivePrefix = (cluster: string, shard: string) =>
  `${shardPrefix(cluster, shard)}${BINLOG_DIR}/`;

export function binlogKey(cluster: string, shard: string, at: Date, file: string): string {
  return `${binlogArchivePrefix(cluster, shard)}${String(at.getTime()).padStart(13, '0')}-${file}${BINLOG_SUFFIX}`;
}

export const sidecarKey = (key: string) => key.slice(0, -BINLOG_SUFFIX.length) + SIDECAR_SUFFIX;

/** The `.binlog` keys that have a sidecar, oldest archive first. Pure. */
export function completeBinlogKeys(keys: readonly string[]): string[] {
  const all = new Set(keys);
  return keys.filter((k) => k.endsWith(BINLOG_SUFFIX) && all.has(sidecarKey(k))).sort();
}

/** A closed binlog file of the primary, with the Gtid_lists around it. */
export interface ClosedBinlog {
  file: string;
  gtidStart: string;
  gtidEnd: string;
}

/**
 * The closed files of `server` that are not archived yet. A file is the same file when server,
 * name and start agree: a rebuilt instance starts its binlog numbering over with other content.
 * Pure.
 */
export function binlogsToArchive(
  closed: readonly ClosedBinlog[],
  archived: readonly ArchivedBinlog[],
  server: string,
): ClosedBinlog[] {
  const done = new Set(archived.filter((a) => a.server === server).map((a) => `${a.file}\n${a.gtidStart}`));
  return closed.filter((c) => !done.has(`${c.file}\n${c.gtidStart}`));
}

/** `0-1-5,1-2-7`; empty for none (what `parseGtidList` reads back). Pure. */
export const gtidText = (list: readonly Gtid[]) =>
  list.map((g) => `${g.domain}-${g.server}-${g.seq}`).join(',');

/** One GTID per domain, the highest sequence number: a position built from a Gtid_list. Pure. */
export function positionOf(list: readonly Gtid[]): Gtid[] {
  const byDomain = new Map<number, Gtid>();
  for (const g of list) {
    const seen = byDomain.get(g.domain);
    if (!seen || g.seq > seen.seq) byDomain.set(g.domain, g);
  }
  return [...byDomain.values()].sort((a, b) => a.domain - b.domain);
}

/** True when `position` has every transaction of `state` (strict mode: seq grows per domain). Pure. */
export function gtidCovers(position: readonly Gtid[], state: readonly Gtid[]): boolean {
  return state.every((s) => {
    if (s.seq === 0) return true;
    const p = position.find((g) => g.domain === s.domain);
    return p !== undefined && p.seq >= s.seq;
  });
}

/**
 * Where the archive reaches: the highest end of any archived file, one GTID per domain. Every
 * transaction up to it is in the archive when the archive is contiguous, which archiving each
 * closed file before it may be purged ensures. Pure.
 */
export function archivedPosition(archived: readonly ArchivedBinlog[]): Gtid[] {
  return positionOf(archived.flatMap((a) => parseGtidList(a.gtidEnd)));
}

/**
 * Archived binlogs every kept full backup already holds: their last transaction is covered by the
 * oldest kept backup's `gtidAtStart`, so no restore from a kept backup replays them. Pure.
 */
export function archivedBinlogsToPrune(
  archived: readonly ArchivedBinlogEntry[],
  oldestKeptBackupGtid: string | undefined,
): string[] {
  if (oldestKeptBackupGtid === undefined) return [];
  const kept = parseGtidList(oldestKeptBackupGtid);
  return archived.filter((a) => gtidCovers(kept, parseGtidList(a.binlog.gtidEnd))).map((a) => a.key);
}

/**
 * Passes a binlog file through unchanged and notes the first and last event timestamps: each event
 * starts with a 19-byte header whose first 4 bytes are its time (seconds, little-endian) and bytes
 * 9-12 its size, after the file's 4-byte magic.
 */
export class BinlogEventClock extends Transform {
  first?: number;
  last?: number;
  private offset = 0;
  private next = 4;
  private header = Buffer.alloc(0);

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    let p = 0;
    while (p < chunk.length) {
      const at = this.offset + p;
      if (at < this.next) {
        p += Math.min(chunk.length - p, this.next - at);
        continue;
      }
      const take = chunk.subarray(p, p + 13 - this.header.length);
      this.header = Buffer.concat([this.header, take]);
      p += take.length;
      if (this.header.length < 13) break;
      const time = this.header.readUInt32LE(0);
      const size = this.header.readUInt32LE(9);
      this.header = Buffer.alloc(0);
      if (size < 19)
        return callback(new Error(`binlog event at byte ${this.next} has size ${size}: not a binlog file`));
      if (time > 0) {
        this.first ??= time;
        this.last = time;
      }
      this.next += size;
    }
    this.offset += chunk.length;
    callback(null, chunk);
  }
}

export async function listArchivedBinlogs(
  target: BackupTarget,
  cluster: string,
  shard: string,
  cache?: Map<string, ArchivedBinlog>,
): Promise<ArchivedBinlogEntry[]> {
  const keys = completeBinlogKeys(await target.list(binlogArchivePrefix(cluster, shard)));
  const entries: ArchivedBinlogEntry[] = [];
  for (const key of keys) {
    let binlog = cache?.get(key);
    if (!binlog) {
      let text = '';
      for await (const chunk of await target.get(sidecarKey(key))) text += (chunk as Buffer).toString();
      binlog = JSON.parse(text) as ArchivedBinlog;
      cache?.set(key, binlog);
    }
    entries.push({ key, binlog });
  }
  return entries;
}

export interface ArchiveSource {
  /** Pod name (or address) of the shard's primary. */
  name: string;
  /** `host:port` of its agent, which streams its binlog files. */
  agent: string;
  endpoint: Endpoint;
}

export interface ArchiveOptions {
  target: BackupTarget;
  cluster: string;
  shard: string;
  source: ArchiveSource;
  admin: Credentials;
  agentToken: string;
  /** Sidecars already read, by key (kept across runs by the caller). */
  cache?: Map<string, ArchivedBinlog>;
  idleTimeoutMs?: number;
}

export interface ArchiveResult {
  archived: ArchivedBinlog[];
  /** Where the archive now reaches (one GTID per domain). */
  position: Gtid[];
}

/**
 * One archive run for a shard: closes the primary's current binlog when it holds a transaction
 * (FLUSH BINARY LOGS), then copies every closed file not archived yet, oldest first, through the
 * primary's agent into the target, each followed by its sidecar.
 */
export async function archiveShardBinlogs(options: ArchiveOptions): Promise<ArchiveResult> {
  const { target, cluster, shard, source } = options;
  const closed: ClosedBinlog[] = [];
  const conn = await connectAdmin(source.endpoint, options.admin);
  try {
    let listing = await listBinlogs(conn);
    if (!listing.length) throw new Error(`${source.name} writes no binary log`);
    const current = listing.at(-1)!;
    const binlogPos = parseGtidList(
      String((await queryRows(conn, 'SELECT @@gtid_binlog_pos AS pos'))[0]?.pos ?? ''),
    );
    // An idle primary gets no new, empty file every interval.
    if (!gtidCovers(await binlogStartState(conn, current.name), binlogPos)) {
      await flushBinlogs(conn);
      listing = await listBinlogs(conn);
    }
    const starts = new Map<string, string>();
    for (const f of listing) starts.set(f.name, gtidText(await binlogStartState(conn, f.name)));
    for (let k = 0; k + 1 < listing.length; k++)
      closed.push({
        file: listing[k]!.name,
        gtidStart: starts.get(listing[k]!.name)!,
        gtidEnd: starts.get(listing[k + 1]!.name)!,
      });
  } finally {
    conn.destroy();
  }
  const known = await listArchivedBinlogs(target, cluster, shard, options.cache);
  const all = known.map((e) => e.binlog);
  const archived: ArchivedBinlog[] = [];
  for (const file of binlogsToArchive(closed, all, source.name)) {
    const key = binlogKey(cluster, shard, new Date(), file.file);
    const query = new URLSearchParams({ file: file.file });
    const clock = new BinlogEventClock();
    let bytes: number;
    try {
      const stream = await agentGet(
        source.agent,
        `${BINLOG_PATH}?${query}`,
        options.agentToken,
        options.idleTimeoutMs ?? 60_000,
      );
      stream.on('error', (err) => clock.destroy(err));
      bytes = await target.put(key, stream.pipe(clock));
    } catch (err) {
      await target.removeAll(key).catch(() => undefined);
      throw new Error(`archiving ${file.file} of ${source.name}: ${(err as Error).message}`);
    }
    if (clock.first === undefined || clock.last === undefined)
      throw new Error(`archiving ${file.file} of ${source.name}: the file holds no event`);
    const binlog: ArchivedBinlog = {
      formatVersion: 1,
      cluster,
      shard,
      server: source.name,
      file: file.file,
      bytes,
      gtidStart: file.gtidStart,
      gtidEnd: file.gtidEnd,
      firstEventTime: new Date(clock.first * 1000).toISOString(),
      lastEventTime: new Date(clock.last * 1000).toISOString(),
      archivedAt: new Date().toISOString(),
    };
    await target.put(sidecarKey(key), JSON.stringify(binlog, null, 2) + '\n');
    options.cache?.set(key, binlog);
    archived.push(binlog);
    all.push(binlog);
  }
  return { archived, position: archivedPosition(all) };
}

/** Deletes archived binlogs that every kept full backup already holds; returns their keys. */
export async function pruneArchivedBinlogs(
  target: BackupTarget,
  cluster: string,
  shard: string,
  oldestKeptBackupGtid: string | undefined,
): Promise<string[]> {
  const doomed = archivedBinlogsToPrune(
    await listArchivedBinlogs(target, cluster, shard),
    oldestKeptBackupGtid,
  );
  // The sidecar goes first: a reader never trusts a binlog without one.
  for (const key of doomed) {
    await target.removeAll(sidecarKey(key));
    await target.removeAll(key);
  }
  return doomed;
}
