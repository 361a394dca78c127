import { type Credentials, type Endpoint, SESSION_SQL_MODE, connectAdmin } from './connection.js';
import { QUEUE_DATABASE } from './schema.js';

/**
 * The accounts each instance holds on its own, outside replication (docs/security.md, "MariaDB
 * accounts"): the operator's and agent's admin user and the probes' monitor user. Every instance
 * needs them before it has a role, so they come from the instance's init file (`init_file` in
 * my.cnf, written by the Pod's seed step from the credentials Secret) and never from the primary.
 */

/** The operator's and the agents' user: replication control, read_only, users, schema, backups. */
export const ADMIN_USER = 'mysqlmq-admin';
/** The health and lag probes' and mysqld_exporter's user: server state only, no queue data. */
export const MONITOR_USER = 'mq_monitor';
/** The user older operators connected as, from the network (`root@'%'` of the image). */
export const LEGACY_ADMIN_USER = 'root';

export type Grants = [privileges: string[], on: string][];

/**
 * MariaDB 10.11's split privileges for the operator's and agents' statements, each one refused
 * without it (checked on mariadbd 10.11; docs/security.md, "Why each grant"). With GRANT OPTION:
 * it grants the other users their rights, which it must hold itself. Not FILE, SHUTDOWN or SUPER.
 */
