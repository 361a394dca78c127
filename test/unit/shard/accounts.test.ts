import { describe, expect, it } from 'vitest';
import { instanceInitFile, modeProofLiteral } from '../../../src/shard/accounts.js';

describe("an instance's init file", () => {
  const text = instanceInitFile(
    { user: 'mysqlmq-admin', password: 'a-pass' },
    { user: 'mq_monitor', password: "m'pass" },
  );

  it('creates the admin and monitor users out of the binlog with exactly their grants, and drops root@%', () => {
    expect(text.split('\n')).toEqual([
      "SET SESSION sql_mode = 'STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION';",
      'SET SESSION sql_log_bin = 0;',
      "CREATE USER IF NOT EXISTS 'mysqlmq-admin'@'%' IDENTIFIED BY 'a-pass';",
      "REVOKE ALL PRIVILEGES, GRANT OPTION FROM 'mysqlmq-admin'@'%';",
      'GRANT REPLICATION SLAVE ADMIN, REPLICATION MASTER ADMIN, READ_ONLY ADMIN, SLAVE MONITOR, BINLOG MONITOR, ' +
        "BINLOG ADMIN, RELOAD, PROCESS, CONNECTION ADMIN, REPLICATION SLAVE, CREATE USER ON *.* TO 'mysqlmq-admin'@'%' WITH GRANT OPTION;",
      "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER ON mq.* TO 'mysqlmq-admin'@'%' WITH GRANT OPTION;",
      "GRANT SELECT ON performance_schema.* TO 'mysqlmq-admin'@'%' WITH GRANT OPTION;",
      "GRANT SELECT (User, Host, Repl_client_priv) ON mysql.user TO 'mysqlmq-admin'@'%';",
      "GRANT SELECT (User, Host, Db, Delete_priv) ON mysql.db TO 'mysqlmq-admin'@'%';",
      "CREATE USER IF NOT EXISTS 'mq_monitor'@'%' IDENTIFIED BY 'm''pass';",
      "REVOKE ALL PRIVILEGES, GRANT OPTION FROM 'mq_monitor'@'%';",
      "GRANT PROCESS, REPLICATION CLIENT, SLAVE MONITOR ON *.* TO 'mq_monitor'@'%';",
      "GRANT SELECT ON performance_schema.* TO 'mq_monitor'@'%';",
      "DROP USER IF EXISTS 'root'@'%';",
      '',
    ]);
  });

  it('gives the admin user no FILE, SHUTDOWN, SUPER or ALL PRIVILEGES', () => {
    const granted = text.split('\n').filter((l) => l.startsWith('GRANT') && l.includes("'mysqlmq-admin'"));
    for (const line of granted) expect(line).not.toMatch(/\b(FILE|SHUTDOWN|SUPER|ALL)\b/);
  });

  it('quotes so that no sql_mode changes the meaning, and refuses what it cannot quote so', () => {
    expect(modeProofLiteral("it's")).toBe("'it''s'");
    expect(() => modeProofLiteral('a\\b')).toThrow(/backslash/);
  });
});
