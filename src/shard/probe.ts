import { type Credentials, type Endpoint, queryRows, withAdmin } from './connection.js';
import { type Gtid, parseGtidList } from './gtid.js';

/** What one instance says about itself. */
export interface InstanceProbe {
  readOnly: boolean;
  serverId: number;
  gtidBinlogPos: Gtid[];
  gtidCurrentPos: Gtid[];
  /** The last GTID per domain and server in the binlog: what a successor must hold (`binlogHolds`). */
  gtidBinlogState: Gtid[];
  semiSyncPrimaryEnabled: boolean;
  /** ON while the primary waits for acknowledgements; OFF once it fell back to async. */
  semiSyncPrimaryActive: boolean;
  semiSyncStandbys: number;
  replica?: ReplicaStatus;
}

export interface ReplicaStatus {
  sourceHost: string;
  sourcePort: number;
  ioRunning: boolean;
  sqlRunning: boolean;
  secondsBehind: number | null;
  lastError: string;
}

export async function probeInstance(endpoint: Endpoint, admin: Credentials): Promise<InstanceProbe> {
  return withAdmin(endpoint, admin, async (conn) => {
    const [vars] = await queryRows(
      conn,
      `SELECT @@read_only AS ro, @@server_id AS sid, @@gtid_binlog_pos AS binlog, @@gtid_current_pos AS current,
              @@gtid_binlog_state AS binlogState,
              @@rpl_semi_sync_master_enabled AS ssEnabled`,
    );
    const status = new Map(
      (await queryRows(conn, `SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_%'`)).map((r) => [
        String(r.Variable_name),
        String(r.Value),
      ]),
    );
    const [slave] = await queryRows(conn, 'SHOW SLAVE STATUS');
    return {
      readOnly: Number(vars.ro) === 1,
      serverId: Number(vars.sid),
      gtidBinlogPos: parseGtidList(String(vars.binlog ?? '')),
      gtidCurrentPos: parseGtidList(String(vars.current ?? '')),
      gtidBinlogState: parseGtidList(String(vars.binlogState ?? '')),
      semiSyncPrimaryEnabled: Number(vars.ssEnabled) === 1,
      semiSyncPrimaryActive: status.get('Rpl_semi_sync_master_status') === 'ON',
      semiSyncStandbys: Number(status.get('Rpl_semi_sync_master_clients') ?? 0),
      replica: slave ? replicaStatus(slave) : undefined,
    };
  });
}

function replicaStatus(row: Record<string, unknown>): ReplicaStatus {
  const behind = row.Seconds_Behind_Master;
  return {
    sourceHost: String(row.Master_Host),
    sourcePort: Number(row.Master_Port),
    ioRunning: row.Slave_IO_Running === 'Yes',
    sqlRunning: row.Slave_SQL_Running === 'Yes',
    secondsBehind: behind === null || behind === undefined ? null : Number(behind),
    lastError: String(row.Last_IO_Error || row.Last_SQL_Error || ''),
  };
}
