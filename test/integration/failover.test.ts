import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/broker/broker.js';
import { Consumer, MqClientError, Producer } from '../../src/client/index.js';
import { createLogger } from '../../src/common/logger.js';
import { generateSecrets } from '../../tools/local/cluster.js';
import { queryRows, withAdmin } from '../../src/shard/connection.js';
import { instanceInitFile } from '../../src/shard/accounts.js';
import { LocalMariaDb } from '../../tools/local/mariadbd.js';
import {
  type ManagerPolicy,
  type ObservedShard,
  type ShardOutcome,
  ShardManager,
  nextRoutingVersion,
  routingDocument,
} from '../../src/operator/shards/manager.js';
import { startBroker } from '../support/dataplane.js';

/**
 * The operator's MySQL control loop on real mariadbd processes, without Kubernetes: pods are
 * simulated by whether each process runs. Proves promotion for reads and recovery under load.
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
let dbs: LocalMariaDb[][] = [];
let broker: Broker;
const manager = new ShardManager(secrets, log, 1000);
let version = 0;
let last: ShardOutcome[] = [];
/** Pretend the pod of this instance is NotReady (as the kubelet reports while the process is down). */
const podDown = new Set<string>();

function observe(): ObservedShard[] {
  return dbs.map((pair, s) => ({
    name: `shard-${s}`,
    instances: pair.map((db, index) => {
      const podName = `shard-${s}-${index}`;
      return {
        index,
        podName,
        podIP: db.endpoint.host,
        podPhase: 'Running',
        podReady: !podDown.has(podName),
        deleting: false,
      };
    }),
  }));
}

async function tick(p = policy): Promise<ShardOutcome[]> {
  last = await manager.tick(observe(), p);
  const doc = routingDocument(last, nextRoutingVersion(version));
  if (JSON.stringify(doc.shards) !== JSON.stringify(broker?.router.routing.shards)) {
    version = doc.version;
    broker?.router.update(doc);
  }
  return last;
}

async function tickUntil(
  check: (o: ShardOutcome[]) => boolean,
  timeoutMs = 30_000,
  p = policy,
): Promise<number> {
  const start = Date.now();
  while (!check(await tick(p))) {
    if (Date.now() - start > timeoutMs)
      throw new Error(
        `not reached: ${JSON.stringify(last.map((o) => [o.decision.memory.phase, o.decision.message, o.actionError]))}`,
      );
    await new Promise((r) => setTimeout(r, 200));
  }
  return Date.now() - start;
}

const phase = (o: ShardOutcome[], shard: number) => o[shard].decision.memory.phase;

beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mq-failover-'));
  dbs = await Promise.all(
    [0, 1].map((s) =>
      Promise.all(
        [0, 1].map((i) =>
          LocalMariaDb.start({
            dir: join(dir, `s${s}-${i}`),
            host: `127.0.24.${s * 2 + i + 1}`,
            serverId: s * 2 + i + 1,
            admin: secrets.admin,
            // The admin and monitor users, as a Pod's init file creates them.
            initSql: instanceInitFile(secrets.admin, secrets.monitor),
          }),
        ),
      ),
    ),
  );
  await tickUntil((o) => o.every((x) => x.decision.memory.phase === 'Healthy'));
  broker = await startBroker(undefined, {
    db: secrets.broker,
    routing: routingDocument(last, ++version),
  });
});

afterAll(async () => {
  await broker?.close();
  await Promise.all(dbs.flat().map((db) => db.destroy()));
});

interface Load {
  acked: string[];
  failures: number;
  stop(): Promise<void>;
}

/** Creates `topic` and publishes to it without pause until stopped; returns after a head start. */
async function startLoad(topic: string): Promise<Load> {
  const producer = new Producer({ brokers: [broker.url], lingerMs: 2 });
  await producer.createTopic(topic);
  const load: Load = { acked: [], failures: 0, stop: async () => undefined };
  let running = true;
  let n = 0;
  const loop = (async () => {
    while (running) {
      await Promise.all(
        Array.from({ length: 25 }, () => {
          const v = `${topic}-${n++}`;
          return producer.send(topic, v).then(
            () => load.acked.push(v),
            () => load.failures++,
          );
        }),
      );
    }
  })();
  load.stop = async () => {
    running = false;
    await loop;
  };
  await new Promise((r) => setTimeout(r, 500));
  return load;
}

async function consumeEverything(topic: string, group: string, expected: string[]): Promise<Set<string>> {
  const consumer = new Consumer({ brokers: [broker.url], topic, group, waitMs: 200, maxMessages: 2000 });
  const seen = new Set<string>();
  const deadline = Date.now() + 30_000;
  while (expected.some((v) => !seen.has(v)) && Date.now() < deadline) {
    for (const m of await consumer.poll()) seen.add(String(m.value));
    await consumer.commit().catch((err) => {
      if (!(err instanceof MqClientError && err.code === 'offsets_unavailable')) throw err;
    });
  }
  await consumer.close();
  return seen;
}

