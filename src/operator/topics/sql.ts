import type mysql from 'mysql2/promise';
import { type Row, queryRows } from '../../shard/connection.js';
import { QUEUE_DATABASE, createMessageTableSql, messageTable } from '../../shard/schema.js';

/** SQL the operator runs for MessageQueueTopic resources, on a shard's primary as the admin user. */

/** Every topic of the shard with its stored settings (JSON text or null). */
export async function listTopicSettings(conn: mysql.Connection): Promise<Map<string, string | null>> {
  const rows = await queryRows(conn, `SELECT name, settings FROM ${QUEUE_DATABASE}.topics`);
  return new Map(rows.map((r: Row) => [String(r.name), r.settings === null ? null : String(r.settings)]));
}

/** Creates the topic (row and message table) if missing and sets its settings; safe to repeat. */
export async function ensureTopic(
  conn: mysql.Connection,
  topic: string,
  settings: string | null,
): Promise<void> {
  await conn.query(`INSERT IGNORE INTO ${QUEUE_DATABASE}.topics (name) VALUES (?)`, [topic]);
  const [row] = await queryRows(conn, `SELECT id FROM ${QUEUE_DATABASE}.topics WHERE name = ?`, [topic]);
  if (!row) throw new Error(`topic ${topic} vanished right after creation`);
  await conn.query(createMessageTableSql(Number(row.id)));
  // Written only when it differs: an unchanged topic costs no binlog event on a resync.
  await conn.query(
    `UPDATE ${QUEUE_DATABASE}.topics SET settings = ? WHERE name = ? AND NOT (settings <=> ?)`,
    [settings, topic, settings],
  );
}

/**
 * Drops the topic's message table and every row naming it. The topics row goes last, so a drop cut
 * short is finished by the next attempt (which finds the id again).
 */
export async function dropTopic(conn: mysql.Connection, topic: string): Promise<void> {
  const [row] = await queryRows(conn, `SELECT id FROM ${QUEUE_DATABASE}.topics WHERE name = ?`, [topic]);
  for (const table of ['pending_offsets', 'pending_releases']) {
    await conn.query(`DELETE FROM ${QUEUE_DATABASE}.${table} WHERE topic = ?`, [topic]);
  }
  if (!row) return;
  const id = Number(row.id);
  await conn.query(`DROP TABLE IF EXISTS ${messageTable(id)}`);
  for (const table of ['group_offsets', 'deliveries']) {
    await conn.query(`DELETE FROM ${QUEUE_DATABASE}.${table} WHERE topic_id = ?`, [id]);
  }
  await conn.query(`DELETE FROM ${QUEUE_DATABASE}.topics WHERE id = ?`, [id]);
}
