import { describe, expect, it } from 'vitest';
import { hasDiverged, parseGtidList, transactionsBehind } from '../../src/shard/gtid.js';
import { refusedOverrides, renderMyCnf } from '../../src/shard/mycnf.js';

describe('GTID positions', () => {
  it('parses MariaDB GTID lists and rejects garbage', () => {
    expect(parseGtidList('0-1-42,1-3-7')).toEqual([
      { domain: 0, server: 1, seq: 42 },
      { domain: 1, server: 3, seq: 7 },
    ]);
    expect(parseGtidList('')).toEqual([]);
    expect(() => parseGtidList('0-1')).toThrow(/malformed/);
  });

  it('counts the transactions a standby lacks', () => {
    expect(transactionsBehind(parseGtidList('0-1-100'), parseGtidList('0-1-90'))).toBe(10);
    expect(transactionsBehind(parseGtidList('0-1-100'), parseGtidList('0-1-100'))).toBe(0);
    expect(transactionsBehind(parseGtidList('0-1-5'), [])).toBe(5);
  });

  it('tells a diverged instance from one that is merely behind', () => {
    const primary = parseGtidList('0-1-100');
    expect(hasDiverged(primary, parseGtidList('0-1-90'))).toBe(false);
    expect(hasDiverged(primary, parseGtidList('0-1-101'))).toBe(true);
    expect(hasDiverged(primary, parseGtidList('0-2-100'))).toBe(true);
    expect(hasDiverged(primary, parseGtidList('5-1-1'))).toBe(true);
  });
});

describe('my.cnf', () => {
  const cnf = renderMyCnf({
    serverId: 7,
    bindAddress: '0.0.0.0',
    port: 3306,
    overrides: { 'max-connections': '900' },
  });

  it('is durable, lossless and starts read-only', () => {
    for (const line of [
      'server_id = 7',
      'sync_binlog = 1',
      'innodb_flush_log_at_trx_commit = 1',
      'rpl_semi_sync_master_wait_point = AFTER_SYNC',
      'gtid_strict_mode = ON',
      'log_slave_updates = ON',
      'read_only = ON',
      'skip_slave_start = ON',
    ]) {
      expect(cnf).toContain(line);
    }
  });

  it('applies user overrides with normalised names', () => {
    expect(cnf).toContain('max_connections = 900');
    expect(cnf).not.toContain('max_connections = 500');
  });

  it('refuses overrides of keys the operator owns', () => {
    expect(refusedOverrides({ 'sync-binlog': '0', innodb_buffer_pool_size: '1G', READ_ONLY: 'OFF' })).toEqual(
      ['sync-binlog', 'READ_ONLY'],
    );
  });
});
