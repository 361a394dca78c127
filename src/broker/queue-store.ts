import type mysql from 'mysql2/promise';
import { createMessageTableSql, messageTable } from '../shard/schema.js';

/** SQL the broker runs against one shard instance. Nothing here decides; callers do. */
type Db = mysql.Pool | mysql.PoolConnection;
type Row = Record<string, unknown>;

export interface LeaseState {
  owner: string | null;
  committedId: number;
  /** Milliseconds the lease still runs, by the database's clock. */
  remainingMs: number;
}

const DB_NOW_MS = 'CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)';

async function rows(db: Db, sql: string, params: unknown[] = []): Promise<Row[]> {
  const [result] = await db.query(sql, params);
  return result as Row[];
}

export async function findTopicId(db: Db, topic: string): Promise<number | undefined> {
  const [row] = await rows(db, 'SELECT id FROM mq.topics WHERE name = ?', [topic]);
  return row ? Number(row.id) : undefined;
}

/** Registers the topic and creates its message table; safe to repeat. */
export async function createTopic(db: Db, topic: string): Promise<number> {
  await db.query('INSERT IGNORE INTO mq.topics (name) VALUES (?)', [topic]);
  const id = await findTopicId(db, topic);
  if (id === undefined) throw new Error(`topic ${topic} vanished right after creation`);
  await db.query(createMessageTableSql(id));
  return id;
}

export async function listTopics(db: Db): Promise<string[]> {
  return (await rows(db, 'SELECT name FROM mq.topics ORDER BY name')).map((r) => String(r.name));
}

/** A published message: text (stored as its UTF-8 bytes) or bytes. */
export type Payload = string | Buffer;

