import type mysql from 'mysql2/promise';
import { MONITOR_GRANTS, type Grants } from './accounts.js';
import { type ClientTls, type Credentials, type Endpoint, queryRows, withAdmin } from './connection.js';
import { QUEUE_DATABASE, SCHEMA_STATEMENTS, SCHEMA_TABLES } from './schema.js';

export interface ShardSecrets {
  /** The admin user every instance creates for itself (`ADMIN_USER`, src/shard/accounts.ts). */
  admin: Credentials;
  replication: Credentials;
  broker: Credentials;
  /** The probes' and metrics exporter's user (`MONITOR_GRANTS`): server state, never queue data. */
  monitor: Credentials;
  /**
   * Set when the instances require TLS (`spec.mysql.tls`): a replica's connection to its primary is
   * encrypted and checked against the CA the replica itself serves with (its `ssl_ca`), see
   * `replicationTlsClause`.
   */
  replicationTls?: boolean;
}

/** `secrets` for instances that require TLS: every connection, replication included, over `tls`. Pure. */
export function withClientTls(secrets: ShardSecrets, tls: ClientTls): ShardSecrets {
  return {
    admin: { ...secrets.admin, tls },
    replication: { ...secrets.replication, tls },
    broker: { ...secrets.broker, tls },
    monitor: { ...secrets.monitor, tls },
    replicationTls: true,
  };
}

export interface SemiSyncPolicy {
  /** How long a commit waits for the standby's acknowledgement before the primary goes async. */
  timeoutMs: number;
  /** Keep waiting even when no standby is connected (the `required` durability policy). */
  waitWithoutStandby: boolean;
}

/**
 * Semi-sync for the `required` durability policy: a commit is acknowledged only once the standby
 * has the transaction; with no standby it waits instead of silently going async.
 * (Largest timeout MariaDB accepts on 64-bit builds, in ms: about 49 days.)
 */
export const REQUIRED_SEMI_SYNC: SemiSyncPolicy = { timeoutMs: 4294967295, waitWithoutStandby: true };

/**
 * Creates the replication and broker users and the queue schema on the primary. Every step
 * checks before it writes, because a write on a primary whose standby is away blocks under the
 * `required` policy, and re-running bootstrap must be safe at any time.
 */
export async function bootstrapPrimary(primary: Endpoint, secrets: ShardSecrets): Promise<void> {
  await withAdmin(primary, secrets.admin, async (conn) => {
    // Tables first: the broker's DELETE is granted per table.
    await ensureSchema(conn);
    await ensureUser(conn, secrets.replication, REPLICATION_GRANTS);
    await ensureUser(conn, secrets.broker, BROKER_GRANTS);
    await ensureUser(conn, secrets.monitor, MONITOR_GRANTS);
  });
}

/** The standby's IO thread: reading the primary's binlog (COM_BINLOG_DUMP) and nothing else. */
const REPLICATION_GRANTS: Grants = [[['REPLICATION SLAVE'], '*.*']];

/**
 * What the broker may do: read and append messages, create topic tables, and keep its bookkeeping.
 * No DELETE on messages (retention deletes them as the admin user), only on the rows it clears.
 */
const BROKER_GRANTS: Grants = [
  [['SELECT', 'INSERT', 'UPDATE', 'CREATE'], `${QUEUE_DATABASE}.*`],
  ...['group_offsets', 'pending_offsets', 'pending_releases', 'deliveries'].map(
    (table): [string[], string] => [['DELETE'], `${QUEUE_DATABASE}.${table}`],
  ),
];

/**
 * Creates the user with its grants once; an existing user keeps the grants it has. IF NOT EXISTS:
 * the statement replicates, and the standby may have the user already (the monitor user comes
 * from each instance's init file; it is ensured here for instances started without one).
 */
async function ensureUser(conn: mysql.Connection, creds: Credentials, grants: Grants): Promise<void> {
  const existing = await queryRows(conn, `SELECT 1 FROM mysql.user WHERE User = ? AND Host = '%'`, [
    creds.user,
  ]);
  if (existing.length > 0) return;
  await conn.query(`CREATE USER IF NOT EXISTS ?@'%' IDENTIFIED BY ?`, [creds.user, creds.password]);
  for (const [privileges, on] of grants) {
    await conn.query(`GRANT ${privileges.join(', ')} ON ${on} TO ?@'%'`, [creds.user]);
  }
}

