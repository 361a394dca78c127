import type mysql from 'mysql2/promise';
import { withDeadline } from '../common/deadline.js';
import {
  type SemiSyncPolicy,
  type ShardSecrets,
  attachStandby,
  configurePrimarySemiSync,
} from './bootstrap.js';
import { type Credentials, type Endpoint, connectAdmin, queryRows, withAdmin } from './connection.js';
import { QUEUE_DATABASE } from './schema.js';

/**
 * Promotion of a standby to the shard's writable primary, and the return of the former primary as
 * its standby (`spec.failover.promoteForWrites`). Writes stay closed after `promoteStandby`: the
 * control plane opens them as it does for any primary, once the durability policy allows.
 */

/**
 * Makes `standby` a primary: stop receiving, apply every transaction it has received (with AFTER_SYNC
 * semi-sync those include every acknowledged one), forget the old source, and enable semi-sync as
 * a primary. Idempotent: an instance that replicates from nobody only gets the semi-sync settings.
 */
export async function promoteStandby(
  standby: Endpoint,
  admin: Credentials,
  semiSync: SemiSyncPolicy,
  applyWaitSeconds = 10,
): Promise<void> {
  await withAdmin(standby, admin, async (conn) => {
    const [status] = await queryRows(conn, 'SHOW SLAVE STATUS');
    if (!status) return;
    await conn.query('STOP SLAVE IO_THREAD');
    const [stopped] = await queryRows(conn, 'SHOW SLAVE STATUS');
    const received = String(stopped?.Gtid_IO_Pos ?? '');
    if (received) {
      const [wait] = await queryRows(conn, 'SELECT MASTER_GTID_WAIT(?, ?) AS result', [
        received,
        applyWaitSeconds,
      ]);
      if (wait?.result !== 0) {
        const sqlError = String(stopped?.Last_SQL_Error ?? '');
        throw new Error(
          `standby has not applied every transaction it received (${received}) within ${applyWaitSeconds} s${sqlError ? `: ${sqlError}` : ''}`,
        );
      }
    }
    await conn.query('STOP SLAVE');
    await conn.query('RESET SLAVE ALL');
  });
  await configurePrimarySemiSync(standby, admin, semiSync);
}

/**
 * Fences a former primary: cuts every broker connection (a commit still waiting there can then never
 * be reported to a producer as done) and makes it read-only for brokers. Connections that slipped in
 * between are cut again after `read_only` is set.
 */
async function fence(conn: mysql.Connection, brokerUser: string): Promise<void> {
  await killConnectionsOf(conn, brokerUser);
  await conn.query('SET GLOBAL read_only = ON');
  await killConnectionsOf(conn, brokerUser);
}

/** Fences an instance that may be unreachable or hung: tried once, for at most `ms`. */
export async function tryFence(endpoint: Endpoint, secrets: ShardSecrets, ms: number): Promise<boolean> {
  let conn: mysql.Connection | undefined;
  const attempt = (async () => {
    conn = await connectAdmin(endpoint, secrets.admin, ms);
    await fence(conn, secrets.broker.user);
  })();
  try {
    await withDeadline(attempt, ms, 'fence', () => conn?.destroy());
    return true;
  } catch {
    attempt.catch(() => undefined);
    return false;
  } finally {
    conn?.destroy();
  }
}

async function killConnectionsOf(conn: mysql.Connection, user: string): Promise<void> {
  const ids = await queryRows(conn, 'SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?', [user]);
  for (const { ID } of ids) {
    await conn.query('KILL CONNECTION ?', [Number(ID)]).catch((err: { errno?: number }) => {
      if (err.errno !== 1094) throw err; // unknown thread: it ended on its own
    });
  }
}

/**
 * Turns a former primary into the standby of `primary`. Fenced first. Without `rebuild` it keeps its
 * data and replicates from the last transaction it has (it must hold nothing `primary` lacks: see
 * `binlogHolds`). With `rebuild` its queue data, replicated users and binlog are wiped and it replays `primary`'s
 * whole binlog: what it held beyond `primary` was never acknowledged, so nothing acknowledged is lost.
 */
export async function rejoinAsStandby(
  former: Endpoint,
  primary: Endpoint,
  secrets: ShardSecrets,
  rebuild: boolean,
): Promise<void> {
  await withAdmin(former, secrets.admin, async (conn) => {
    await fence(conn, secrets.broker.user);
    if ((await queryRows(conn, 'SHOW SLAVE STATUS')).length > 0) {
      await conn.query('STOP SLAVE');
      await conn.query('RESET SLAVE ALL');
    }
    if (rebuild) {
      // Kept out of its binlog: this instance's history is about to be replaced by the primary's.
      await conn.query('SET SESSION sql_log_bin = 0');
      await conn.query(`DROP DATABASE IF EXISTS \`${QUEUE_DATABASE}\``);
      // The users the primary's binlog creates. Not the admin and monitor users: each instance
      // holds those itself (its init file), outside replication. (A binlog an older operator wrote
      // may still create the monitor user: that replay stops on it, and the standby is then rebuilt
      // by a physical copy, as for any transaction it cannot apply.)
      for (const user of [secrets.replication.user, secrets.broker.user]) {
        await conn.query(`DROP USER IF EXISTS ?@'%'`, [user]);
      }
      await conn.query('RESET MASTER');
      await conn.query(`SET GLOBAL gtid_slave_pos = ''`);
    } else {
      // With log_slave_updates its binlog holds everything it applied or wrote.
      await conn.query('SET GLOBAL gtid_slave_pos = @@gtid_binlog_pos');
    }
  });
  await attachStandby(former, primary, secrets);
}
