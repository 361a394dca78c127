import { describe, expect, it } from 'vitest';
import { planSeed } from '../../../src/agent/seed.js';
import { agentToken, authorized } from '../../../src/agent/token.js';
import { gtidSlavePosSql, parseInnodbBinlogPos } from '../../../src/shard/clone.js';

describe('clone helpers', () => {
  it('reads the binlog position InnoDB committed last', () => {
    expect(parseInnodbBinlogPos('./mysql-bin.000003\t3892\n')).toEqual({
      file: 'mysql-bin.000003',
      position: 3892,
    });
    expect(parseInnodbBinlogPos('mysql-bin.000001 4')).toEqual({ file: 'mysql-bin.000001', position: 4 });
    expect(parseInnodbBinlogPos('')).toBeUndefined();
  });

  it('replaces the copied replication position with the copy’s GTID, one row per domain', () => {
    expect(gtidSlavePosSql('0-1-12,1-3-4').split('\n')).toEqual([
      'SET sql_log_bin = 0;',
      'DELETE FROM mysql.gtid_slave_pos;',
      'INSERT INTO mysql.gtid_slave_pos (domain_id, sub_id, server_id, seq_no) VALUES (0, 1, 1, 12);',
      'INSERT INTO mysql.gtid_slave_pos (domain_id, sub_id, server_id, seq_no) VALUES (1, 2, 3, 4);',
      '',
    ]);
    expect(() => gtidSlavePosSql("0-1-1'; DROP TABLE x")).toThrow(/malformed GTID/);
  });

  it('seeds only when asked or when the volume is empty', () => {
    const src = 'p:9080';
    expect(planSeed({ initialised: false }, { source: '', id: '' }).seed).toBe(false);
    expect(planSeed({ initialised: false }, { source: src, id: '' }).seed).toBe(true);
    expect(planSeed({ initialised: true }, { source: src, id: '' }).seed).toBe(false);
    expect(planSeed({ initialised: true, seededId: 'a' }, { source: src, id: 'b' }).seed).toBe(true);
    expect(planSeed({ initialised: true, seededId: 'b' }, { source: src, id: 'b' }).seed).toBe(false);
    // A copy that broke off half way is never started, whatever the request says.
    expect(planSeed({ initialised: true, incomplete: true }, { source: src, id: '' }).seed).toBe(true);
  });

  it('checks the agent token', () => {
    const t = agentToken('pw');
    expect(t).not.toContain('pw');
    expect(authorized(`Bearer ${t}`, t)).toBe(true);
    expect(authorized(`Bearer ${agentToken('other')}`, t)).toBe(false);
    expect(authorized(undefined, t)).toBe(false);
  });
});
