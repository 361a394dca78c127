import { describe, expect, it } from 'vitest';
import {
  SECRET_KEYS,
  credentialsFromSecret,
  credentialsSecret,
  generateCredentials,
  missingAddedKeys,
  shardSecrets,
} from '../../../src/operator/desired/credentials.js';
import { OWNER, STANDARD_LABELS, cluster } from './fixtures.js';

const creds = {
  'admin-password': 'a-pass',
  'replication-password': 'r-pass',
  'broker-password': 'b-pass',
  'admin-token': 't-token',
  'monitor-password': 'm-pass',
  'root-password': 'root-pass',
};

describe('credentials Secret', () => {
  it('is NAME-credentials with the six keys base64-encoded', () => {
    const s = credentialsSecret(cluster(), creds);
    expect(s.apiVersion).toBe('v1');
    expect(s.kind).toBe('Secret');
    expect(s.type).toBe('Opaque');
    expect(s.metadata.name).toBe('mq-credentials');
    expect(s.metadata.namespace).toBe('ns');
    expect(s.metadata.labels).toMatchObject({
      ...STANDARD_LABELS,
      'app.kubernetes.io/component': 'credentials',
    });
    expect(s.metadata.ownerReferences).toEqual([OWNER]);
    expect(Object.keys(s.data as object).sort()).toEqual([...SECRET_KEYS].sort());
    expect((s.data as Record<string, string>)['admin-password']).toBe(
      Buffer.from('a-pass').toString('base64'),
    );
    expect(JSON.stringify(s)).not.toContain('a-pass');
  });

  it('reads back what it wrote, and nothing from an incomplete Secret', () => {
    const data = credentialsSecret(cluster(), creds).data as Record<string, string>;
    expect(credentialsFromSecret(data)).toEqual(creds);
    const partial = { ...data };
    delete partial['admin-token'];
    expect(credentialsFromSecret(partial)).toBeUndefined();
    expect(credentialsFromSecret({ ...data, 'admin-token': '' })).toBeUndefined();
    expect(credentialsFromSecret(undefined)).toBeUndefined();
  });

  it('generates distinct URL-safe secrets of 32 characters', () => {
    const a = generateCredentials();
    const b = generateCredentials();
    for (const k of SECRET_KEYS) {
      expect(a[k]).toMatch(/^[A-Za-z0-9_-]{32}$/);
      expect(a[k]).not.toBe(b[k]);
    }
    expect(new Set(Object.values(a)).size).toBe(6);
    expect(generateCredentials(() => 'fixed')['admin-token']).toBe('fixed');
  });

  it('maps to the MariaDB users the shard bootstrap creates', () => {
    expect(shardSecrets(creds)).toEqual({
      admin: { user: 'mysqlmq-admin', password: 'a-pass' },
      replication: { user: 'mq_repl', password: 'r-pass' },
      broker: { user: 'mq_broker', password: 'b-pass' },
      monitor: { user: 'mq_monitor', password: 'm-pass' },
    });
  });

  it('completes a Secret of an older operator with the keys added since, and nothing else', () => {
    const data = credentialsSecret(cluster(), creds).data as Record<string, string>;
    expect(missingAddedKeys(data)).toBeUndefined();
    const old = { ...data };
    delete old['monitor-password'];
    delete old['root-password'];
    const added = missingAddedKeys(old, () => 'fresh');
    const fresh = Buffer.from('fresh').toString('base64');
    expect(added).toEqual({ 'monitor-password': fresh, 'root-password': fresh });
    expect(credentialsFromSecret({ ...old, ...added })).toEqual({
      ...creds,
      'monitor-password': 'fresh',
      'root-password': 'fresh',
    });
    // A lost original password cannot be generated again: the databases hold the old one.
    const broken = { ...old };
    delete broken['admin-password'];
    expect(missingAddedKeys(broken)).toBeUndefined();
  });
});
