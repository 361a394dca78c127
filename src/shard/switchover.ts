import { errorMessage } from '../common/errors.js';
import {
  type SemiSyncPolicy,
  type ShardSecrets,
  attachStandby,
  setReadOnly,
  waitForSemiSyncStandby,
} from './bootstrap.js';
import { type Endpoint, queryRows, withAdmin } from './connection.js';
import { promoteStandby } from './promote.js';

/**
 * A planned switchover of one shard: its standby becomes the primary, the primary its semi-sync
 * standby, and nothing acknowledged is lost. The caller has already taken the shard out of the
 * brokers' write rotation, so only batches already in flight reach `from`.
 */

/** `promoted` says whether `to` was already the primary when the step failed. */
export class SwitchoverError extends Error {
  constructor(
    message: string,
    readonly promoted: boolean,
  ) {
    super(message);
    this.name = 'SwitchoverError';
  }
}

export interface SwitchoverOptions {
  /** How long the standby may take to apply what the primary committed. */
  catchUpMs?: number;
  /** How long the new primary waits for the old one to acknowledge as its semi-sync standby. */
  standbyAckMs?: number;
}

/** Milliseconds each step took, for the log: where a long pause went. */
export interface SwitchoverSteps {
  fence: number;
  catchUp: number;
  promote: number;
  rejoin: number;
  openWrites: number;
}

export async function switchover(
  from: Endpoint,
  to: Endpoint,
  secrets: ShardSecrets,
  semiSync: SemiSyncPolicy,
  opts: SwitchoverOptions = {},
): Promise<SwitchoverSteps> {
  const { catchUpMs = 1500, standbyAckMs = 5000 } = opts;
  const steps: SwitchoverSteps = { fence: 0, catchUp: 0, promote: 0, rejoin: 0, openWrites: 0 };
  let mark = Date.now();
  const lap = (step: keyof SwitchoverSteps) => {
    const now = Date.now();
    steps[step] = now - mark;
    mark = now;
  };
  try {
    // `read_only` waits for commits under way; after it no broker commit can complete on `from`
    // (one in flight gets an error and its broker resends the batch to another shard), so its
    // binlog position is final.
    const last = await withAdmin(from, secrets.admin, async (conn) => {
      await conn.query('SET GLOBAL read_only = ON');
      const [row] = await queryRows(conn, 'SELECT @@gtid_binlog_pos AS pos');
      return String(row?.pos ?? '');
    });
    lap('fence');
    await withAdmin(to, secrets.admin, async (conn) => {
      const [wait] = await queryRows(conn, 'SELECT MASTER_GTID_WAIT(?, ?) AS result', [
        last,
        catchUpMs / 1000,
      ]);
      if (wait?.result !== 0) {
        throw new Error(
          `the standby did not apply the primary's last transaction (${last}) within ${catchUpMs} ms`,
        );
      }
    });
    lap('catchUp');
    await promoteStandby(to, secrets.admin, semiSync);
    lap('promote');
  } catch (err) {
    // Both instances hold the same transactions: the caller reopens writes on `from` and
    // re-attaches `to` to it if promotion got as far as detaching it.
    throw new SwitchoverError(errorMessage(err), false);
  }
  try {
    await withAdmin(from, secrets.admin, async (conn) => {
      if ((await queryRows(conn, 'SHOW SLAVE STATUS')).length > 0) {
        await conn.query('STOP SLAVE');
        await conn.query('RESET SLAVE ALL');
      }
      // It holds exactly what `to` holds (checked above): it follows from its own last transaction.
      await conn.query('SET GLOBAL gtid_slave_pos = @@gtid_binlog_pos');
    });
    await attachStandby(from, to, secrets);
    lap('rejoin');
    const acknowledged = await waitForSemiSyncStandby(to, secrets.admin, standbyAckMs);
    if (!acknowledged && semiSync.waitWithoutStandby) {
      throw new Error(`the former primary did not connect as a semi-sync standby within ${standbyAckMs} ms`);
    }
    await setReadOnly(to, secrets.admin, false);
    lap('openWrites');
  } catch (err) {
    throw new SwitchoverError(`promoted, but: ${errorMessage(err)}`, true);
  }
  return steps;
}
