import type mysql from 'mysql2/promise';
import { createMessageTableSql, messageTable } from '../shard/schema.js';
import type { ReusableBuffers } from '../common/reusable-buffers.js';
import { STATEMENT_HEADROOM, type StatementBytes, queryBytes } from '../shard/statement-bytes.js';

/** SQL the broker runs against one shard instance. Nothing here decides; callers do. */
type Db = mysql.Pool | mysql.PoolConnection;
type Row = Record<string, unknown>;

export interface LeaseState {
  owner: string | null;
  committedId: number;
  /** Milliseconds the lease still runs, by the database's clock. */
  remainingMs: number;
  /** Changes when the group is reset; commits made under another generation are ignored. */
  generation: number;
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
/**
 * Creates the topic (and its message table) unless it exists. `settings` (JSON) go in with the row:
 * written after it, the operator's topic discovery could list the topic without them in between,
 * and its resource would then set them back to none.
 */
export async function createTopic(db: Db, topic: string, settings: string | null = null): Promise<number> {
  await db.query('INSERT IGNORE INTO mq.topics (name, settings) VALUES (?, ?)', [topic, settings]);
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
 * `text` as the body of a quoted literal. Most payloads hold none of the three characters, and
 * three indexOf scans cost about a fifteenth of a regex replace that finds nothing (1 KiB
 * messages: 0.05 against 0.8 us; the replace was a tenth of a broker's CPU under publish load).
 */
const quotedBody = (text: string) =>
  text.indexOf("'") < 0 && text.indexOf('\\') < 0 && text.indexOf('\0') < 0
    ? text
    : text.replace(QUOTED_SPECIALS, escapeSpecial);

/**
 * A row's publish time, by the shard's clock: readers judge gaps by it against the same clock
 * (gaps.ts), so a broker whose clock is off cannot make rows look older than they are. NOW() is
 * fixed for the whole statement: every row of a batch gets the same value. The first row computes
 * it into a session variable and the others read that (rows are evaluated in order): the
 * expression parsed and evaluated in every row cost the primary a sixth of its CPU per 256 B row
 * (docs/benchmarks.md, "Issue 12, round 4").
 */
const SHARD_NOW_MS = 'UNIX_TIMESTAMP(NOW(3))*1000';

const FIRST_ROW_START = Buffer.from(`(@mq_now:=${SHARD_NOW_MS},`);
const ROW_START = Buffer.from('(@mq_now,');
/** Bytes go in as a binary string literal: their own size, against twice that as hex. */
const BINARY_OPEN = Buffer.from("_binary'");
const [COMMA, QUOTE, CLOSE, BACKSLASH, ZERO_DIGIT] = [0x2c, 0x27, 0x29, 0x5c, 0x30];

/**
 * How many bytes of `payload` a quoted literal escapes (quote, backslash, NUL). Three native scans
 * in the usual case of none; a byte loop only for payloads that hold one.
 */
function escapedBytes(payload: Buffer): number {
  if (payload.indexOf(QUOTE) < 0 && payload.indexOf(BACKSLASH) < 0 && payload.indexOf(0) < 0) return 0;
  let count = 0;
  for (let i = 0; i < payload.length; i++) {
    const c = payload[i];
    if (c === QUOTE || c === BACKSLASH || c === 0) count++;
  }
  return count;
}

/** Writes `payload` escaped (`escaped` bytes of it need a backslash) at `at`; returns the end. */
function writeEscaped(out: Buffer, at: number, payload: Buffer, escaped: number): number {
  if (escaped === 0) {
    out.set(payload, at);
    return at + payload.length;
  }
  for (let i = 0; i < payload.length; i++) {
    const c = payload[i];
    if (c === QUOTE || c === BACKSLASH || c === 0) {
      out[at++] = BACKSLASH;
      out[at++] = c === 0 ? ZERO_DIGIT : c;
    } else out[at++] = c;
  }
  return at;
}

/**
 * The multi-row INSERT, rendered here rather than by mysql2, whose escaping hex-encodes each Buffer
 * and then runs a per-character regex over the hex, and written as bytes (statement-bytes.ts), not
 * as one string of up to a megabyte. Text goes in as a quoted literal (its own size; only quote,
 * backslash and NUL escaped; the connection is utf8mb4 and the column a BLOB, so the stored bytes
 * are the text's UTF-8). Bytes go in as a `_binary` quoted literal, escaped the same way: the
 * introducer keeps the server from reading them as utf8mb4 text, and no valid utf8mb4 sequence
 * holds a quote or backslash byte, so the lexer cannot take an escape for part of a character.
 */
export function insertStatement(
  table: string,
  payloads: readonly Payload[],
  alloc: (size: number) => Buffer = Buffer.allocUnsafe,
): StatementBytes {
  const head = `INSERT INTO ${table} (published_at, payload) VALUES `;
  const literals = new Array<string | undefined>(payloads.length);
  const escaped = new Array<number>(payloads.length);
  // Per row: its start, the literal between its quotes, the closing quote and parenthesis, a comma.
  let size =
    STATEMENT_HEADROOM +
    Buffer.byteLength(head) +
    FIRST_ROW_START.length +
    payloads.length * (ROW_START.length + 4);
  for (let i = 0; i < payloads.length; i++) {
    const p = payloads[i];
    if (typeof p === 'string') {
      const literal = quotedBody(p);
      literals[i] = literal;
      size += Buffer.byteLength(literal);
    } else {
      escaped[i] = escapedBytes(p);
      size += BINARY_OPEN.length - 1 + p.length + escaped[i];
    }
  }
  const out = alloc(size);
  let at = STATEMENT_HEADROOM + out.write(head, STATEMENT_HEADROOM);
  for (let i = 0; i < payloads.length; i++) {
    if (i > 0) out[at++] = COMMA;
    const start = i === 0 ? FIRST_ROW_START : ROW_START;
    out.set(start, at);
    at += start.length;
    const p = payloads[i];
    if (typeof p === 'string') {
      out[at++] = QUOTE;
      at += out.write(literals[i]!, at);
    } else {
      out.set(BINARY_OPEN, at);
      at = writeEscaped(out, at + BINARY_OPEN.length, p, escaped[i]);
    }
    out[at++] = QUOTE;
    out[at++] = CLOSE;
  }
  return out.subarray(0, at);
}

/**
 * One multi-row INSERT under autocommit; returns the id of the first row (ids are consecutive).
 * The statement is written into a buffer from `buffers`, given back once the shard answered (it
 * read the whole statement by then; after an error the socket may still refer to it).
 */
export async function insertMessages(
  db: Db,
  topicId: number,
  payloads: readonly Payload[],
  buffers?: ReusableBuffers,
): Promise<number> {
  const statement = insertStatement(
    messageTable(topicId),
    payloads,
    buffers && ((size) => buffers.take(size)),
  );
  const result = await queryBytes(db, statement);
  buffers?.give(statement);
  return Number(result.insertId);
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

/** How many groups have offsets for the topic on this shard, and whether `group` is one of them. */
export async function countGroups(
  db: Db,
  topicId: number,
  group: string,
): Promise<{ groups: number; stored: boolean }> {
  const [row] = await rows(
    db,
    `SELECT COUNT(*) AS n, COALESCE(SUM(group_name = ?), 0) AS mine FROM mq.group_offsets WHERE topic_id = ?`,
    [group, topicId],
  );
  return { groups: Number(row.n), stored: Number(row.mine) > 0 };
}

/** The GTIDs a replica has applied (it needs no privilege beyond the connection). */
export async function replicaAppliedPosition(db: Db): Promise<string> {
  const [row] = await rows(db, 'SELECT @@global.gtid_slave_pos AS pos');
  return String(row.pos ?? '');
}

/**
 * Every message of the topic up to this id was deleted by retention (0: none, or a shard whose
 * schema predates the column, which had no retention either).
 */
export async function retentionDeletedThrough(db: Db, topicId: number): Promise<number> {
  try {
    const [row] = await rows(db, 'SELECT deleted_through FROM mq.topics WHERE id = ?', [topicId]);
    return Number(row?.deleted_through ?? 0);
  } catch (err) {
    if ((err as { code?: string }).code === 'ER_BAD_FIELD_ERROR') return 0;
    throw err;
  }
}

export async function highestMessageId(db: Db, topicId: number): Promise<number> {
  const [row] = await rows(db, `SELECT COALESCE(MAX(id), 0) AS id FROM ${messageTable(topicId)}`);
  return Number(row.id);
}

/**
 * Takes or renews the group's lease on this shard's part of the topic for `consumer`, unless
 * another consumer holds an unexpired one. One statement, so two brokers racing cannot both win.
 * MariaDB applies the assignments in order, each seeing the ones before: the owner is decided on
 * the old lease first, then the lease follows the owner. (Deciding the owner by whether the lease
 * had just been set handed a live holder's lease to a taker whose new deadline happened to equal
 * the holder's, i.e. one that ran in the millisecond of the holder's renewal.)
 */
export async function acquireLease(
  db: Db,
  group: string,
  topicId: number,
  consumer: string,
  ttlMs: number,
): Promise<LeaseState> {
  await db.query(
    `INSERT INTO mq.group_offsets (group_name, topic_id, owner, lease_until, generation)
     VALUES (?, ?, ?, ${DB_NOW_MS} + ?, ${DB_NOW_MS})
     ON DUPLICATE KEY UPDATE
       owner = IF(owner = VALUES(owner) OR lease_until < ${DB_NOW_MS}, VALUES(owner), owner),
       lease_until = IF(owner = VALUES(owner), VALUES(lease_until), lease_until)`,
    [group, topicId, consumer, ttlMs],
  );
  return (
    (await readLease(db, group, topicId)) ?? { owner: null, committedId: 0, remainingMs: 0, generation: 0 }
  );
}

export async function readLease(db: Db, group: string, topicId: number): Promise<LeaseState | undefined> {
  const [row] = await rows(
    db,
    `SELECT owner, committed_id, lease_until - ${DB_NOW_MS} AS remaining, generation
       FROM mq.group_offsets WHERE group_name = ? AND topic_id = ?`,
    [group, topicId],
  );
  if (!row) return undefined;
  return {
    owner: row.owner === null ? null : String(row.owner),
    committedId: Number(row.committed_id),
    remainingMs: Number(row.remaining),
    generation: Number(row.generation),
  };
}

/**
 * Extends `consumer`'s lease on this shard's part of the topic by `ttlMs` from now (a heartbeat);
 * true when it holds it. A lease it gave up (released: lease_until 0) or that another consumer took
 * is not renewed; one that ran out with nobody taking it is still this consumer's and is renewed,
 * as its next fetch would. The GREATEST keeps the row changed (counted) even within one millisecond.
 */
export async function renewLease(
  db: Db,
  group: string,
  topicId: number,
  consumer: string,
  ttlMs: number,
): Promise<boolean> {
  const [result] = await db.query(
    `UPDATE mq.group_offsets SET lease_until = GREATEST(lease_until + 1, ${DB_NOW_MS} + ?)
      WHERE group_name = ? AND topic_id = ? AND owner = ? AND lease_until > 0`,
    [ttlMs, group, topicId, consumer],
  );
  return (result as mysql.ResultSetHeader).affectedRows > 0;
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
  /** The generation the consumer read under; without one the commit is not fenced. */
  generation?: number;
}

/**
 * Several groups' offsets, at most two statements. Offsets only move forward, so a late commit from
 * a consumer that lost its lease does no harm. A commit that names a generation only updates a row
 * still in it: after a reset or a delete it changes nothing (and never recreates a deleted group).
 * Rows created here (a commit without a generation) get a fresh generation, the database's clock
 * in ms, so a consumer of a deleted group's earlier life cannot match it.
 */
export async function commitOffsets(db: Db, offsets: readonly GroupOffset[]): Promise<void> {
  const unfenced = offsets.filter((o) => o.generation === undefined);
  const fenced = offsets.filter((o) => o.generation !== undefined);
  if (unfenced.length > 0) {
    await db.query(
      `INSERT INTO mq.group_offsets (group_name, topic_id, committed_id, generation)
       VALUES ${unfenced.map(() => `(?, ?, ?, ${DB_NOW_MS})`).join(', ')}
       ON DUPLICATE KEY UPDATE committed_id = GREATEST(committed_id, VALUES(committed_id))`,
      unfenced.flatMap((o) => [o.group, o.topicId, o.id]),
    );
  }
  if (fenced.length > 0) {
    const rows = fenced.map(() => 'SELECT ? AS g, ? AS t, ? AS id, ? AS gen').join(' UNION ALL ');
    await db.query(
      `UPDATE mq.group_offsets o JOIN (${rows}) c
          ON o.group_name = c.g AND o.topic_id = c.t AND o.generation = c.gen
         SET o.committed_id = GREATEST(o.committed_id, c.id)`,
      fenced.flatMap((o) => [o.group, o.topicId, o.id, o.generation]),
    );
  }
}

export interface GroupRow {
  group: string;
  committedId: number;
  /** Holds an unexpired lease, or null. */
  owner: string | null;
}

/** Every group with a row for this shard's part of the topic. */
export async function listGroupRows(db: Db, topicId: number): Promise<GroupRow[]> {
  const result = await rows(
    db,
    `SELECT group_name, committed_id, IF(lease_until > ${DB_NOW_MS}, owner, NULL) AS owner
       FROM mq.group_offsets WHERE topic_id = ? ORDER BY group_name`,
    [topicId],
  );
  return result.map((r) => ({
    group: String(r.group_name),
    committedId: Number(r.committed_id),
    owner: r.owner === null ? null : String(r.owner),
  }));
}

/**
 * Sets the group's offset on this shard, starts a new generation (the old one's commits are then
 * ignored) and releases the lease, so the next fetch takes it afresh from the new offset.
 */
export async function resetGroupOffset(db: Db, group: string, topicId: number, committedId: number) {
  await db.query(
    `INSERT INTO mq.group_offsets (group_name, topic_id, committed_id, generation)
     VALUES (?, ?, ?, ${DB_NOW_MS})
     ON DUPLICATE KEY UPDATE committed_id = VALUES(committed_id),
       generation = GREATEST(generation + 1, VALUES(generation)), owner = NULL, lease_until = 0`,
    [group, topicId, committedId],
  );
}

/** Removes the group's offsets on this shard; returns whether it had any. */
export async function deleteGroupOffset(db: Db, group: string, topicId: number): Promise<boolean> {
  const [result] = await db.query('DELETE FROM mq.group_offsets WHERE group_name = ? AND topic_id = ?', [
    group,
    topicId,
  ]);
  return (result as mysql.ResultSetHeader).affectedRows > 0;
}

/** Forgets the group's delivery counts on this shard (maxDeliveries starts over after a reset). */
export async function deleteDeliveryCounts(db: Db, group: string, topicId: number): Promise<void> {
  await db.query('DELETE FROM mq.deliveries WHERE group_name = ? AND topic_id = ?', [group, topicId]);
}

/** Forgets offsets kept on this shard for the group's `origins` while their primaries were down. */
export async function deletePendingOffsets(
  db: Db,
  group: string,
  topic: string,
  origins: readonly string[],
): Promise<void> {
  await db.query(
    'DELETE FROM mq.pending_offsets WHERE group_name = ? AND topic = ? AND origin_shard IN (?)',
    [group, topic, origins],
  );
}

/** The id before the oldest message kept (0 when the shard has none). */
export async function earliestOffset(db: Db, topicId: number): Promise<number> {
  const [row] = await rows(db, `SELECT COALESCE(MIN(id) - 1, 0) AS id FROM ${messageTable(topicId)}`);
  return Number(row.id);
}

/**
 * The offset before the first message published at or after `at` (ms since the epoch), or the
 * newest id when there is none. A scan: `published_at` is not indexed (an admin operation, rare).
 */
export async function offsetBeforeTime(db: Db, topicId: number, at: number): Promise<number> {
  const [row] = await rows(
    db,
    `SELECT MIN(id) - 1 AS id FROM ${messageTable(topicId)} WHERE published_at >= ?`,
    [at],
  );
  return row.id === null ? highestMessageId(db, topicId) : Number(row.id);
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
