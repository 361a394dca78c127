/**
 * The MariaDB metrics user and Debian's mysqld_exporter (the sidecar `spec.monitoring.mysqldExporter`
 * adds) on a real shard: the exporter, logged in as mq_monitor, reports the server up, the standby's
 * replication threads and semi-sync on both sides; mq_monitor cannot read or write queue data.
 */
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalShards } from '../../tools/local/cluster.js';
import { LocalMysqldExporter } from '../../tools/local/mysqld-exporter.js';
import { startShards } from '../support/dataplane.js';

const PREFIX = '127.0.151';
let cluster: LocalShards;
const exporters: LocalMysqldExporter[] = [];

beforeAll(async () => {
  cluster = await startShards(PREFIX, 1);
});

afterAll(async () => {
  await Promise.all(exporters.map((e) => e.stop()));
  await cluster?.destroy();
});

describe('mysqld_exporter as mq_monitor', () => {
  it('sees the primary and the standby up, replication running and semi-sync on', async () => {
    const { primary, standby } = cluster.shards[0];
    for (const [i, target] of [primary, standby].entries()) {
      exporters.push(
        await LocalMysqldExporter.start({
          target: target.endpoint,
          user: cluster.secrets.monitor,
          listen: `${PREFIX}.${100 + i}:9104`,
        }),
      );
    }
    const [onPrimary, onStandby] = await Promise.all(exporters.map((e) => e.scrape()));
    expect(onPrimary!.get('mysql_up')).toBe(1);
    expect(onStandby!.get('mysql_up')).toBe(1);
    expect(onPrimary!.get('mysql_global_status_rpl_semi_sync_master_clients')).toBe(1);
    expect(onPrimary!.get('mysql_global_status_rpl_semi_sync_master_status')).toBe(1);
    expect(onStandby!.get('mysql_global_status_rpl_semi_sync_slave_status')).toBe(1);
    const replication = [...onStandby!.entries()].filter(([k]) => k.startsWith('mysql_slave_status_'));
    const value = (name: string) => replication.find(([k]) => k.startsWith(`${name}{`))?.[1];
    expect(value('mysql_slave_status_slave_io_running')).toBe(1);
    expect(value('mysql_slave_status_slave_sql_running')).toBe(1);
    expect(value('mysql_slave_status_seconds_behind_master')).toBe(0);
    expect(onPrimary!.get('mysql_global_status_threads_connected')).toBeGreaterThan(0);
    expect(onPrimary!.get('mysql_global_variables_max_connections')).toBeGreaterThan(0);
  });

  it('gives mq_monitor no access to the queue data', async () => {
    const { primary } = cluster.shards[0];
    const conn = await mysql.createConnection({ ...primary.endpoint, ...cluster.secrets.monitor });
    try {
      await expect(conn.query('SELECT * FROM mq.topics')).rejects.toThrow(/denied/);
      await expect(conn.query(`INSERT INTO mq.topics (name) VALUES ('x')`)).rejects.toThrow(/denied/);
      const [grants] = await conn.query('SHOW GRANTS');
      const text = JSON.stringify(grants);
      expect(text).toContain('PROCESS');
      expect(text).toContain('SELECT ON `performance_schema`.*');
      expect(text).not.toMatch(/ALL PRIVILEGES|SUPER|ON `mq`/);
    } finally {
      await conn.end();
    }
  });
});
