import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { clientTlsFromFlags } from '../../../src/shard/client-tls-flags.js';
import { connectionOptions } from '../../../src/shard/connection.js';
import { validateSpec } from '../../../src/operator/api/validate.js';

const endpoint = { host: '10.1.2.3', port: 3306 };
const user = { user: 'mq_broker', password: 'pw' };

describe('connections to MariaDB', () => {
  it('are plain TCP to the endpoint without TLS, as before spec.mysql.tls', () => {
    expect(connectionOptions(endpoint, user)).toEqual({ host: '10.1.2.3', port: 3306, ...user });
  });

  it('verify the CA and the server name (mysql2 checks its host; the socket dials the pod IP)', () => {
    const options = connectionOptions(endpoint, {
      ...user,
      tls: { ca: 'CA', serverName: 'q-shard-0-primary.mq.svc' },
    });
    expect(options).toMatchObject({
      host: 'q-shard-0-primary.mq.svc',
      port: 3306,
      ssl: { ca: 'CA', rejectUnauthorized: true, verifyIdentity: true },
    });
  });
});

describe('--mysql-ca and --mysql-server-name', () => {
  it('are both given or neither', async () => {
    expect(clientTlsFromFlags(undefined, undefined)).toBeUndefined();
    expect(() => clientTlsFromFlags('/x/ca.crt', undefined)).toThrow(
      /give both --mysql-ca FILE and --mysql-server-name/,
    );
    expect(() => clientTlsFromFlags(undefined, 'n')).toThrow(/give both/);
  });

  it('read the CA once, and refuse a file without a certificate', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mq-client-tls-'));
    const pem = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
    await writeFile(join(dir, 'ca.crt'), pem);
    await writeFile(join(dir, 'empty'), 'nothing');
    expect(clientTlsFromFlags(join(dir, 'ca.crt'), 'q-shard-0-primary.mq.svc')).toEqual({
      ca: pem,
      serverName: 'q-shard-0-primary.mq.svc',
    });
    expect(() => clientTlsFromFlags(join(dir, 'empty'), 'n')).toThrow(/holds no PEM certificate/);
    expect(() => clientTlsFromFlags(join(dir, 'missing'), 'n')).toThrow(
      /--mysql-ca .*missing: cannot read it/,
    );
  });
});

describe('my.cnf keys of spec.mysql.tls', () => {
  it('are refused as overrides only where spec.mysql.tls sets them', () => {
    const config = { 'ssl-cert': '/x', ssl_key: '/y', ssl_ca: '/z', require_secure_transport: 'OFF' };
    expect(validateSpec({ mysql: { config, tls: { enabled: false } } })).toEqual([]);
    expect(validateSpec({ mysql: { config, tls: { enabled: true } } })).toEqual([
      expect.stringContaining(
        'spec.mysql.config sets "ssl-cert", "ssl_key", "ssl_ca", "require_secure_transport", which spec.mysql.tls sets',
      ),
    ]);
  });
});
