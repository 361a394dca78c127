/**
 * MariaDB accounts (issue 14, items 3 and 5; docs/security.md, "MariaDB accounts") on real
 * mariadbd: instances started as the operator's Pods start them (root on localhost only, the init
 * file with the admin and monitor users), and one initialised the old way (root@'%') upgraded.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTopic, deleteGroupOffset, insertMessages } from '../../src/broker/queue-store.js';
import { generateCredentials, shardSecrets } from '../../src/operator/desired/credentials.js';
import { dropTopic, ensureTopic } from '../../src/operator/topics/sql.js';
import { ensureLocalAccounts, instanceInitFile } from '../../src/shard/accounts.js';
import {
  type ShardSecrets,
  REQUIRED_SEMI_SYNC,
  bootstrapShard,
  upgradeShardSchema,
} from '../../src/shard/bootstrap.js';
import { type Credentials, connectionOptions, queryRows, withAdmin } from '../../src/shard/connection.js';
import { transactionsBehind } from '../../src/shard/gtid.js';
import { renderMyCnf } from '../../src/shard/mycnf.js';
import { probeInstance } from '../../src/shard/probe.js';
import { deleteThrough, prepareRetentionSession } from '../../src/shard/retention.js';
import { messageTable } from '../../src/shard/schema.js';
import { switchover } from '../../src/shard/switchover.js';
import { LocalMariaDb } from '../../tools/local/mariadbd.js';

const PREFIX = '127.0.170';
const values = generateCredentials();
const secrets: ShardSecrets = shardSecrets(values);

let dir: string;
let primary: LocalMariaDb;
let standby: LocalMariaDb;
let legacy: LocalMariaDb | undefined;

/** An instance as the operator's Pod starts it: MARIADB_ROOT_HOST=localhost and the init file. */
function podInstance(name: string, host: string, serverId: number): Promise<LocalMariaDb> {
  return LocalMariaDb.start({
    dir: join(dir, name),
    host,
    admin: { user: 'root', password: values['root-password'] },
    adminHost: 'localhost',
    initSql: instanceInitFile(secrets.admin, secrets.monitor),
    myCnf: renderMyCnf({ serverId, bindAddress: host, port: 3306 }),
  });
}

async function errnoOf(p: Promise<unknown>): Promise<number | undefined> {
  try {
    await p;
  } catch (err) {
    return (err as { errno?: number }).errno;
  }
  throw new Error('expected a refusal');
}

/** `ADMIN_GRANTS` and `ADMIN_READS` as MariaDB 10.11 lists them, sorted. */
const ADMIN_SHOW_GRANTS = [
  'GRANT RELOAD, PROCESS, REPLICATION SLAVE, BINLOG MONITOR, CREATE USER, CONNECTION ADMIN, READ_ONLY ADMIN, ' +
    'REPLICATION SLAVE ADMIN, REPLICATION MASTER ADMIN, BINLOG ADMIN, SLAVE MONITOR ON *.* TO `mysqlmq-admin`@`%` WITH GRANT OPTION',
  'GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER ON `mq`.* TO `mysqlmq-admin`@`%` WITH GRANT OPTION',
  'GRANT SELECT ON `performance_schema`.* TO `mysqlmq-admin`@`%` WITH GRANT OPTION',
  'GRANT SELECT (`Host`, `User`, `Delete_priv`, `Db`) ON `mysql`.`db` TO `mysqlmq-admin`@`%`',
  'GRANT SELECT (`Repl_client_priv`, `User`, `Host`) ON `mysql`.`user` TO `mysqlmq-admin`@`%`',
].sort();

