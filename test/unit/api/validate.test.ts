import { describe, expect, it } from 'vitest';
import {
  ownedKeyOf,
  parseMyCnfSize,
  parseQuantity,
  validateName,
  validateSpec,
  validateSpecUpdate,
} from '../../../src/operator/api/validate.js';
import { OPERATOR_OWNED_KEYS } from '../../../src/shard/mycnf.js';

describe('validateSpec', () => {
  it('accepts an empty spec (all defaults)', () => {
    expect(validateSpec({})).toEqual([]);
    expect(validateSpec(undefined)).toEqual([]);
  });

  it('refuses a TLS Secret name that is none, or one given with TLS off', () => {
    expect(validateSpec({ brokers: { tls: { enabled: true, secretName: 'my-cert' } } })).toEqual([]);
    expect(validateSpec({ brokers: { tls: { enabled: true, secretName: 'My Cert' } } })).toEqual([
      'spec.brokers.tls.secretName "My Cert" is not a Secret name',
    ]);
    expect(validateSpec({ brokers: { tls: { secretName: 'my-cert' } } })).toEqual([]);
    expect(validateSpec({ brokers: { tls: { enabled: false, secretName: 'my-cert' } } })).toEqual([
      'spec.brokers.tls.secretName is set but spec.brokers.tls.enabled is false',
    ]);
  });

  it('refuses credentials given with authentication turned off', () => {
    const off = { auth: { enabled: false } };
    expect(validateSpec({ brokers: off })).toEqual([]);
    expect(validateSpec({ brokers: { auth: { enabled: true }, authSecretName: 'tok' } })).toEqual([]);
    expect(
      validateSpec({
        brokers: { ...off, authSecretName: 'tok' },
        users: [{ name: 'app', rights: [{ topic: 'orders', actions: ['produce'] }] }],
      }),
    ).toEqual([
      'spec.users is set but spec.brokers.auth.enabled is false: brokers would accept anyone; remove spec.brokers.auth.enabled (authentication is on by default) or spec.users',
      'spec.brokers.authSecretName is set but spec.brokers.auth.enabled is false: brokers would accept anyone; remove spec.brokers.auth.enabled (authentication is on by default) or spec.brokers.authSecretName',
    ]);
    // An empty list names no user: nothing contradicts turning authentication off.
    expect(validateSpec({ brokers: off, users: [] })).toEqual([]);
  });

  it('refuses client certificates without HTTPS or without authentication', () => {
    const certs = { clientCertificates: { enabled: true } };
    expect(validateSpec({ brokers: { tls: { enabled: true, ...certs } } })).toEqual([]);
    expect(
      validateSpec({ brokers: { tls: { enabled: true, clientCertificates: { enabled: false } } } }),
    ).toEqual([]);
    expect(validateSpec({ brokers: { tls: certs } }), 'HTTPS is on by default').toEqual([]);
    expect(validateSpec({ brokers: { tls: { enabled: false, ...certs } } })).toEqual([
      'spec.brokers.tls.clientCertificates.enabled is true but spec.brokers.tls.enabled is false: client certificates need HTTPS; set spec.brokers.tls.enabled to true or remove spec.brokers.tls.clientCertificates',
    ]);
    expect(validateSpec({ brokers: { tls: { enabled: true, ...certs }, auth: { enabled: false } } })).toEqual(
      [
        'spec.brokers.tls.clientCertificates.enabled is true but spec.brokers.auth.enabled is false: brokers would accept anyone, certificate or not; remove spec.brokers.auth.enabled (authentication is on by default) or spec.brokers.tls.clientCertificates',
      ],
    );
  });

  it('refuses operator-owned my.cnf keys, naming them', () => {
    const problems = validateSpec({
      mysql: { config: { server_id: '1', 'sync-binlog': '0', max_connections: '10' } },
    });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(
      /spec\.mysql\.config sets "server_id", "sync-binlog", which the operator owns/,
    );
    expect(problems[0]).toMatch(/remove them/);
  });

  it('sees through the spellings MariaDB accepts for the same option', () => {
    for (const key of [
      'loose-server-id',
      'skip-log-bin',
      'disable-read-only',
      'LOG_REPLICA_UPDATES',
      'rpl-semi-sync-source-enabled',
      'skip_replica_start',
    ]) {
      expect(ownedKeyOf(key), key).toBeDefined();
      expect(validateSpec({ mysql: { config: { [key]: 'x' } } })[0], key).toMatch(/operator owns/);
    }
    for (const key of ['skip-name-resolve', 'max_connections', 'innodb_buffer_pool_size', 'log_error']) {
      expect(ownedKeyOf(key), key).toBeUndefined();
    }
    for (const key of OPERATOR_OWNED_KEYS) expect(ownedKeyOf(key)).toBe(key);
  });

  it('refuses my.cnf keys and values that would break the file', () => {
    expect(validateSpec({ mysql: { config: { '[client]': 'x' } } })[0]).toMatch(/not a my.cnf option name/);
    expect(validateSpec({ mysql: { config: { a: 'x\nread_only=OFF' } } })[0]).toMatch(/single-line/);
  });

  it('keeps max_allowed_packet large enough for the brokers', () => {
    expect(validateSpec({ mysql: { config: { max_allowed_packet: '64M' } } })).toEqual([]);
    expect(validateSpec({ mysql: { config: { max_allowed_packet: '4M' } } })[0]).toMatch(/at least 16M/);
    expect(
      validateSpec({
        mysql: { config: { 'max-allowed-packet': '16M' } },
        brokers: { maxMessageBytes: 16 * 2 ** 20 - 1 },
      })[0],
    ).toMatch(/at least 33M/);
    expect(validateSpec({ brokers: { maxMessageBytes: 16 * 2 ** 20 } })[0]).toMatch(/from 1 to 16777215/);
    expect(validateSpec({ mysql: { config: { max_allowed_packet: 'big' } } })[0]).toMatch(/not a size/);
  });

  it('refuses volumes too small for MariaDB', () => {
    expect(validateSpec({ mysql: { storage: { size: '100Mi' } } })[0]).toMatch(/at least 512Mi/);
    expect(validateSpec({ mysql: { storage: { size: '1Gi' } } })).toEqual([]);
  });

  it('checks resources: quantities, and requests within limits', () => {
    expect(validateSpec({ mysql: { resources: { requests: { cpu: '2' }, limits: { cpu: '1' } } } })[0]).toBe(
      'spec.mysql.resources.requests.cpu (2) is more than spec.mysql.resources.limits.cpu (1)',
    );
    expect(validateSpec({ brokers: { resources: { limits: { memory: 'lots' } } } })[0]).toMatch(
      /not a quantity/,
    );
    expect(
      validateSpec({ brokers: { resources: { requests: { memory: '512Mi' }, limits: { memory: '1Gi' } } } }),
    ).toEqual([]);
  });

  it('checks promoteForWrites against reads promotion and detection time', () => {
    expect(validateSpec({ failover: { promoteForWrites: true } })).toEqual([]);
    expect(
      validateSpec({ mysql: { durability: 'preferred' }, failover: { promoteForWrites: true } }),
    ).toEqual([]);
    const problems = validateSpec({
      failover: {
        promoteForWrites: true,
        promoteStandbyForReads: false,
        probePeriodSeconds: 10,
        failureThreshold: 10,
        promoteForWritesDelaySeconds: 60,
      },
    });
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(/promoteStandbyForReads/);
    expect(problems[1]).toMatch(/at least 100 seconds/);
  });

  it('refuses reserved and malformed pod labels', () => {
    expect(validateSpec({ podTemplate: { labels: { 'mysqlmq.io/role': 'primary' } } })[0]).toMatch(
      /reserved/,
    );
    expect(validateSpec({ podTemplate: { labels: { 'app.kubernetes.io/name': 'x' } } })[0]).toMatch(
      /reserved/,
    );
    expect(validateSpec({ podTemplate: { labels: { 'bad key': 'x' } } })[0]).toMatch(/key "bad key"/);
    expect(validateSpec({ podTemplate: { nodeSelector: { 'a/b/c': 'x' } } })[0]).toMatch(/more than one/);
    expect(
      validateSpec({ podTemplate: { annotations: { 'Example.com/x': 'any value at all' } } })[0],
    ).toMatch(/prefix/);
    expect(validateSpec({ podTemplate: { labels: { team: 'a b' } } })[0]).toMatch(/value "a b"/);
    expect(
      validateSpec({ podTemplate: { labels: { 'example.com/team': 'mq' }, annotations: { note: 'a b' } } }),
    ).toEqual([]);
  });

  it('repeats the schema ranges for objects stored under an older schema', () => {
    expect(validateSpec({ shards: 0 })).toEqual(['spec.shards is 0; it must be a whole number from 1 to 64']);
    expect(validateSpec({ brokers: { port: 80 } })[0]).toMatch(/spec.brokers.port is 80/);
    expect(validateSpec({ shards: 1.5 })[0]).toMatch(/whole number/);
  });
});