describe('promotion for reads and recovery on real MariaDB', () => {
  it(
    'serves reads from the standby after kill -9 of a primary, loses nothing, and recovers',
    { timeout: 180_000 },
    async () => {
      const load = await startLoad('failover');

      const primary = dbs[0][0];
      await primary.kill();
      podDown.add('shard-0-0');
      const promoted = await tickUntil((o) => phase(o, 0) === 'FailedOver');
      expect(last[0].route.read?.host).toBe(dbs[0][1].endpoint.host);
      expect(last[0].route.write).toBeNull();
      expect(last[0].decision.events.map((e) => e.reason)).toContain('FailedOver');
      expect(promoted).toBeLessThan(3000);

      // Reads keep working from the standby while the primary is down.
      const during = await consumeEverything('failover', 'during-outage', load.acked.slice(0, 100));
      expect(load.acked.slice(0, 100).filter((v) => !during.has(v))).toEqual([]);

      await primary.restart();
      podDown.delete('shard-0-0');
      await tickUntil((o) => phase(o, 0) === 'Healthy');
      expect(last[0].route.write?.host).toBe(primary.endpoint.host);
      await new Promise((r) => setTimeout(r, 500));
      await load.stop();

      expect(load.failures).toBe(0);
      for (const group of ['audit-a', 'audit-b']) {
        const seen = await consumeEverything('failover', group, load.acked);
        expect(load.acked.filter((v) => !seen.has(v))).toEqual([]);
      }
    },
  );

  it('fails over on MySQL probe failures alone, after the threshold', async () => {
    const primary = dbs[1][0];
    await primary.kill();
    // The pod still looks Ready: only the operator's probe notices.
    const outcomes: string[] = [];
    await tickUntil((o) => {
      outcomes.push(phase(o, 1));
      return phase(o, 1) === 'FailedOver';
    });
    expect(outcomes.filter((p) => p === 'FailedOver')).toHaveLength(1);
    expect(outcomes.length).toBeGreaterThanOrEqual(3);
    await primary.restart();
    await tickUntil((o) => phase(o, 1) === 'Healthy');
  });
});

describe('promotion for writes on real MariaDB', () => {
  const promoting: ManagerPolicy = { ...policy, promoteForWritesAfterMs: 1000 };
  const reasons: string[] = [];
  const record = (o: ShardOutcome[]) => {
    if (!o[0].actionError) reasons.push(...o[0].decision.events.map((e) => e.reason));
  };
  const primaryIndex = () => last[0].decision.memory.primaryIndex;
  const sql = (db: LocalMariaDb, text: string) =>
    withAdmin(db.endpoint, secrets.admin, (c) => queryRows(c, text));

  /** Freezes shard-0's primary (SIGSTOP: it looks alive to the kubelet) until its standby is promoted. */
  async function freezeUntilPromoted(): Promise<{ former: LocalMariaDb; promoted: LocalMariaDb }> {
    const [former, promoted] = [dbs[0][primaryIndex()], dbs[0][1 - primaryIndex()]];
    former.signal('SIGSTOP');
    await tickUntil(
      (o) => {
        record(o);
        return o[0].decision.memory.primaryIndex !== dbs[0].indexOf(former) && !o[0].actionError;
      },
      30_000,
      promoting,
    );
    expect(last[0].route.read?.host).toBe(promoted.endpoint.host);
    expect(last[0].route.write).toBeNull();
    expect(reasons).toContain('PromotedForWrites');
    expect((await sql(promoted, 'SHOW SLAVE STATUS')).length).toBe(0);
    return { former, promoted };
  }

  async function rejoinedAndHealthy(former: LocalMariaDb, promoted: LocalMariaDb): Promise<void> {
    await tickUntil(
      (o) => {
        record(o);
        return phase(o, 0) === 'Healthy';
      },
      60_000,
      promoting,
    );
    expect(last[0].route.write?.host).toBe(promoted.endpoint.host);
    const [formerState] = await sql(former, 'SELECT @@read_only AS ro');
    expect(Number(formerState!.ro)).toBe(1);
    const [replica] = await sql(former, 'SHOW SLAVE STATUS');
    expect(replica).toMatchObject({ Master_Host: promoted.endpoint.host, Slave_SQL_Running: 'Yes' });
  }

  it(
    'promotes the standby of a hung primary, then wipes and re-replicates the diverged former primary',
    { timeout: 180_000 },
    async () => {
      const load = await startLoad('promote');

      const { former, promoted } = await freezeUntilPromoted();
      // Durability "required": no writes until a standby acknowledges; the other shard takes them.
      await tickUntil((o) => phase(o, 0) === 'StandbyUnavailable', 10_000, promoting);
      const before = load.acked.length;
      await new Promise((r) => setTimeout(r, 1000));
      expect(load.acked.length).toBeGreaterThan(before);

      // The former primary wakes up believing it is the primary and writes a transaction its successor
      // never receives (the way an unacknowledged commit survives a crash).
      former.signal('SIGCONT');
      await sql(former, 'SET GLOBAL rpl_semi_sync_master_enabled = OFF');
      await sql(former, 'CREATE TABLE mq.written_after_promotion (i INT PRIMARY KEY)');

      await rejoinedAndHealthy(former, promoted);
      expect(reasons).toContain('StandbyRebuilt');
      const leftover = await sql(
        former,
        `SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_name = 'written_after_promotion'`,
      );
      expect(Number(leftover[0]!.n)).toBe(0);

      await new Promise((r) => setTimeout(r, 500));
      await load.stop();
      expect(load.failures).toBe(0);
      for (const group of ['promote-a', 'promote-b']) {
        const seen = await consumeEverything('promote', group, load.acked);
        expect(load.acked.filter((v) => !seen.has(v))).toEqual([]);
      }
      // Writes reach the new primary again.
      const producer = new Producer({ brokers: [broker.url] });
      await producer.send('promote', 'after');
      await producer.close();
    },
  );

  it('promotes back; a former primary that holds nothing extra rejoins with its data', async () => {
    reasons.length = 0;
    const { former, promoted } = await freezeUntilPromoted();
    former.signal('SIGCONT');
    await rejoinedAndHealthy(former, promoted);
    expect(reasons).toContain('StandbyRejoined');
    expect(reasons).not.toContain('StandbyRebuilt');
  }, 120_000);
});
