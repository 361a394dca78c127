import type mysql from 'mysql2/promise';
import { type TopicSettings, parseTopicSettings } from '../api/topic-settings.js';
import { queryRows } from './connection.js';
import { QUEUE_DATABASE, messageTable } from './schema.js';

/**
 * The SQL of message retention, run by the operator on a shard's primary over an admin connection.
 * Deciding what to delete is src/operator/retention/policy.ts; this only reads and deletes.
 */

export interface RetentionTopic {
  id: number;
  name: string;
  settings: TopicSettings;
  deletedThrough: number;
}

export async function listRetentionTopics(conn: mysql.Connection): Promise<RetentionTopic[]> {
  const rows = await queryRows(
    conn,
    `SELECT id, name, settings, deleted_through FROM ${QUEUE_DATABASE}.topics`,
  );
  return rows.map((r) => ({
    id: Number(r.id),
    name: String(r.name),
    settings: parseTopicSettings(r.settings as string | null),
    deletedThrough: Number(r.deleted_through),
  }));
}

export interface TopicTableStats {
  /** 0 when the table is empty. */
  lowestId: number;
  highestId: number;
  /** Rows, from the id range (ids are dense; see policy.ts). */
  rows: number;
  /** published_at of the oldest message (ms), or undefined when empty. */
  oldestPublishedAt?: number;
  averagePayloadBytes: number;
  /** Data and index pages the table holds on disk (InnoDB's estimate; freed pages are reused). */
  diskBytes: number;
}

/** How many of the newest messages the average payload size is taken from. */
const SIZE_SAMPLE_ROWS = 1000;

/**
 * Cheap statistics of one message table: index lookups and a sample, never a scan. Every read of
 * the low end starts after `deletedThrough`: the rows retention deleted stay in the index,
 * delete-marked, until InnoDB's purge removes them, which lags under load, and reading from the
 * table's start would step over every one of them.
 */
export async function topicTableStats(
  conn: mysql.Connection,
  topicId: number,
  deletedThrough: number,
): Promise<TopicTableStats> {
  const table = messageTable(topicId);
  const [range] = await queryRows(conn, `SELECT MIN(id) AS lo, MAX(id) AS hi FROM ${table} WHERE id > ?`, [
    deletedThrough,
  ]);
  const lowestId = Number(range?.lo ?? 0);
  const highestId = Number(range?.hi ?? 0);
  const [disk] = await queryRows(
    conn,
    `SELECT COALESCE(DATA_LENGTH + INDEX_LENGTH, 0) AS bytes FROM information_schema.TABLES
      WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?`,
    [QUEUE_DATABASE, `m_${topicId}`],
  );
  const diskBytes = Number(disk?.bytes ?? 0);
  if (!highestId) return { lowestId: 0, highestId: 0, rows: 0, averagePayloadBytes: 0, diskBytes };
  const [oldest] = await queryRows(conn, `SELECT published_at FROM ${table} WHERE id = ?`, [lowestId]);
  const [sample] = await queryRows(
    conn,
    `SELECT AVG(LENGTH(payload)) AS avg FROM (SELECT payload FROM ${table} ORDER BY id DESC LIMIT ${SIZE_SAMPLE_ROWS}) newest`,
  );
  return {
    lowestId,
    highestId,
    rows: highestId - lowestId + 1,
    oldestPublishedAt: oldest ? Number(oldest.published_at) : undefined,
    averagePayloadBytes: Number(sample?.avg ?? 0),
    diskBytes,
  };
}

/** The `limit` lowest ids after `deletedThrough` with their publish times. */
export async function lowestRows(
  conn: mysql.Connection,
  topicId: number,
  deletedThrough: number,
  limit: number,
): Promise<{ id: number; publishedAt: number }[]> {
  const rows = await queryRows(
    conn,
    `SELECT id, published_at FROM ${messageTable(topicId)} WHERE id > ? ORDER BY id LIMIT ${Math.trunc(limit)}`,
    [deletedThrough],
  );
  return rows.map((r) => ({ id: Number(r.id), publishedAt: Number(r.published_at) }));
}

/**
 * Readies an admin connection for deleting: only on a writable instance (the admin's READ_ONLY ADMIN
 * would write through `read_only` on a standby or a fenced former primary), and with row images
 * of primary keys only, so a DELETE adds ids to the binlog rather than whole messages (measured in
 * docs/benchmarks.md, "Retention: deleting old messages").
 */
export async function prepareRetentionSession(conn: mysql.Connection): Promise<boolean> {
  if (!(await isWritable(conn))) return false;
  await conn.query(`SET SESSION binlog_row_image = 'MINIMAL'`);
  return true;
}

async function isWritable(conn: mysql.Connection): Promise<boolean> {
  const [row] = await queryRows(conn, 'SELECT @@global.read_only AS ro');
  return Number(row?.ro) === 0;
}

/**
 * Deletes the messages after `deletedThrough` up to `throughId` (a short range: the caller bounds it) and records the
 * new low-water mark in the same transaction. Returns the rows deleted.
 */
export async function deleteThrough(
  conn: mysql.Connection,
  topicId: number,
  deletedThrough: number,
  throughId: number,
): Promise<number> {
  // A pass can outlive the primary's role (a failover fences it with read_only meanwhile).
  if (!(await isWritable(conn))) throw new Error('the instance became read-only; retention stopped there');
  await conn.query('BEGIN');
  try {
    // Bounded below too, so the DELETE does not walk the delete-marked rows of earlier passes.
    const [result] = await conn.query(`DELETE FROM ${messageTable(topicId)} WHERE id > ? AND id <= ?`, [
      deletedThrough,
      throughId,
    ]);
    await conn.query(
      `UPDATE ${QUEUE_DATABASE}.topics SET deleted_through = GREATEST(deleted_through, ?) WHERE id = ?`,
      [throughId, topicId],
    );
    await conn.query('COMMIT');
    return (result as mysql.ResultSetHeader).affectedRows;
  } catch (err) {
    await conn.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
