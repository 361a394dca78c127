/**
 * Rebuild by physical clone on the embedded control plane, under continuous publishing and
 * consuming: a standby whose volume is lost is created again on a new volume and seeded from its
 * primary's agent; a standby with an errant transaction is rebuilt by the shard state machine. After
 * each, the cluster is Ready, the standby follows its primary at the same GTID, every acknowledged
 * message reached every group and no producer saw a failed publish.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_CLUSTER_SPEC as SPEC, clusterManifest } from '../../tools/local/cluster-manifest.js';
import { eventReasons } from '../../tools/local/kubectl.js';
import type { MessageQueueCluster } from '../../src/operator/api/types.js';
import { type Credentials, connectionOptions } from '../../src/shard/connection.js';
import { type Env, type PodJson, conditionOf, startEnv, waitFor } from '../support/operator.js';
import { Workload } from '../support/workload.js';

const NS = 'rebuild';
const NAME = 'q';
const GROUPS = ['g1', 'g2'];
let env: Env;
let admin: Credentials;
let round = 0;

const cluster = (): Promise<MessageQueueCluster> => env.getCluster(NS, NAME);
const clusterEvents = () => eventReasons((args) => env.kubectl(args), NS, NAME);

async function pod(name: string): Promise<PodJson | undefined> {
  const out = await env.kubectl(['get', 'pod', name, '-n', NS, '-o', 'json', '--ignore-not-found']);
  return out.trim() ? (JSON.parse(out) as PodJson) : undefined;
}

async function podByRole(role: 'primary' | 'standby'): Promise<PodJson> {
  const [p] = await env.pods(
    NS,
    `mysqlmq.io/cluster=${NAME},mysqlmq.io/shard=shard-0,mysqlmq.io/role=${role}`,
  );
  if (!p) throw new Error(`no ${role} pod`);
  return p;
}

async function sql(host: string, statement: string): Promise<Record<string, unknown>[]> {
  const conn = await mysql.createConnection(connectionOptions({ host, port: 3306 }, admin));
  try {
    const [rows] = await conn.query(statement);
    return rows as Record<string, unknown>[];
  } finally {
    conn.destroy();
  }
}

async function waitReady(timeoutMs = 240_000): Promise<void> {
  await waitFor(
    'the cluster to be Ready',
    async () => conditionOf(await cluster(), 'Ready')?.status === 'True',
    timeoutMs,
    500,
  );
}

/** The standby follows the primary and has applied everything it has. */
async function standbyInSync(): Promise<void> {
  const [primary, standby] = [await podByRole('primary'), await podByRole('standby')];
  await waitFor(
    'the standby to hold what the primary holds',
    async () => {
      const [p] = await sql(primary.status!.podIP!, 'SELECT @@gtid_binlog_pos AS pos');
      const [s] = await sql(standby.status!.podIP!, 'SELECT @@gtid_current_pos AS pos');
      const [replica] = await sql(standby.status!.podIP!, 'SHOW SLAVE STATUS');
      return replica?.Slave_SQL_Running === 'Yes' && p!.pos === s!.pos;
    },
    60_000,
    500,
  );
}

/** Runs the workload around `fault`; every acknowledged message must reach every group. */
async function underLoad(fault: () => Promise<void>): Promise<void> {
  const workload = await Workload.start({
    client: () => env.brokerClient(NS, NAME),
    topic: 'load',
    groups: GROUPS,
    tag: `r${++round}`,
  });
  await waitFor('messages flowing', () => workload.ackedCount > 200, 60_000);
  await fault();
  await waitReady();
  const before = workload.ackedCount;
  await waitFor('messages flowing after the rebuild', () => workload.ackedCount > before + 200, 60_000);
  const result = await workload.stop();
  expect(result.failedPublishes).toEqual([]);
  for (const group of GROUPS) expect(result.missing[group], `group ${group}`).toEqual([]);
}

beforeAll(async () => {
  env = await startEnv('127.0.66');
  await env.kubectl(['create', 'namespace', NS]);
  env.startOperator();
  await env.apply(clusterManifest(NS, NAME, SPEC));
  await waitReady();
  admin = await env.mysqlCredentials(NS, NAME);
}, 600_000);

afterAll(async () => {
  await env?.stop();
});

describe('rebuild by physical clone', () => {
  it('re-creates a lost standby volume and seeds it from the primary', async () => {
    const standby = await podByRole('standby');
    const primary = await podByRole('primary');
    await underLoad(async () => {
      // The volume is lost (its node is gone): the claim and the pod go.
      await env.kubectl(['delete', 'pvc', `data-${standby.metadata.name}`, '-n', NS, '--wait=false']);
      await env.kubectl(['delete', 'pod', standby.metadata.name, '-n', NS, '--wait=false']);
      await waitFor(
        'a new standby pod, seeded',
        async () => {
          const p = await pod(standby.metadata.name);
          return p && p.metadata.uid !== standby.metadata.uid && p.status?.phase === 'Running'
            ? p
            : undefined;
        },
        180_000,
        500,
      );
    });
    const rebuilt = (await pod(standby.metadata.name))!;
    expect(rebuilt.metadata.annotations?.['mysqlmq.io/seed-source']).toBe(`${primary.status!.podIP}:9080`);
    expect(rebuilt.status?.initContainerStatuses?.[0]?.state?.terminated?.exitCode).toBe(0);
    const seedLog = await readFile(
      join(env.stateDir, 'pods', NS, standby.metadata.name, 'logs', 'seed.log'),
      'utf8',
    );
    expect(seedLog).toContain('"message":"seeded"');
    await standbyInSync();
  }, 600_000);

  it('rebuilds a standby that holds an errant transaction, as the shard state machine decides', async () => {
    const standby = await podByRole('standby');
    await underLoad(async () => {
      // Written on the standby directly: a transaction its primary never had (in the queue
      // database, where the admin user may write).
      await sql(standby.status!.podIP!, 'CREATE TABLE mq.errant_write (id INT PRIMARY KEY)');
      await waitFor(
        'the rebuilt standby pod',
        async () => {
          const p = await pod(standby.metadata.name);
          return p?.metadata.annotations?.['mysqlmq.io/seed-id'] && p.status?.phase === 'Running'
            ? p
            : undefined;
        },
        180_000,
        500,
      );
    });
    const reasons = await clusterEvents();
    expect(reasons).toContain('RebuildingStandby');
    expect(reasons).toContain('StandbyRebuilt');
    await standbyInSync();
    const rebuilt = await podByRole('standby');
    const errant = await sql(rebuilt.status!.podIP!, `SHOW TABLES IN mq LIKE 'errant_write'`);
    expect(errant).toEqual([]);
    expect((await cluster()).status?.shards?.[0]?.rebuild).toBeUndefined();
  }, 600_000);
});
