import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dataDirState, planSeed, pullAndSeed } from '../../src/agent/seed.js';
import { agentServer } from '../../src/agent/server.js';
import { agentToken } from '../../src/agent/token.js';
import { createLogger } from '../../src/common/logger.js';
import { generateSecrets } from '../../tools/local/cluster.js';
import { LocalMariaDb } from '../../tools/local/mariadbd.js';
import {
  REQUIRED_SEMI_SYNC,
  attachStandby,
  bootstrapShard,
  configurePrimarySemiSync,
} from '../../src/shard/bootstrap.js';
import { ADMIN_GRANTS } from '../../src/shard/accounts.js';
import { streamBackup } from '../../src/shard/clone.js';
import { queryRows, withAdmin } from '../../src/shard/connection.js';

/**
 * Rebuild by physical clone on real mariadbd: a standby whose data directory is gone is seeded from
 * its primary's agent with mariadb-backup while the primary keeps taking writes, after the primary
 * purged the binlogs a replay from scratch would need, and then replicates from the right GTID.
 */
const secrets = generateSecrets();
const log = createLogger('test', 'error');
const token = agentToken(secrets.admin.password);
let dir: string;
let primary: LocalMariaDb;
let standby: LocalMariaDb;
let agent: Server;
let agentAddress: string;

const count = async (db: LocalMariaDb) =>
  withAdmin(db.endpoint, secrets.admin, async (c) => {
    const [row] = await queryRows(
      c,
      'SELECT COUNT(*) AS n, COALESCE(SUM(CRC32(body)), 0) AS crc FROM mq.bulk',
    );
    return { n: Number(row!.n), crc: String(row!.crc) };
  });