export const ADMIN_GRANTS: Grants = [
  [
    [
      // CHANGE MASTER, START/STOP SLAVE, gtid_slave_pos, rpl_semi_sync_slave_enabled.
      'REPLICATION SLAVE ADMIN',
      // rpl_semi_sync_master_* (and the semi-sync the promoted standby takes on).
      'REPLICATION MASTER ADMIN',
      // SET GLOBAL read_only, and the schema, users and rebuild wipe written while it is on.
      'READ_ONLY ADMIN',
      // SHOW SLAVE STATUS; granted to the monitor user.
      'SLAVE MONITOR',
      // SHOW BINARY LOGS, SHOW BINLOG EVENTS; granted to the monitor user (as REPLICATION CLIENT).
      'BINLOG MONITOR',
      // PURGE BINARY LOGS, sql_log_bin = 0 (rebuild wipe), binlog_row_image (retention deletes).
      'BINLOG ADMIN',
      // FLUSH BINARY LOGS (archiving), RESET SLAVE ALL (promotion), RESET MASTER (rebuild wipe),
      // mariadb-backup's FLUSH ENGINE LOGS.
      'RELOAD',
      // The broker's connections in the process list (fencing), mariadb-backup's SHOW ENGINE INNODB
      // STATUS; granted to the monitor user.
      'PROCESS',
      // KILL of the broker's connections when fencing a former primary.
      'CONNECTION ADMIN',
      // Granted to the replication user.
      'REPLICATION SLAVE',
      // CREATE USER (bootstrap) and DROP USER (rebuild wipe) of the replication and broker users.
      'CREATE USER',
    ],
    '*.*',
  ],
  // The queue schema, topic tables, retention's deletes, topic deletion and the rebuild wipe.
  [['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'CREATE', 'DROP', 'ALTER'], `${QUEUE_DATABASE}.*`],
  // Granted to the monitor user.
  [['SELECT'], 'performance_schema.*'],
];

/** The columns the schema upgrade reads to decide its REVOKEs (src/shard/bootstrap.ts); no GRANT OPTION. */
export const ADMIN_READS: Grants = [
  [['SELECT (User, Host, Repl_client_priv)'], 'mysql.user'],
  [['SELECT (User, Host, Db, Delete_priv)'], 'mysql.db'],
];

/**
 * What the probes and mysqld_exporter read. Probes: `@@` variables and SHOW GLOBAL STATUS (no
 * right needed), SHOW SLAVE STATUS (SLAVE MONITOR, split off REPLICATION CLIENT in MariaDB 10.5).
 * The exporter also: processlist and InnoDB status (PROCESS), SHOW BINARY LOGS for binlog sizes
 * (REPLICATION CLIENT) and performance_schema. No right on the queue data.
 */
export const MONITOR_GRANTS: Grants = [
  [['PROCESS', 'REPLICATION CLIENT', 'SLAVE MONITOR'], '*.*'],
  [['SELECT'], 'performance_schema.*'],
];

/**
 * A string literal that means the same under any sql_mode: the init file is read with the server's
 * global mode, which `spec.mysql.config` may set to NO_BACKSLASH_ESCAPES. Generated passwords are
 * base64url; a backslash is refused rather than guessed at. Pure.
 */
export function modeProofLiteral(value: string): string {
  if (value.includes('\\')) throw new Error('a MariaDB account name or password may not contain a backslash');
  return `'${value.replace(/'/g, "''")}'`;
}

/**
 * CREATE (if missing) for `creds` from anywhere (`'%'`), then exactly `grants`: whatever it held
 * before (an admin with ALL PRIVILEGES from an older operator, a grant added by hand) is revoked
 * first. Pure.
 */
function accountStatements(
  creds: Pick<Credentials, 'user' | 'password'>,
  grants: Grants,
  { grantOption = false, reads = [] }: { grantOption?: boolean; reads?: Grants } = {},
): string[] {
  const user = `${modeProofLiteral(creds.user)}@'%'`;
  const grant = ([privileges, on]: Grants[number], option: boolean) =>
    `GRANT ${privileges.join(', ')} ON ${on} TO ${user}${option ? ' WITH GRANT OPTION' : ''};`;
  return [
    `CREATE USER IF NOT EXISTS ${user} IDENTIFIED BY ${modeProofLiteral(creds.password)};`,
    `REVOKE ALL PRIVILEGES, GRANT OPTION FROM ${user};`,
    ...grants.map((g) => grant(g, grantOption)),
    ...reads.map((g) => grant(g, false)),
  ];
}

/** The admin user's account statements (`accountStatements`), for test instances too. Pure. */
export function adminAccountStatements(admin: Pick<Credentials, 'user' | 'password'>): string[] {
  return accountStatements(admin, ADMIN_GRANTS, { grantOption: true, reads: ADMIN_READS });
}

/**
 * The statements that give one instance its local accounts, kept out of the binlog: a standby
 * replicating them would fail on users it already has, and GTIDs of their own on either instance
 * would be errant transactions. Pure.
 */
export function localAccountStatements(
  admin: Pick<Credentials, 'user' | 'password'>,
  monitor: Pick<Credentials, 'user' | 'password'>,
): string[] {
  return [
    'SET SESSION sql_log_bin = 0;',
    ...adminAccountStatements(admin),
    ...accountStatements(monitor, MONITOR_GRANTS),
  ];
}

/**
 * The instance's init file (`init_file`), run by mariadbd at every start, before it accepts
 * clients: the local accounts with exactly their grants, and no `root@'%'`. The image's entrypoint
 * creates root only on localhost (MARIADB_ROOT_HOST), but data an older operator initialised, or a
 * restored backup of it, still has `root@'%'` and an admin with ALL PRIVILEGES: running at every
 * start, the file drops the one and narrows the other on upgrade too. Pure.
 */
export function instanceInitFile(
  admin: Pick<Credentials, 'user' | 'password'>,
  monitor: Pick<Credentials, 'user' | 'password'>,
): string {
  return (
    [
      `SET SESSION sql_mode = '${SESSION_SQL_MODE}';`,
      ...localAccountStatements(admin, monitor),
      `DROP USER IF EXISTS '${LEGACY_ADMIN_USER}'@'%';`,
    ].join('\n') + '\n'
  );
}

/**
 * A login refused: 1045, or 1698 (MariaDB's answer for a user it does not know, after the
 * authentication plugin switch it fakes so that unknown users look like known ones).
 */
export const accessDenied = (err: unknown) => [1045, 1698].includes((err as { errno?: number }).errno ?? 0);

/**
 * Makes sure an instance knows the admin user. An instance initialised by an older operator does
 * not (until its Pod is replaced by the roll the new Pod spec causes, and its init file runs):
 * it still has `root@'%'` with the same password, which creates the admin and monitor users there.
 * Returns true when it did. `root@'%'` itself goes at that instance's next start (its init file),
 * because the old Pod's agent still connects as root until then.
 */
export async function ensureLocalAccounts(
  endpoint: Endpoint,
  secrets: { admin: Credentials; monitor: Credentials },
): Promise<boolean> {
  try {
    (await connectAdmin(endpoint, secrets.admin)).destroy();
    return false;
  } catch (err) {
    if (!accessDenied(err)) throw err;
  }
  const conn = await connectAdmin(endpoint, { ...secrets.admin, user: LEGACY_ADMIN_USER });
  try {
    for (const statement of localAccountStatements(secrets.admin, secrets.monitor))
      await conn.query(statement);
  } finally {
    conn.destroy();
  }
  return true;
}
