import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { REQUIRED_SEMI_SYNC, attachStandby, setReadOnly } from '../../src/shard/bootstrap.js';
import { queryRows, withAdmin } from '../../src/shard/connection.js';
import { promoteStandby } from '../../src/shard/promote.js';
import {
  type ManagerPolicy,
  type ObservedShard,
  type ShardOutcome,
  ShardManager,
} from '../../src/operator/shards/manager.js';
import { generateSecrets } from '../../tools/local/cluster.js';
import { instanceInitFile } from '../../src/shard/accounts.js';
import { LocalMariaDb } from '../../tools/local/mariadbd.js';

/**
 * An operator killed in the middle of a planned switchover (issue 11): the swap's steps run against
 * real mariadbd up to a cut point, then a new operator (a fresh ShardManager that knows only what
 * the last status said: the old primary) must bring the shard back to one writable primary and a
 * following standby by itself, with every committed row on both.
 */
const secrets = generateSecrets();
const policy: ManagerPolicy = {
  durability: 'required',
  failureThreshold: 3,
  promoteStandbyForReads: true,
  promoteForWritesAfterMs: null,
  cloneAgentPort: null,
  semiSyncTimeoutMs: 5000,
};
const log = createLogger('test', 'error');
let dbs: LocalMariaDb[] = [];
let manager = new ShardManager(secrets, log, 1000);
let last: ShardOutcome[] = [];
let rows = 0;

const observe = (): ObservedShard[] => [
  {
    name: 'shard-0',
    instances: dbs.map((db, index) => ({
      index,
      podName: `shard-0-${index}`,
      podIP: db.endpoint.host,
      podPhase: 'Running',
      podReady: true,
      deleting: false,
    })),
  },
];

const sql = (db: LocalMariaDb, text: string) =>
  withAdmin(db.endpoint, secrets.admin, (c) => queryRows(c, text));

async function tickUntilHealthy(timeoutMs = 30_000): Promise<void> {
  const start = Date.now();
  for (;;) {
    last = await manager.tick(observe(), policy);
    const o = last[0];
    if (o.decision.memory.phase === 'Healthy' && o.decision.actions.length === 0 && !o.actionError) return;
    if (Date.now() - start > timeoutMs)
      throw new Error(
        `not healthy: ${o.decision.memory.phase}, ${o.decision.message}, ${o.actionError ?? ''}`,
      );
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** One writable instance, routed to; the other follows it and holds every row. */
async function assertOnePrimaryAndAStandbyWithEveryRow(): Promise<LocalMariaDb> {
  const primaryIndex = last[0].decision.memory.primaryIndex;
  const [primary, standby] = [dbs[primaryIndex], dbs[1 - primaryIndex]];
  expect(last[0].route.write?.host).toBe(primary.endpoint.host);
  expect(Number((await sql(primary, 'SELECT @@read_only AS ro'))[0]!.ro)).toBe(0);
  expect(Number((await sql(standby, 'SELECT @@read_only AS ro'))[0]!.ro)).toBe(1);
  expect(await sql(primary, 'SHOW SLAVE STATUS')).toEqual([]);
  const [replica] = await sql(standby, 'SHOW SLAVE STATUS');
  expect(replica).toMatchObject({
    Master_Host: primary.endpoint.host,
    Slave_IO_Running: 'Yes',
    Slave_SQL_Running: 'Yes',
  });
  // A write on the primary reaches the standby: replication flows the new way round.
  await sql(primary, `INSERT INTO mq.switch_rows VALUES (${++rows})`);
  const [pos] = await sql(primary, 'SELECT @@gtid_binlog_pos AS pos');
  const [wait] = await sql(standby, `SELECT MASTER_GTID_WAIT('${String(pos!.pos)}', 10) AS r`);
  expect(Number(wait!.r)).toBe(0);
  for (const db of dbs) {
    expect(Number((await sql(db, 'SELECT COUNT(*) AS n FROM mq.switch_rows'))[0]!.n)).toBe(rows);
  }
  return primary;
}

/** The steps of `switchover` (src/shard/switchover.ts), each a place where an operator can die. */
const STEPS = ['fence', 'promote', 'rejoin', 'openWrites'] as const;

async function switchoverUntil(step: (typeof STEPS)[number], from: LocalMariaDb, to: LocalMariaDb) {
  await sql(from, 'SET GLOBAL read_only = ON');
  if (step === 'fence') return;
  await promoteStandby(to.endpoint, secrets.admin, REQUIRED_SEMI_SYNC);
  if (step === 'promote') return;
  await withAdmin(from.endpoint, secrets.admin, async (conn) => {
    await conn.query('STOP SLAVE');
    await conn.query('RESET SLAVE ALL');
    await conn.query('SET GLOBAL rpl_semi_sync_master_enabled = OFF');
    await conn.query('SET GLOBAL gtid_slave_pos = @@gtid_binlog_pos');
  });
  await attachStandby(from.endpoint, to.endpoint, secrets);
  if (step === 'rejoin') return;
  await setReadOnly(to.endpoint, secrets.admin, false);
}

beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mq-switchover-cut-'));
  dbs = await Promise.all(
    [0, 1].map((i) =>
      LocalMariaDb.start({
        dir: join(dir, `i${i}`),
        host: `127.0.27.${i + 1}`,
        serverId: i + 1,
        admin: secrets.admin,
        // The admin and monitor users, as a Pod's init file creates them.
        initSql: instanceInitFile(secrets.admin, secrets.monitor),
      }),
    ),
  );
  await tickUntilHealthy();
  const primary = dbs[last[0].decision.memory.primaryIndex];
  await sql(primary, 'CREATE TABLE mq.switch_rows (i INT PRIMARY KEY)');
  await assertOnePrimaryAndAStandbyWithEveryRow();
}, 60_000);

afterAll(async () => {
  await Promise.all(dbs.map((db) => db.destroy()));
});

describe('an operator killed mid-switchover', () => {
  for (const step of STEPS) {
    it(`recovers by itself when it died after "${step}"`, async () => {
      const remembered = manager.memoryOf('shard-0');
      const from = dbs[remembered.primaryIndex];
      const to = dbs[1 - remembered.primaryIndex];
      await switchoverUntil(step, from, to);
      // The new operator starts from the status the old one wrote before the swap.
      manager = new ShardManager(secrets, log, 1000);
      manager.remember('shard-0', remembered);
      await tickUntilHealthy();
      const primary = await assertOnePrimaryAndAStandbyWithEveryRow();
      // Once the standby took over (it replicates from nobody and the old primary follows it),
      // the operator keeps it as the primary rather than turning the roles back.
      if (step === 'rejoin' || step === 'openWrites') expect(primary).toBe(to);
    }, 60_000);
  }
});
