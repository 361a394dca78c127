import type mysql from 'mysql2/promise';
import { queryRows } from './connection.js';
import { type Gtid, parseGtidList } from './gtid.js';

/** Binary log files of one instance, and purging them (src/operator/retention/binlog-policy.ts decides). */

export interface BinlogListing {
  name: string;
  size: number;
}

/** The instance's binlog files, oldest first (the last is the one being written). */
export async function listBinlogs(conn: mysql.Connection): Promise<BinlogListing[]> {
  const rows = await queryRows(conn, 'SHOW BINARY LOGS');
  return rows.map((r) => ({ name: String(r.Log_name), size: Number(r.File_size) }));
}

/**
 * The Gtid_list event at the start of a binlog file: the last GTID per domain and server of
 * everything written before the file (empty for the first file an instance ever wrote).
 */
export async function binlogStartState(conn: mysql.Connection, file: string): Promise<Gtid[]> {
  const rows = await queryRows(conn, 'SHOW BINLOG EVENTS IN ? LIMIT 4', [file]);
  const list = rows.find((r) => r.Event_type === 'Gtid_list');
  if (!list) throw new Error(`binlog ${file} has no Gtid_list event at its start`);
  return parseGtidList(String(list.Info ?? '').replace(/^\[|\]$/g, ''));
}

/** Deletes every binlog file before `file` (PURGE is not replicated: run it on each instance). */
export async function purgeBinlogsTo(conn: mysql.Connection, file: string): Promise<void> {
  await conn.query('PURGE BINARY LOGS TO ?', [file]);
}

/** Closes the binlog file being written and opens the next (so the closed one can be archived). */
export async function flushBinlogs(conn: mysql.Connection): Promise<void> {
  await conn.query('FLUSH BINARY LOGS');
}