describe('validateName', () => {
  it('keeps derived names valid', () => {
    expect(validateName('mq')).toEqual([]);
    expect(validateName('a'.repeat(46))).toEqual([]);
    expect(validateName('a'.repeat(47))[0]).toMatch(/at most 46/);
    expect(validateName('1mq')[0]).toMatch(/start with a lowercase letter/);
  });
});

describe('validateSpecUpdate', () => {
  it('refuses what existing data cannot follow', () => {
    expect(validateSpecUpdate({ shards: 4 }, { shards: 6 })).toEqual([]);
    expect(validateSpecUpdate({ shards: 4 }, { shards: 2 })[0]).toMatch(/cannot shrink from 4 to 2/);
    expect(validateSpecUpdate({}, { shards: 1 })[0]).toMatch(/cannot shrink from 2 to 1/);
    expect(
      validateSpecUpdate({ mysql: { storage: { size: '10Gi' } } }, { mysql: { storage: { size: '20Gi' } } }),
    ).toEqual([]);
    expect(
      validateSpecUpdate(
        { mysql: { storage: { size: '10Gi' } } },
        { mysql: { storage: { size: '5Gi' } } },
      )[0],
    ).toMatch(/can only grow/);
    expect(validateSpecUpdate({}, { mysql: { storage: { storageClassName: 'fast' } } })[0]).toMatch(
      /from the default to "fast"/,
    );
  });
});

describe('size parsing', () => {
  it('reads Kubernetes quantities', () => {
    expect(parseQuantity('500m')).toBeCloseTo(0.5);
    expect(parseQuantity('1Gi')).toBe(2 ** 30);
    expect(parseQuantity('1G')).toBe(1e9);
    expect(parseQuantity('1.5Mi')).toBe(1.5 * 2 ** 20);
    expect(parseQuantity('1e3')).toBe(1000);
    expect(parseQuantity(2)).toBe(2);
    expect(parseQuantity('10 GB')).toBeUndefined();
    expect(parseQuantity('lots')).toBeUndefined();
  });

  it('reads my.cnf sizes', () => {
    expect(parseMyCnfSize('64M')).toBe(64 * 2 ** 20);
    expect(parseMyCnfSize('1g')).toBe(2 ** 30);
    expect(parseMyCnfSize('1024')).toBe(1024);
    expect(parseMyCnfSize('1.5G')).toBeUndefined();
  });
});
