import { type Gtid, describeGtidList } from '../../shard/gtid.js';
import type { ReplicaStatus } from '../../shard/probe.js';

/**
 * When a binary log may be purged, and whether a standby needs one that is gone. Pure.
 *
 * Each binlog file starts with a Gtid_list event: the last GTID of every domain and server written
 * before it. Everything in the files before file F is therefore covered by F's list, and
 * `PURGE BINARY LOGS TO 'F'` is safe for a reader whose position covers that list.
 */

export interface BinlogFile {
  name: string;
  size: number;
  /** The Gtid_list at the start of the file (undefined until read). */
  startState?: Gtid[];
}

/** True when `position` (a GTID position, one entry per domain) has every transaction of `state`. */
export function covers(position: readonly Gtid[], state: readonly Gtid[]): boolean {
  // In strict mode sequence numbers grow within a domain whichever server wrote them, so the
  // position's one GTID per domain must be at least the highest sequence number the state lists.
  return state.every((s) => {
    if (s.seq === 0) return true;
    const p = position.find((g) => g.domain === s.domain);
    return p !== undefined && p.seq >= s.seq;
  });
}

export interface PurgeInput {
  /** The instance's binlog files, oldest first; the last one is being written. */
  files: readonly BinlogFile[];
  /** The other instance's GTID position (`gtid_current_pos`); undefined when it could not be read. */
  peerPosition: readonly Gtid[] | undefined;
  /** When each closed file was first seen closed (ms); a file missing here is not purged. */
  closedAt: ReadonlyMap<string, number>;
  now: number;
  minAgeMs: number;
  /**
   * With binlog archiving on: where the shard's archive reaches (empty before its first run). A
   * file goes only once every transaction in it is archived, on either instance (the standby's
   * files hold the same transactions as the primary's). Undefined: archiving is off.
   */
  archivedPosition?: readonly Gtid[];
}

/**
 * The file to pass to `PURGE BINARY LOGS TO`, which deletes every file before it, or undefined
 * when nothing may go. A file goes only when it was closed at least `minAgeMs` ago and the other
 * instance of the shard already has every transaction in it: the standby must be able to resume
 * from its position, and a former primary rejoining its successor too. Without the other
 * instance's position nothing is purged. With archiving on, a file not yet archived stays too, or
 * a point-in-time restore would find a gap.
 */
export function purgeTarget(input: PurgeInput): string | undefined {
  const { files, peerPosition, closedAt, now, minAgeMs, archivedPosition } = input;
  if (!peerPosition) return undefined;
  let target: string | undefined;
  for (let k = 1; k < files.length; k++) {
    const closed = closedAt.get(files[k - 1].name);
    const state = files[k].startState;
    if (closed === undefined || now - closed < minAgeMs || !state || !covers(peerPosition, state)) break;
    if (archivedPosition && !covers(archivedPosition, state)) break;
    target = files[k].name;
  }
  return target;
}

/**
 * Why a standby cannot follow its primary because binlogs it needs were purged, or undefined. Two
 * signs: its replication stopped with MariaDB's error 1236 (the primary no longer has the GTIDs it
 * asks for), or its position does not cover the Gtid_list at the start of the primary's oldest
 * binlog (what was purged), so it would fail that way as soon as it connects.
 */
export function standbyBehindPurge(
  primaryPurgedState: readonly Gtid[] | undefined,
  standbyPosition: readonly Gtid[] | undefined,
  standbyReplica: ReplicaStatus | undefined,
): string | undefined {
  const error = standbyReplica?.lastError ?? '';
  if (/\b1236\b/.test(error) || /could not find GTID state/i.test(error)) {
    return `its replication stopped because the primary no longer has the binlogs it needs (${error.slice(0, 300)})`;
  }
  if (primaryPurgedState && standbyPosition && !covers(standbyPosition, primaryPurgedState)) {
    return `it has applied up to ${describeGtidList([...standbyPosition])}, but the primary's binlogs start after ${describeGtidList([...primaryPurgedState])}`;
  }
  return undefined;
}