async function insertRows(db: LocalMariaDb, batches: number, perBatch = 200): Promise<void> {
  await withAdmin(db.endpoint, secrets.admin, async (c) => {
    for (let b = 0; b < batches; b++) {
      const values = Array.from({ length: perBatch }, () => '(RANDOM_BYTES(1000))').join(',');
      await c.query(`INSERT INTO mq.bulk (body) VALUES ${values}`);
    }
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mq-clone-'));
  primary = await LocalMariaDb.start({
    dir: join(dir, 'p'),
    host: '127.0.81.1',
    serverId: 1,
    admin: secrets.admin,
  });
  standby = await LocalMariaDb.start({
    dir: join(dir, 's'),
    host: '127.0.81.2',
    serverId: 2,
    admin: secrets.admin,
  });
  // "preferred" semi-sync: the primary keeps committing while its standby is away.
  await bootstrapShard(primary.endpoint, standby.endpoint, secrets, {
    timeoutMs: 500,
    waitWithoutStandby: false,
  });
  await withAdmin(primary.endpoint, secrets.admin, (c) =>
    c.query('CREATE TABLE mq.bulk (id BIGINT AUTO_INCREMENT PRIMARY KEY, body VARBINARY(1000) NOT NULL)'),
  );
  agent = agentServer({
    token,
    log,
    source: {
      endpoint: primary.endpoint,
      admin: secrets.admin,
      dataDir: join(dir, 'p', 'data'),
      workDir: join(dir, 'agent-work'),
    },
  });
  await new Promise<void>((resolve) => agent.listen(9080, '127.0.81.1', resolve));
  agentAddress = `127.0.81.1:${(agent.address() as AddressInfo).port}`;
}, 120_000);

afterAll(async () => {
  agent?.close();
  await primary?.kill();
  await standby?.kill();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('rebuild by physical clone', () => {
  it('refuses a copy without the agent token', async () => {
    const res = await fetch(`http://${agentAddress}/v1/clone`, { headers: { authorization: 'Bearer nope' } });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ code: 'unauthorized' });
  });

  it('re-seeds a standby whose volume is lost, after the binlogs it would replay are purged', async () => {
    await insertRows(primary, 50); // 10,000 rows of 1 kB
    await standby.kill();
    const dataDir = join(dir, 's', 'data');
    await rm(dataDir, { recursive: true, force: true });
    // The history a fresh standby would replay is gone.
    await withAdmin(primary.endpoint, secrets.admin, async (c) => {
      await c.query('FLUSH BINARY LOGS');
      const [last] = (await queryRows(c, 'SHOW BINARY LOGS')).slice(-1);
      await c.query(`PURGE BINARY LOGS TO '${String(last!.Log_name)}'`);
    });

    const state = await dataDirState(dataDir);
    expect(planSeed(state, { source: agentAddress, id: '' })).toMatchObject({ seed: true });
    // Writes go on during the copy: the copy is consistent at one GTID, and replication brings the rest.
    let writing = true;
    const writer = (async () => {
      while (writing) await insertRows(primary, 1, 50);
    })();
    const started = Date.now();
    const marker = await pullAndSeed({
      source: agentAddress,
      id: '',
      token,
      dataDir,
      workDir: join(dir, 'seed-work'),
    });
    writing = false;
    await writer;
    expect(marker.gtid).toMatch(/^0-1-\d+$/);

    await standby.restart();
    const slavePos = await withAdmin(standby.endpoint, secrets.admin, async (c) => {
      const [row] = await queryRows(c, 'SELECT @@gtid_slave_pos AS pos');
      return String(row!.pos);
    });
    expect(slavePos).toBe(marker.gtid);
    await attachStandby(standby.endpoint, primary.endpoint, secrets);
    await insertRows(primary, 5);

    const want = await count(primary);
    let got = await count(standby);
    for (let i = 0; i < 300 && (got.n !== want.n || got.crc !== want.crc); i++) {
      await new Promise((r) => setTimeout(r, 100));
      got = await count(standby);
    }
    expect(got).toEqual(want);
    const status = await withAdmin(standby.endpoint, secrets.admin, (c) => queryRows(c, 'SHOW SLAVE STATUS'));
    expect(status[0]).toMatchObject({ Slave_IO_Running: 'Yes', Slave_SQL_Running: 'Yes', Last_IO_Errno: 0 });
    console.log(`rebuilt a standby of ${want.n} rows in ${Date.now() - started} ms`);

    // Restarting the seeded instance keeps its data: the init step sees nothing to do.
    expect(planSeed(await dataDirState(dataDir), { source: agentAddress, id: '' })).toMatchObject({
      seed: false,
    });
  }, 180_000);

  it('copies a "required" primary whose commit waits for the lost standby, and loses nothing', async () => {
    await configurePrimarySemiSync(primary.endpoint, secrets.admin, REQUIRED_SEMI_SYNC);
    await standby.kill();
    const dataDir = join(dir, 's', 'data');
    await rm(dataDir, { recursive: true, force: true });
    // Written to the binlog, waiting for an acknowledgement no standby can give (AFTER_SYNC): it is
    // not committed in InnoDB, so not in the copy; replication must bring it. A copy under backup
    // locks would wait for this commit forever.
    // Several at once: the later ones queue behind the first in the binlog group commit, which
    // also blocks SHOW MASTER STATUS.
    const waiting = Promise.all(
      [1, 2, 3].map((n) =>
        withAdmin(primary.endpoint, secrets.admin, (c) =>
          c.query(`INSERT INTO mq.bulk (body) VALUES ('waiting for the standby ${n}')`),
        ),
      ),
    );
    await new Promise((r) => setTimeout(r, 300));
    const marker = await pullAndSeed({
      source: agentAddress,
      id: 'rebuild-2',
      token,
      dataDir,
      workDir: join(dir, 'seed-work'),
    });
    expect(marker.id).toBe('rebuild-2');
    await standby.restart();
    await attachStandby(standby.endpoint, primary.endpoint, secrets);
    await waiting; // acknowledged by the rebuilt standby
    const want = await count(primary);
    let got = await count(standby);
    for (let i = 0; i < 300 && (got.n !== want.n || got.crc !== want.crc); i++) {
      await new Promise((r) => setTimeout(r, 100));
      got = await count(standby);
    }
    expect(got).toEqual(want);
    const rows = await withAdmin(standby.endpoint, secrets.admin, (c) =>
      queryRows(c, `SELECT COUNT(*) AS n FROM mq.bulk WHERE body LIKE 'waiting for the standby %'`),
    );
    expect(Number(rows[0]!.n)).toBe(3);
  }, 180_000);

  it("fails a copy when the server refuses one of mariadb-backup's statements, which mariadb-backup itself lets pass", async () => {
    // The admin's rights but RELOAD: mariadb-backup's FLUSH ENGINE LOGS is refused, and it would
    // still exit 0 with "completed OK!".
    const user = { user: 'mq_no_reload', password: 'no-reload' };
    await primary.asRoot(async (c) => {
      await c.query('SET SESSION sql_log_bin = 0');
      await c.query(`CREATE USER ?@'%' IDENTIFIED BY ?`, [user.user, user.password]);
      for (const [privileges, on] of ADMIN_GRANTS) {
        const kept = privileges.filter((p) => p !== 'RELOAD');
        await c.query(`GRANT ${kept.join(', ')} ON ${on} TO ?@'%'`, [user.user]);
      }
    });
    const backup = await streamBackup({
      endpoint: primary.endpoint,
      admin: user,
      dataDir: join(dir, 'p', 'data'),
      workDir: join(dir, 'refused-work'),
    });
    backup.stream.resume();
    await expect(backup.done).rejects.toThrow(
      /the server refused it .*FLUSH NO_WRITE_TO_BINLOG ENGINE LOGS: Access denied; you need .*RELOAD/,
    );
  }, 60_000);
});
