import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { INNODB_BINLOG_POS_FILE, parseInnodbBinlogPos } from '../shard/clone.js';
import { PrivateServer } from './point-in-time.js';

/**
 * Makes restored data the first primary of a new cluster (`spec.restore`), before mariadbd first
 * starts on it: the new cluster's passwords, a fresh replication history, and a first transaction
 * in the new server's own binlog.
 */

/** A MariaDB account whose password the new cluster's credentials Secret sets. */
export interface AccountPassword {
  user: string;
  password: string;
}

export interface AdoptOptions {
  /** The new cluster's users (admin, replication, broker, monitor) and their passwords. */
  accounts: readonly AccountPassword[];
  /** server_id of the instance that will run on the data (its first binlog events carry it). */
  serverId: number;
  /** What was restored, recorded in `mysql.mysqlmq_restore`. */
  restoredFrom: string;
}

/**
 * The number the new binlog starts at: one past the source's binlog file that InnoDB recorded
 * (`xtrabackup_binlog_pos_innodb` of the prepared restore, e.g. `./mysql-bin.000007 230948`).
 * InnoDB keeps the binlog position of its last commit per undo segment and recovery takes the
 * greatest file name, then offset: a new commit in a lower or equal file would lose to the source's
 * stale position. Pure.
 */
export function firstBinlogNumber(innodbBinlogPos: string): number {
  const at = parseInnodbBinlogPos(innodbBinlogPos);
  const n = at ? Number(/\.(\d+)$/.exec(at.file)?.[1] ?? 0) : 0;
  return n + 1;
}

/** A string literal for SQL: quotes and backslashes escaped (NO_BACKSLASH_ESCAPES is off). Pure. */
export function sqlString(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/**
 * The statements of the adoption, for `accounts` and the hosts each exists with (`existing`: from
 * mysql.user). Pure.
 *
 * - Passwords: the restored accounts carry the source cluster's passwords, which the new cluster
 *   does not know (its Secret was generated for it, and the source's Secret may be gone with the
 *   source). Every existing host of each account gets the new password, unlogged: a standby gets
 *   it with its copy. Accounts missing here are created by the shard bootstrap.
 * - The binlog and `gtid_slave_pos` are emptied: the backup's position belongs to the source's
 *   replication history; the new shard starts its own, and its standby must not ask for the
 *   source's GTIDs.
 * - One InnoDB transaction written to the new binlog (a row saying what was restored): a standby
 *   is seeded with a physical copy of this primary, and the copy's position is the binlog offset of
 *   the last InnoDB commit. Without this row that offset would be one in the source's binlog,
 *   which this server does not have (or worse, a different file of the same name); the new binlog
 *   is numbered past the source's so that InnoDB takes the new position (firstBinlogNumber).
 */
export function adoptionScript(
  options: AdoptOptions & { firstBinlog: number },
  existing: readonly { user: string; host: string }[],
): string {
  const lines = ['FLUSH PRIVILEGES;', 'SET SESSION sql_log_bin = 0;'];
  for (const account of options.accounts) {
    for (const { host } of existing.filter((e) => e.user === account.user))
      lines.push(
        `ALTER USER ${sqlString(account.user)}@${sqlString(host)} IDENTIFIED BY ${sqlString(account.password)};`,
      );
  }
  lines.push(
    // The binlog this server opened holds the source's GTID state; strict mode would refuse the
    // empty position next to it. The new cluster's binlog starts here, numbered past the source's
    // (firstBinlogNumber).
    `RESET MASTER TO ${options.firstBinlog};`,
    `SET GLOBAL gtid_slave_pos = '';`,
    'SET SESSION sql_log_bin = 1;',
    `CREATE TABLE IF NOT EXISTS mysql.mysqlmq_restore (restored_at DATETIME(3) NOT NULL, restored_from VARCHAR(1024) NOT NULL) ENGINE=InnoDB;`,
    `INSERT INTO mysql.mysqlmq_restore VALUES (UTC_TIMESTAMP(3), ${sqlString(options.restoredFrom)});`,
  );
  return lines.join('\n') + '\n';
}

/** Runs the adoption on `dataDir` (prepared, mariadbd not running on it) with a private server. */
export async function adoptRestoredData(
  dataDir: string,
  workDir: string,
  options: AdoptOptions,
): Promise<void> {
  const stalePosition = join(dataDir, INNODB_BINLOG_POS_FILE);
  const firstBinlog = firstBinlogNumber(await readFile(stalePosition, 'utf8').catch(() => ''));
  const server = await PrivateServer.start(dataDir, workDir, { serverId: options.serverId });
  try {
    const users = options.accounts.map((a) => sqlString(a.user)).join(', ');
    const rows = await server.sql(`SELECT User, Host FROM mysql.user WHERE User IN (${users})`);
    const existing = rows
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [user = '', host = ''] = line.split('\t');
        return { user, host };
      });
    await server.script(adoptionScript({ ...options, firstBinlog }, existing));
    await server.stop();
    // The source's position, from the restore's prepare: it says nothing about this server.
    await rm(stalePosition, { force: true });
  } catch (err) {
    server.kill();
    throw new Error(`adopting the restored data for the new cluster failed: ${(err as Error).message}`);
  }
}
