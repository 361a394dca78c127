import type { TopicSettings } from '../../api/topic-settings.js';

/**
 * Which messages retention deletes, as pure functions. Retention always deletes a prefix of a
 * shard's part of a topic (the lowest ids first, never a message past one it keeps), so "every id
 * up to `deleted_through` is gone" stays true and a group's missed count is one subtraction.
 */

export const HOUR_MS = 3_600_000;

/** The cluster's retention (spec.retention after defaults), in the units the job works in. */
export interface ClusterRetention {
  maxAgeMs: number;
  maxBytesPerShard?: number;
}

/** What applies to one topic: its own settings over the cluster's. */
export interface TopicLimits {
  maxAgeMs: number;
  maxBytes?: number;
}

export function topicLimits(cluster: ClusterRetention, settings: TopicSettings): TopicLimits {
  const maxBytes = settings.retentionMaxBytesPerShard ?? cluster.maxBytesPerShard;
  return {
    maxAgeMs: settings.retentionMaxAgeHours ? settings.retentionMaxAgeHours * HOUR_MS : cluster.maxAgeMs,
    ...(maxBytes ? { maxBytes } : {}),
  };
}

/** The ids a shard's part of a topic holds, and how large its newest messages are. */
export interface TopicExtent {
  lowestId: number;
  highestId: number;
  /** Average payload bytes of the newest messages (a sample). */
  averagePayloadBytes: number;
}

/**
 * The highest id to delete so that what is left fits `maxBytes` of payload, estimated as rows
 * times the newest messages' average size (ids are dense: gaps are rare rolled-back INSERTs, and
 * retention deletes prefixes). 0 when everything fits. Counting payload bytes rather than the
 * table's size on disk is deliberate: InnoDB keeps the pages it freed for new rows, so the file
 * never shrinks and a limit on it could never be met.
 */
export function bytesLimitThrough(extent: TopicExtent, maxBytes: number | undefined): number {
  if (!maxBytes || extent.highestId < extent.lowestId || extent.averagePayloadBytes <= 0) return 0;
  const keep = Math.floor(maxBytes / extent.averagePayloadBytes);
  const rows = extent.highestId - extent.lowestId + 1;
  if (rows <= keep) return 0;
  return extent.highestId - keep;
}

export interface IdRow {
  id: number;
  publishedAt: number;
}

/**
 * The last id of the leading rows that are expired: published before `cutoffMs`, or at most
 * `bytesThrough` (the size limit). Undefined when the first row is kept. `rows` are the lowest ids
 * of the table, ascending.
 */
export function expiredThrough(
  rows: readonly IdRow[],
  cutoffMs: number,
  bytesThrough: number,
): number | undefined {
  let last: number | undefined;
  for (const row of rows) {
    if (row.publishedAt >= cutoffMs && row.id > bytesThrough) break;
    last = row.id;
  }
  return last;
}
