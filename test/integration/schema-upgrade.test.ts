import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/broker/broker.js';
import { Consumer, Producer } from '../../src/client/index.js';
import type { LocalShards } from '../../tools/local/cluster.js';
import { upgradeShardSchema } from '../../src/shard/bootstrap.js';
import { queryRows, withAdmin } from '../../src/shard/connection.js';
import { startBroker, startShards } from '../support/dataplane.js';

let cluster: LocalShards;
let broker: Broker | undefined;

beforeAll(async () => {
  cluster = await startShards('127.0.89', 1);
});

afterAll(async () => {
  await broker?.close();
  await cluster?.destroy();
});

describe('a shard bootstrapped by an older operator', () => {
  it('gets the tables, columns, grants and users this version needs, and brokers work on it', async () => {
    const { primary } = cluster.shards[0];
    const admin = cluster.secrets.admin;
    // What a shard bootstrapped before per-topic settings, generations, dead letters and
    // per-table grants and the metrics user looks like.
    await withAdmin(primary.endpoint, admin, async (conn) => {
      await conn.query('DROP TABLE mq.deliveries, mq.pending_releases');
      await conn.query('ALTER TABLE mq.topics DROP COLUMN settings');
      await conn.query('ALTER TABLE mq.group_offsets DROP COLUMN generation');
      await conn.query(`REVOKE DELETE ON mq.group_offsets FROM ?@'%'`, [cluster.secrets.broker.user]);
      await conn.query(`DROP USER ?@'%'`, [cluster.secrets.monitor.user]); // before metrics
    });

    await upgradeShardSchema(primary.endpoint, cluster.secrets);
    await upgradeShardSchema(primary.endpoint, cluster.secrets); // idempotent

    const tables = await withAdmin(primary.endpoint, admin, (conn) =>
      queryRows(conn, `SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'mq'`),
    );
    expect(tables.map((r) => String(r.t))).toEqual(
      expect.arrayContaining(['deliveries', 'pending_releases']),
    );

    const monitor = await mysql.createConnection({ ...primary.endpoint, ...cluster.secrets.monitor });
    const [status] = await monitor.query(`SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_clients'`);
    await monitor.end();
    expect(status).toEqual([{ Variable_name: 'Rpl_semi_sync_master_clients', Value: '1' }]);

    broker = await startBroker(cluster);
    const url = broker.url;
    const producer = new Producer({ brokers: [url] });
    await producer.createTopic('upgraded', { maxDeliveries: 3 });
    await producer.send('upgraded', 'after the upgrade');
    const consumer = new Consumer({ brokers: [url], topic: 'upgraded', group: 'g', waitMs: 200 });
    const received: string[] = [];
    await consumer.run(async (messages) => {
      for (const m of messages) received.push(m.value.toString());
      consumer.stop();
    });
    await consumer.close();
    expect(received).toEqual(['after the upgrade']);
    const groups = await fetch(`${url}/v1/topics/upgraded/groups/g`, { method: 'DELETE' });
    expect(groups.status).toBe(204);
  });
});
