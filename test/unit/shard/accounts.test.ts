import { describe, expect, it } from 'vitest';
import { instanceInitFile, modeProofLiteral } from '../../../src/shard/accounts.js';

describe("an instance's init file", () => {
  const text = instanceInitFile(
    { user: 'mysqlmq-admin', password: 'a-pass' },
    { user: 'mq_monitor', password: "m'pass" },
  );

  it('creates the admin and monitor users out of the binlog and drops root@%', () => {
    expect(text.split('\n')).toEqual([
      "SET SESSION sql_mode = 'STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION';",
      'SET SESSION sql_log_bin = 0;',
      "CREATE USER IF NOT EXISTS 'mysqlmq-admin'@'%' IDENTIFIED BY 'a-pass';",
      "GRANT ALL PRIVILEGES ON *.* TO 'mysqlmq-admin'@'%' WITH GRANT OPTION;",
      "CREATE USER IF NOT EXISTS 'mq_monitor'@'%' IDENTIFIED BY 'm''pass';",
      "GRANT PROCESS, REPLICATION CLIENT, SLAVE MONITOR ON *.* TO 'mq_monitor'@'%';",
      "GRANT SELECT ON performance_schema.* TO 'mq_monitor'@'%';",
      "DROP USER IF EXISTS 'root'@'%';",
      '',
    ]);
  });

  it('quotes so that no sql_mode changes the meaning, and refuses what it cannot quote so', () => {
    expect(modeProofLiteral("it's")).toBe("'it''s'");
    expect(() => modeProofLiteral('a\\b')).toThrow(/backslash/);
  });
});