const QUOTED_SPECIALS = /[\0'\\]/g;
const escapeSpecial = (c: string) => (c === '\0' ? '\\0' : `\\${c}`);

/**
 * A row's publish time, by the shard's clock: readers judge gaps by it against the same clock
 * (gaps.ts), so a broker whose clock is off cannot make rows look older than they are. NOW() is
 * fixed for the whole statement: every row of a batch gets the same value.
 */
const SHARD_NOW_MS = 'UNIX_TIMESTAMP(NOW(3))*1000';

/**
 * The multi-row INSERT, rendered here rather than by mysql2, whose escaping hex-encodes each Buffer
 * and then runs a per-character regex over the hex. Text goes in as a quoted literal (its own size;
 * only quote, backslash and NUL escaped; the connection is utf8mb4 and the column a BLOB, so the
 * stored bytes are the text's UTF-8), bytes as a hex literal.
 */
export function insertSql(table: string, payloads: readonly Payload[]): string {
  const at = SHARD_NOW_MS;
  const rows = new Array<string>(payloads.length);
  for (let i = 0; i < payloads.length; i++) {
    const p = payloads[i];
    const literal =
      typeof p === 'string' ? `'${p.replace(QUOTED_SPECIALS, escapeSpecial)}'` : `X'${p.toString('hex')}'`;
    rows[i] = `(${at},${literal})`;
  }
  return `INSERT INTO ${table} (published_at, payload) VALUES ${rows.join(',')}`;
}

/** One multi-row INSERT under autocommit; returns the id of the first row (ids are consecutive). */
export async function insertMessages(db: Db, topicId: number, payloads: readonly Payload[]): Promise<number> {
  const [result] = await db.query(insertSql(messageTable(topicId), payloads));
  return Number((result as mysql.ResultSetHeader).insertId);
}

export interface StoredMessage {
  id: number;
  publishedAt: number;
  payload: Buffer;
}

export interface ReadResult {
  messages: StoredMessage[];
  /**
   * The instance's clock when the statement began, before its snapshot (ms since the epoch);
   * undefined when no row came back.
   */
  shardNowMs: number | undefined;
}

export async function readMessages(
  db: Db,
  topicId: number,
  afterId: number,
  limit: number,
): Promise<ReadResult> {
  const result = await rows(
    db,
    `SELECT id, published_at, payload, ${DB_NOW_MS} AS now_ms
       FROM ${messageTable(topicId)} WHERE id > ? ORDER BY id LIMIT ?`,
    [afterId, limit],
  );
  return {
    messages: result.map((r) => ({
      id: Number(r.id),
      publishedAt: Number(r.published_at),
      payload: r.payload as Buffer,
    })),
    shardNowMs: result.length > 0 ? Number(result[0].now_ms) : undefined,
  };
}

/** The GTIDs a replica has applied (it needs no privilege beyond the connection). */
export async function replicaAppliedPosition(db: Db): Promise<string> {
  const [row] = await rows(db, 'SELECT @@global.gtid_slave_pos AS pos');
  return String(row.pos ?? '');
}

export async function highestMessageId(db: Db, topicId: number): Promise<number> {
  const [row] = await rows(db, `SELECT COALESCE(MAX(id), 0) AS id FROM ${messageTable(topicId)}`);
  return Number(row.id);
}

/**
 * Takes or renews the group's lease on this shard's part of the topic for `consumer`, unless
 * another consumer holds an unexpired one. One statement, so two brokers racing cannot both win.
 */
export async function acquireLease(
  db: Db,
  group: string,
  topicId: number,
  consumer: string,
  ttlMs: number,
): Promise<LeaseState> {
  await db.query(
    `INSERT INTO mq.group_offsets (group_name, topic_id, owner, lease_until)
     VALUES (?, ?, ?, ${DB_NOW_MS} + ?)
     ON DUPLICATE KEY UPDATE
       lease_until = IF(owner = VALUES(owner) OR lease_until < ${DB_NOW_MS}, VALUES(lease_until), lease_until),
       owner = IF(lease_until = VALUES(lease_until), VALUES(owner), owner)`,
    [group, topicId, consumer, ttlMs],
  );
  return (await readLease(db, group, topicId)) ?? { owner: null, committedId: 0, remainingMs: 0 };
}

export async function readLease(db: Db, group: string, topicId: number): Promise<LeaseState | undefined> {
  const [row] = await rows(
    db,
    `SELECT owner, committed_id, lease_until - ${DB_NOW_MS} AS remaining
       FROM mq.group_offsets WHERE group_name = ? AND topic_id = ?`,
    [group, topicId],
  );
  if (!row) return undefined;
  return {
    owner: row.owner === null ? null : String(row.owner),
    committedId: Number(row.committed_id),
    remainingMs: Number(row.remaining),
  };
}

export async function releaseLease(db: Db, group: string, topicId: number, consumer: string): Promise<void> {
  await db.query(
    'UPDATE mq.group_offsets SET lease_until = 0 WHERE group_name = ? AND topic_id = ? AND owner = ?',
    [group, topicId, consumer],
  );
}

export interface GroupOffset {
  group: string;
  topicId: number;
  id: number;
}

/**
 * Several groups' offsets in one statement (one transaction). Offsets only move forward, so a late
 * commit from a consumer that lost its lease does no harm.
 */
export async function commitOffsets(db: Db, offsets: readonly GroupOffset[]): Promise<void> {
  await db.query(
    `INSERT INTO mq.group_offsets (group_name, topic_id, committed_id) VALUES ?
     ON DUPLICATE KEY UPDATE committed_id = GREATEST(committed_id, VALUES(committed_id))`,
    [offsets.map((o) => [o.group, o.topicId, o.id])],
  );
}

/** Keeps an offset for `originShard` on this (writable) shard while the origin takes no writes. */
export async function savePendingOffset(
  db: Db,
  originShard: string,
  group: string,
  topic: string,
  id: number,
): Promise<void> {
  await db.query(
    `INSERT INTO mq.pending_offsets (origin_shard, group_name, topic, committed_id) VALUES (?, ?, ?, ?)
     ON DUPLICATE KEY UPDATE committed_id = GREATEST(committed_id, VALUES(committed_id))`,
    [originShard, group, topic, id],
  );
}

async function readPendingOffset(db: Db, originShard: string, group: string, topic: string): Promise<number> {
  const [row] = await rows(
    db,
    'SELECT committed_id FROM mq.pending_offsets WHERE origin_shard = ? AND group_name = ? AND topic = ?',
    [originShard, group, topic],
  );
  return row ? Number(row.committed_id) : 0;
}

/** Records that `consumer` gave up its lease on `originShard` while that shard took no writes. */
export async function savePendingRelease(
  db: Db,
  originShard: string,
  group: string,
  topic: string,
  consumer: string,
): Promise<void> {
  await db.query(
    `INSERT IGNORE INTO mq.pending_releases (origin_shard, group_name, topic, consumer) VALUES (?, ?, ?, ?)`,
    [originShard, group, topic, consumer],
  );
}

export interface PendingForShard {
  /** Highest offset kept for the origin shard (0: none). */
  offset: number;
  /** Consumers whose lease on the origin shard is to be released. */
  releases: string[];
}

/** What this shard keeps for `originShard`: its pending offset and lease releases for the group. */
export async function readPending(
  db: Db,
  originShard: string,
  group: string,
  topic: string,
): Promise<PendingForShard> {
  const [offsets, releases] = await Promise.all([
    readPendingOffset(db, originShard, group, topic),
    rows(
      db,
      'SELECT consumer FROM mq.pending_releases WHERE origin_shard = ? AND group_name = ? AND topic = ?',
      [originShard, group, topic],
    ),
  ]);
  return { offset: offsets, releases: releases.map((r) => String(r.consumer)) };
}

/**
 * Forgets what was applied to the origin shard: the pending offset unless a newer one arrived
 * since it was read, and the given releases.
 */
export async function deletePending(
  db: Db,
  originShard: string,
  group: string,
  topic: string,
  applied: PendingForShard,
): Promise<void> {
  const key = [originShard, group, topic];
  if (applied.offset > 0) {
    await db.query(
      'DELETE FROM mq.pending_offsets WHERE origin_shard = ? AND group_name = ? AND topic = ? AND committed_id <= ?',
      [...key, applied.offset],
    );
  }
  if (applied.releases.length > 0) {
    await db.query(
      'DELETE FROM mq.pending_releases WHERE origin_shard = ? AND group_name = ? AND topic = ? AND consumer IN (?)',
      [...key, applied.releases],
    );
  }
}

/** The topic's stored settings (JSON text, see src/api/topic-settings.ts), null when none are set. */
export async function readTopicSettings(db: Db, topic: string): Promise<string | null> {
  const [row] = await rows(db, 'SELECT settings FROM mq.topics WHERE name = ?', [topic]);
  return row?.settings === null || row?.settings === undefined ? null : String(row.settings);
}

export async function writeTopicSettings(db: Db, topic: string, settings: string): Promise<void> {
  await db.query('UPDATE mq.topics SET settings = ? WHERE name = ?', [settings, topic]);
}

export interface DeliveryCount {
  attempts: number;
  lastError: string | null;
}

/**
 * Counts, for maxDeliveries, a delivery of a message from the group's committed offset (`failure`
 * undefined: the previous such delivery, if any, was not committed) or a handler failure the SDK
 * reported for it. Rows of messages the group has committed past are removed on the way.
 */
export async function countDelivery(
  db: Db,
  group: string,
  topicId: number,
  messageId: number,
  committedId: number,
  failure?: string,
): Promise<DeliveryCount> {
  const key = [group, topicId];
  await db.query('DELETE FROM mq.deliveries WHERE group_name = ? AND topic_id = ? AND message_id <= ?', [
    ...key,
    committedId,
  ]);
  await db.query(
    failure === undefined
      ? `INSERT INTO mq.deliveries (group_name, topic_id, message_id, open_delivery) VALUES (?, ?, ?, 1)
         ON DUPLICATE KEY UPDATE attempts = attempts + open_delivery, open_delivery = 1`
      : `INSERT INTO mq.deliveries (group_name, topic_id, message_id, attempts, last_error) VALUES (?, ?, ?, 1, ?)
         ON DUPLICATE KEY UPDATE attempts = attempts + 1, open_delivery = 0, last_error = VALUES(last_error)`,
    failure === undefined ? [...key, messageId] : [...key, messageId, failure.slice(0, 4000)],
  );
  const [row] = await rows(
    db,
    'SELECT attempts, last_error FROM mq.deliveries WHERE group_name = ? AND topic_id = ? AND message_id = ?',
    [...key, messageId],
  );
  return {
    attempts: Number(row?.attempts ?? 0),
    lastError: row?.last_error ? String(row.last_error) : null,
  };
}

/** One stored message by id, or undefined. */
export async function readMessage(db: Db, topicId: number, id: number): Promise<StoredMessage | undefined> {
  const [m] = (await readMessages(db, topicId, id - 1, 1)).messages;
  return m?.id === id ? m : undefined;
}