/** The admin's grants as SHOW GRANTS lists them (sorted: tables come in hash order), without its password hash. */
const adminGrants = (db: LocalMariaDb) =>
  db.asRoot(async (c) =>
    (await queryRows(c, `SHOW GRANTS FOR 'mysqlmq-admin'@'%'`))
      .map((r) => String(Object.values(r)[0]).replace(/ IDENTIFIED BY PASSWORD '[^']*'/, ''))
      .sort(),
  );

const connect = (db: LocalMariaDb, creds: Credentials) =>
  mysql.createConnection({ ...connectionOptions(db.endpoint, creds), connectTimeout: 3000 });

/** Until the standby has applied everything its primary wrote. */
async function waitForStandby(): Promise<void> {
  const target = (await probeInstance(primary.endpoint, secrets.monitor)).gtidBinlogPos;
  for (let i = 0; i < 100; i++) {
    const applied = (await probeInstance(standby.endpoint, secrets.monitor)).gtidCurrentPos;
    if (transactionsBehind(target, applied) === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the standby did not catch up');
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mq-accounts-'));
  [primary, standby] = await Promise.all([
    podInstance('p', `${PREFIX}.1`, 1),
    podInstance('s', `${PREFIX}.2`, 2),
  ]);
}, 120_000);

afterAll(async () => {
  await Promise.all([primary?.kill(), standby?.kill(), legacy?.kill()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('MariaDB accounts', () => {
  it('refuses root over TCP; root works on the unix socket only', async () => {
    for (const db of [primary, standby]) {
      // A TCP client from a loopback address (127.0.0.1, the source Linux picks for 127.0.170.x):
      // with skip_name_resolve it is not "localhost".
      expect(await errnoOf(connect(db, { user: 'root', password: values['root-password'] }))).toBe(1045);
      expect(await errnoOf(connect(db, { user: 'root', password: values['admin-password'] }))).toBe(1045);
      const users = await withAdmin(db.endpoint, secrets.admin, (c) =>
        queryRows(c, `SELECT User AS user, Host AS host FROM mysql.user WHERE User = 'root'`),
      );
      expect(users).toEqual([{ user: 'root', host: 'localhost' }]);
    }
    const socket = await mysql.createConnection({
      socketPath: join(dir, 'p', 'mysqld.sock'),
      user: 'root',
      password: values['root-password'],
    });
    await socket.end();
  });

  it('lets the admin user bootstrap, switch over, manage topics, delete for retention and purge binlogs', async () => {
    await bootstrapShard(primary.endpoint, standby.endpoint, secrets, REQUIRED_SEMI_SYNC, 10_000);
    const grants = await primary.asRoot((c) => queryRows(c, `SHOW GRANTS FOR 'mq_broker'@'%'`));
    expect(JSON.stringify(grants)).toContain('GRANT SELECT, INSERT, UPDATE, CREATE ON `mq`.*');

    await withAdmin(primary.endpoint, secrets.admin, async (c) => {
      await ensureTopic(c, 'orders', null);
      const [row] = await queryRows(c, `SELECT id FROM mq.topics WHERE name = 'orders'`);
      const id = Number(row!.id);
      await c.query(`INSERT INTO ${messageTable(id)} (published_at, payload) VALUES (1, 'a'), (2, 'b')`);
      expect(await prepareRetentionSession(c)).toBe(true);
      expect(await deleteThrough(c, id, 0, 1)).toBe(1);
      await dropTopic(c, 'orders');
      await c.query('FLUSH BINARY LOGS');
      const logs = await queryRows(c, 'SHOW BINARY LOGS');
      await c.query(`PURGE BINARY LOGS TO '${String(logs.at(-1)!.Log_name)}'`);
    });

    // read_only, semi-sync, CHANGE MASTER on both sides, and back.
    await switchover(primary.endpoint, standby.endpoint, secrets, REQUIRED_SEMI_SYNC);
    expect((await probeInstance(primary.endpoint, secrets.monitor)).replica).toMatchObject({
      sourceHost: standby.endpoint.host,
      ioRunning: true,
      sqlRunning: true,
    });
    await switchover(standby.endpoint, primary.endpoint, secrets, REQUIRED_SEMI_SYNC);
  }, 60_000);

  it('gives the admin user exactly its list of rights: no FILE, SHUTDOWN or SUPER', async () => {
    for (const db of [primary, standby]) expect(await adminGrants(db)).toEqual(ADMIN_SHOW_GRANTS);
    const conn = await connect(primary, secrets.admin);
    try {
      expect(await errnoOf(conn.query('CREATE DATABASE elsewhere'))).toBe(1044);
      expect(await errnoOf(conn.query(`SELECT 1 INTO OUTFILE '/tmp/mq-accounts-outfile'`))).toBe(1227);
      expect(await errnoOf(conn.query('SHUTDOWN'))).toBe(1227);
      expect(await errnoOf(conn.query('SET GLOBAL innodb_flush_log_at_trx_commit = 2'))).toBe(1227);
      expect(await errnoOf(conn.query('SELECT authentication_string FROM mysql.user'))).toBe(1143);
      expect(await errnoOf(conn.query('SELECT * FROM mysql.global_priv'))).toBe(1142);
    } finally {
      await conn.end();
    }
  });

  it('lets the monitor user probe both instances and nothing else', async () => {
    const onPrimary = await probeInstance(primary.endpoint, secrets.monitor);
    expect(onPrimary).toMatchObject({ readOnly: false, semiSyncPrimaryActive: true, semiSyncStandbys: 1 });
    const onStandby = await probeInstance(standby.endpoint, secrets.monitor);
    expect(onStandby).toMatchObject({ readOnly: true });
    expect(onStandby.replica).toMatchObject({ sourceHost: primary.endpoint.host, ioRunning: true });

    const conn = await connect(primary, secrets.monitor);
    try {
      expect(await errnoOf(conn.query(`INSERT INTO mq.topics (name) VALUES ('x')`))).toBe(1142);
      expect(await errnoOf(conn.query('SELECT * FROM mq.topics'))).toBe(1142);
      expect(await errnoOf(conn.query('SET GLOBAL read_only = ON'))).toBe(1227);
      expect(await errnoOf(conn.query('STOP SLAVE'))).toBe(1227);
      expect(await errnoOf(conn.query(`CREATE USER 'x'@'%'`))).toBe(1227);
    } finally {
      await conn.end();
    }
  });

  it('gives the broker no DELETE on messages, only on the bookkeeping it clears', async () => {
    const pool = mysql.createPool({
      ...connectionOptions(primary.endpoint, secrets.broker),
      connectionLimit: 2,
    });
    try {
      const id = await createTopic(pool, 'payments');
      await insertMessages(pool, id, ['one', 'two']);
      expect(await errnoOf(pool.query(`DELETE FROM ${messageTable(id)} WHERE id = 1`))).toBe(1142);
      expect(await errnoOf(pool.query(`DROP TABLE ${messageTable(id)}`))).toBe(1142);
      expect(await errnoOf(pool.query('DELETE FROM mq.topics'))).toBe(1142);
      await pool.query(
        `INSERT INTO mq.group_offsets (group_name, topic_id, committed_id) VALUES ('g', ?, 1)`,
        [id],
      );
      expect(await deleteGroupOffset(pool, 'g', id)).toBe(true);

      // A shard an older operator bootstrapped gave the broker DELETE on all of mq: the upgrade revokes it.
      // ... and the replication user REPLICATION CLIENT: the upgrade revokes both, on both instances.
      await withAdmin(primary.endpoint, secrets.admin, async (c) => {
        await c.query(`GRANT DELETE ON mq.* TO 'mq_broker'@'%'`);
        await c.query(`GRANT REPLICATION CLIENT ON *.* TO 'mq_repl'@'%'`);
      });
      await upgradeShardSchema(primary.endpoint, secrets);
      await upgradeShardSchema(primary.endpoint, secrets);
      expect(await errnoOf(pool.query(`DELETE FROM ${messageTable(id)} WHERE id = 1`))).toBe(1142);
      await waitForStandby();
      for (const db of [primary, standby]) {
        const grants = await db.asRoot(async (c) => [
          ...(await queryRows(c, `SHOW GRANTS FOR 'mq_broker'@'%'`)),
          ...(await queryRows(c, `SHOW GRANTS FOR 'mq_repl'@'%'`)),
        ]);
        const text = JSON.stringify(grants);
        expect(text).not.toMatch(/DELETE ON `mq`\.\*|REPLICATION CLIENT/);
        expect(text).toContain('GRANT REPLICATION SLAVE ON *.*');
      }
    } finally {
      await pool.end();
    }
  });

  it('upgrades an instance an older operator initialised: accounts through root@%, then root@% gone at its next start', async () => {
    const host = `${PREFIX}.3`;
    const options = {
      dir: join(dir, 'legacy'),
      host,
      myCnf: renderMyCnf({ serverId: 3, bindAddress: host, port: 3306 }),
    };
    // The older Pod: MARIADB_ROOT_HOST=% with the admin password, no init file.
    legacy = await LocalMariaDb.start({
      ...options,
      admin: { user: 'root', password: values['admin-password'] },
    });
    expect(await errnoOf(connect(legacy, secrets.admin))).toBe(1698); // an unknown user
    expect(await ensureLocalAccounts(legacy.endpoint, secrets)).toBe(true);
    expect(await ensureLocalAccounts(legacy.endpoint, secrets)).toBe(false);
    expect((await probeInstance(legacy.endpoint, secrets.monitor)).serverId).toBe(3);
    // Kept out of the binlog: no GTID of its own that a future primary or standby would lack.
    const [gtid] = await withAdmin(legacy.endpoint, secrets.admin, (c) =>
      queryRows(c, 'SELECT @@gtid_binlog_pos AS pos'),
    );
    expect(gtid!.pos).toBe('');

    // The roll: the same data started as the new Pod starts it.
    await legacy.stop();
    legacy = await LocalMariaDb.start({
      ...options,
      admin: { user: 'root', password: values['root-password'] },
      adminHost: 'localhost',
      initSql: instanceInitFile(secrets.admin, secrets.monitor),
    });
    expect(await errnoOf(connect(legacy, { user: 'root', password: values['admin-password'] }))).toBe(1045);
    const users = await withAdmin(legacy.endpoint, secrets.admin, (c) =>
      queryRows(c, `SELECT Host AS host FROM mysql.user WHERE User = 'root'`),
    );
    expect(users).toEqual([{ host: 'localhost' }]);
  }, 60_000);

  it('narrows an admin user with ALL PRIVILEGES, and a monitor user with more, at the next start', async () => {
    const host = `${PREFIX}.4`;
    const options = {
      dir: join(dir, 'all-privileges'),
      host,
      admin: { user: 'root', password: values['root-password'] },
      adminHost: 'localhost',
      myCnf: renderMyCnf({ serverId: 4, bindAddress: host, port: 3306 }),
    };
    // The init file of the operator before this one: the admin user with everything.
    let db = await LocalMariaDb.start({
      ...options,
      initSql: [
        'SET SESSION sql_log_bin = 0;',
        `CREATE USER IF NOT EXISTS 'mysqlmq-admin'@'%' IDENTIFIED BY '${values['admin-password']}';`,
        `GRANT ALL PRIVILEGES ON *.* TO 'mysqlmq-admin'@'%' WITH GRANT OPTION;`,
        `CREATE USER IF NOT EXISTS 'mq_monitor'@'%' IDENTIFIED BY '${values['monitor-password']}';`,
        `GRANT PROCESS, REPLICATION CLIENT, SLAVE MONITOR ON *.* TO 'mq_monitor'@'%';`,
      ].join('\n'),
    });
    try {
      expect(await adminGrants(db)).toEqual([
        `GRANT ALL PRIVILEGES ON *.* TO \`mysqlmq-admin\`@\`%\` WITH GRANT OPTION`,
      ]);
      // A right added by hand (locally, as the init file writes).
      await db.asRoot(async (c) => {
        await c.query('SET SESSION sql_log_bin = 0');
        await c.query(`GRANT SELECT ON mq.* TO 'mq_monitor'@'%'`);
      });
      await db.stop();
      db = await LocalMariaDb.start({
        ...options,
        initSql: instanceInitFile(secrets.admin, secrets.monitor),
      });
      expect(await adminGrants(db)).toEqual(ADMIN_SHOW_GRANTS);
      const monitor = await db.asRoot((c) => queryRows(c, `SHOW GRANTS FOR 'mq_monitor'@'%'`));
      expect(
        monitor.map((r) => String(Object.values(r)[0]).replace(/ IDENTIFIED BY PASSWORD '[^']*'/, '')),
      ).toEqual([
        'GRANT PROCESS, BINLOG MONITOR, SLAVE MONITOR ON *.* TO `mq_monitor`@`%`',
        'GRANT SELECT ON `performance_schema`.* TO `mq_monitor`@`%`',
      ]);
      // Out of the binlog, as before: no GTID of its own.
      const [gtid] = await withAdmin(db.endpoint, secrets.admin, (c) =>
        queryRows(c, 'SELECT @@gtid_binlog_pos AS pos'),
      );
      expect(gtid!.pos).toBe('');
    } finally {
      await db.kill();
    }
  }, 60_000);
});