/**
 * Brings a shard bootstrapped by an older operator up to this version: missing tables and columns,
 * the broker's grants on them (GRANT is idempotent), no grant the broker does not use, and the
 * monitor user. Runs on a writable primary whose standby acknowledges, so its statements never
 * wait on semi-sync.
 */
export async function upgradeShardSchema(primary: Endpoint, secrets: ShardSecrets): Promise<void> {
  await withAdmin(primary, secrets.admin, async (conn) => {
    await ensureSchema(conn);
    for (const [privileges, on] of BROKER_GRANTS) {
      await conn.query(`GRANT ${privileges.join(', ')} ON ${on} TO ?@'%'`, [secrets.broker.user]);
    }
    // Grants older operators gave and nobody uses, each checked first (REVOKE of a grant that is not
    // there fails): the broker's DELETE on the whole queue database (messages included, which only
    // retention deletes; now per bookkeeping table) ...
    const [db] = await queryRows(
      conn,
      `SELECT Delete_priv AS d FROM mysql.db WHERE User = ? AND Host = '%' AND Db = ?`,
      [secrets.broker.user, QUEUE_DATABASE],
    );
    if (db?.d === 'Y')
      await conn.query(`REVOKE DELETE ON ${QUEUE_DATABASE}.* FROM ?@'%'`, [secrets.broker.user]);
    // And the replication user REPLICATION CLIENT, which no replica thread uses.
    const [repl] = await queryRows(
      conn,
      `SELECT Repl_client_priv AS c FROM mysql.user WHERE User = ? AND Host = '%'`,
      [secrets.replication.user],
    );
    if (repl?.c === 'Y')
      await conn.query(`REVOKE REPLICATION CLIENT ON *.* FROM ?@'%'`, [secrets.replication.user]);
    await ensureUser(conn, secrets.monitor, MONITOR_GRANTS);
  });
}

async function ensureSchema(conn: mysql.Connection): Promise<void> {
  const tables = await queryRows(
    conn,
    `SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = ? AND table_name IN (?)`,
    [QUEUE_DATABASE, SCHEMA_TABLES],
  );
  // Columns added after the first release: their ALTERs run on shards bootstrapped before them.
  const added = await queryRows(
    conn,
    `SELECT 1 FROM information_schema.columns WHERE table_schema = ?
       AND ((table_name = 'topics' AND column_name IN ('settings', 'deleted_through'))
         OR (table_name = 'group_offsets' AND column_name = 'generation'))`,
    [QUEUE_DATABASE],
  );
  if (Number(tables[0]?.n) === SCHEMA_TABLES.length && added.length === 3) return;
  for (const statement of SCHEMA_STATEMENTS) await conn.query(statement);
}

/** Turns on lossless semi-sync (AFTER_SYNC) on the primary with the given policy. */
export async function configurePrimarySemiSync(
  primary: Endpoint,
  admin: Credentials,
  policy: SemiSyncPolicy,
): Promise<void> {
  await withAdmin(primary, admin, async (conn) => {
    await conn.query(`SET GLOBAL rpl_semi_sync_master_wait_point = 'AFTER_SYNC'`);
    await conn.query(`SET GLOBAL rpl_semi_sync_master_timeout = ?`, [policy.timeoutMs]);
    await conn.query(`SET GLOBAL rpl_semi_sync_master_wait_no_slave = ?`, [
      policy.waitWithoutStandby ? 'ON' : 'OFF',
    ]);
    await conn.query(`SET GLOBAL rpl_semi_sync_master_enabled = ON`);
  });
}

/**
 * Makes `standby` a read-only, semi-sync GTID replica of `primary` (as the standby reaches it).
 * Leaves a replica that already follows the same primary and runs untouched.
 */
export async function attachStandby(
  standby: Endpoint,
  primary: Endpoint,
  secrets: ShardSecrets,
): Promise<void> {
  await withAdmin(standby, secrets.admin, async (conn) => {
    await conn.query(`SET GLOBAL read_only = ON`);
    // A standby that was promoted once (a switchover cut short) still waits, as a primary, for an
    // acknowledgement of every transaction its SQL thread writes to its own binlog: nobody sends one.
    await conn.query(`SET GLOBAL rpl_semi_sync_master_enabled = OFF`);
    const [status] = await queryRows(conn, 'SHOW SLAVE STATUS');
    const following =
      status &&
      status.Master_Host === primary.host &&
      Number(status.Master_Port) === primary.port &&
      (status.Master_SSL_Allowed === 'Yes') === Boolean(secrets.replicationTls) &&
      status.Slave_IO_Running === 'Yes' &&
      status.Slave_SQL_Running === 'Yes';
    if (following) {
      // A replica that connected while semi-sync was off (on either side) replicates asynchronously
      // until its IO thread reconnects: the primary would wait for an acknowledgement forever.
      const [semi] = await queryRows(conn, `SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_slave_status'`);
      if (semi?.Value === 'ON') return;
      await conn.query(`SET GLOBAL rpl_semi_sync_slave_enabled = ON`);
      await conn.query('STOP SLAVE IO_THREAD');
      await conn.query('START SLAVE IO_THREAD');
      return;
    }
    if (status) await conn.query('STOP SLAVE');
    // Semi-sync is negotiated when the IO thread connects, so enable it before START SLAVE.
    await conn.query(`SET GLOBAL rpl_semi_sync_slave_enabled = ON`);
    const tls = replicationTlsClause(secrets.replicationTls ? await ownCaFile(conn, standby) : undefined);
    await conn.query(
      `CHANGE MASTER TO MASTER_HOST = ?, MASTER_PORT = ?, MASTER_USER = ?, MASTER_PASSWORD = ?,
         MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1, MASTER_HEARTBEAT_PERIOD = 1${tls.sql}`,
      [primary.host, primary.port, secrets.replication.user, secrets.replication.password, ...tls.params],
    );
    await conn.query('START SLAVE');
  });
}

/**
 * The CHANGE MASTER options of a replica of a primary that requires TLS: encrypted, and the
 * primary's certificate checked against the CA (a CA file turns on the chain check). Not
 * MASTER_SSL_VERIFY_SERVER_CERT: it compares the certificate with MASTER_HOST, a pod IP that no
 * certificate issued before the Pod can name; the chain check already refuses any server without a
 * certificate from the cluster's CA. Empty without a CA file: a plain replica, as before TLS.
 */
export function replicationTlsClause(caFile: string | undefined): { sql: string; params: string[] } {
  if (!caFile) return { sql: '', params: [] };
  return { sql: ', MASTER_SSL = 1, MASTER_SSL_CA = ?, MASTER_SSL_VERIFY_SERVER_CERT = 0', params: [caFile] };
}

/** The CA file an instance serves TLS with; it must have one when the cluster requires TLS. */
async function ownCaFile(conn: mysql.Connection, instance: Endpoint): Promise<string> {
  const [row] = await queryRows(conn, 'SELECT @@GLOBAL.ssl_ca AS ca');
  const ca = typeof row?.ca === 'string' ? row.ca : '';
  if (!ca)
    throw new Error(
      `instance ${instance.host}:${instance.port} has no ssl_ca: it was started without spec.mysql.tls's certificate, so it cannot check its primary's`,
    );
  return ca;
}

/** Opens or closes an instance to writes by users without admin rights (the broker). */
export async function setReadOnly(endpoint: Endpoint, admin: Credentials, readOnly: boolean): Promise<void> {
  await withAdmin(endpoint, admin, (conn) =>
    conn.query(`SET GLOBAL read_only = ?`, [readOnly ? 'ON' : 'OFF']),
  );
}

/** Waits until the primary counts at least one semi-sync standby; false on timeout. */
export async function waitForSemiSyncStandby(
  primary: Endpoint,
  admin: Credentials,
  timeoutMs: number,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  return withAdmin(primary, admin, async (conn) => {
    for (;;) {
      const rows = await queryRows(conn, `SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_clients'`);
      if (Number(rows[0]?.Value) >= 1) return true;
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 100));
    }
  });
}

/**
 * The whole bootstrap of a fresh or existing shard, in order: schema and users on the primary,
 * semi-sync on the primary, the standby attached, then writes opened on the primary once the
 * standby acknowledges. Idempotent.
 */
export async function bootstrapShard(
  primary: Endpoint,
  standby: Endpoint,
  secrets: ShardSecrets,
  policy: SemiSyncPolicy = REQUIRED_SEMI_SYNC,
  standbyWaitMs = 30_000,
): Promise<void> {
  await bootstrapPrimary(primary, secrets);
  await configurePrimarySemiSync(primary, secrets.admin, policy);
  await attachStandby(standby, primary, secrets);
  if (!(await waitForSemiSyncStandby(primary, secrets.admin, standbyWaitMs))) {
    throw new Error(`standby ${standby.host}:${standby.port} did not connect as a semi-sync replica`);
  }
  await setReadOnly(primary, secrets.admin, false);
}
