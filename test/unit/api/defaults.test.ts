import { describe, expect, it } from 'vitest';
import {
  DEFAULTS,
  brokersServeTls,
  defaultCluster,
  withDefaults,
  withTlsDecided,
} from '../../../src/operator/api/defaults.js';
import type { MessageQueueClusterSpec } from '../../../src/operator/api/types.js';

describe('withDefaults', () => {
  it('fills every default of an empty (or missing) spec', () => {
    const expected = {
      shards: 2,
      mysql: {
        image: 'mariadb:10.11',
        storage: { size: '10Gi' },
        resources: {},
        config: {},
        durability: 'required',
        semiSyncTimeoutSeconds: 5,
        tls: { enabled: true },
      },
      brokers: {
        replicas: 2,
        image: 'ghcr.io/mysqlmq/mysqlmq:0.1.0',
        resources: {},
        port: 8080,
        maxMessageBytes: 1048576,
        tls: { enabled: true, clientCertificates: { enabled: false } },
        auth: { enabled: true },
      },
      failover: {
        probePeriodSeconds: 1,
        failureThreshold: 3,
        promoteStandbyForReads: true,
        promoteForWrites: false,
        promoteForWritesDelaySeconds: 300,
      },
      podTemplate: { tolerations: [], nodeSelector: {}, labels: {}, annotations: {} },
      placement: { instanceAntiAffinity: 'required' },
      pvcDeletionPolicy: 'Retain',
      retention: { maxAgeHours: 720, binlogMinAgeHours: 24, intervalSeconds: 60 },
      monitoring: {
        mysqldExporter: { enabled: false, image: 'ghcr.io/mysqlmq/mysqlmq:0.1.0', resources: {} },
      },
      // Authentication on by default: brokers need a token, the admin user's to begin with.
      users: [{ name: 'admin', rights: [{ topic: '*', actions: ['produce', 'consume', 'admin'] }] }],
    };
    expect(withDefaults({})).toEqual(expected);
    expect(withDefaults(undefined)).toEqual(expected);
    expect(withDefaults(null)).toEqual(expected);
  });

  it('keeps every value given, including falsy ones', () => {
    const spec: MessageQueueClusterSpec = {
      shards: 4,
      mysql: {
        image: 'mariadb:11.4',
        storage: { size: '1Gi', storageClassName: 'fast' },
        resources: { limits: { cpu: '2' } },
        config: { max_connections: '10' },
        durability: 'preferred',
        semiSyncTimeoutSeconds: 30,
        tls: { enabled: true },
      },
      brokers: {
        replicas: 0,
        image: 'x:1',
        port: 9000,
        authSecretName: 'tok',
        maxMessageBytes: 10,
        resources: {},
        tls: { enabled: true, secretName: 'my-cert', clientCertificates: { enabled: true } },
        auth: { enabled: true },
      },
      failover: {
        probePeriodSeconds: 2,
        failureThreshold: 1,
        promoteStandbyForReads: false,
        promoteForWrites: true,
        promoteForWritesDelaySeconds: 60,
      },
      podTemplate: {
        affinity: { nodeAffinity: {} },
        tolerations: [{ key: 'a' }],
        nodeSelector: { a: 'b' },
        labels: { l: 'v' },
        annotations: { a: 'n' },
        priorityClassName: 'high',
      },
      placement: { instanceAntiAffinity: 'preferred' },
      pvcDeletionPolicy: 'Delete',
      retention: { maxAgeHours: 1, maxBytesPerShard: 4 << 20, binlogMinAgeHours: 0, intervalSeconds: 5 },
      monitoring: {
        mysqldExporter: { enabled: true, image: 'exporter:1', resources: { limits: { cpu: '100m' } } },
      },
      users: [{ name: 'admin', rights: [{ topic: 'ops', actions: ['consume'] }], secretName: 'ops-token' }],
    };
    expect(withDefaults(spec)).toEqual(spec);
  });

  it('adds the admin user with every right unless one is listed, to an empty list too', () => {
    const admin = { name: 'admin', rights: [{ topic: '*', actions: ['produce', 'consume', 'admin'] }] };
    const app = { name: 'app', rights: [{ topic: 'orders', actions: ['produce' as const] }] };
    expect(withDefaults({ users: [app] }).users).toEqual([admin, app]);
    expect(withDefaults({ users: [] }).users).toEqual([admin]);
    // The deprecated shared token works beside the users file, as it did beside spec.users.
    expect(withDefaults({ brokers: { authSecretName: 'tok' } }).users).toEqual([admin]);
  });

  it('has no users at all with authentication turned off', () => {
    const off = withDefaults({ brokers: { auth: { enabled: false } } });
    expect(off.brokers.auth).toEqual({ enabled: false });
    expect(off.users).toEqual([]);
  });

  it('fills the gaps of a partly given section', () => {
    const d = withDefaults({
      mysql: { storage: { storageClassName: 'fast' } },
      failover: { failureThreshold: 5 },
    });
    expect(d.mysql.storage).toEqual({ size: '10Gi', storageClassName: 'fast' });
    expect(d.mysql.image).toBe(DEFAULTS.mysql.image);
    expect(d.failover).toMatchObject({ failureThreshold: 5, probePeriodSeconds: 1 });
  });

  it('is pure: nothing shared with or changed in the input', () => {
    const spec: MessageQueueClusterSpec = {
      mysql: { config: { a: '1' }, resources: { limits: { cpu: '1' } } },
      podTemplate: { tolerations: [{ key: 'a' }], affinity: { x: { y: 1 } } },
    };
    const before = structuredClone(spec);
    const d = withDefaults(spec);
    d.mysql.config.b = '2';
    d.mysql.resources.limits!.cpu = '9';
    d.podTemplate.tolerations.push({ key: 'b' });
    (d.podTemplate.affinity as Record<string, any>).x.y = 2;
    expect(spec).toEqual(before);
  });
});

describe('withTlsDecided: TLS on for new clusters, unchanged for running ones', () => {
  const tlsOf = (spec: MessageQueueClusterSpec) => ({
    brokers: withDefaults(spec).brokers.tls.enabled,
    mysql: withDefaults(spec).mysql.tls.enabled,
  });

  it('turns TLS on for a cluster nothing runs for yet', () => {
    expect(tlsOf(withTlsDecided({}, {}))).toEqual({ brokers: true, mysql: true });
    expect(tlsOf(withTlsDecided(undefined, {}))).toEqual({ brokers: true, mysql: true });
  });

  it('keeps what a running cluster runs where its spec does not say', () => {
    expect(tlsOf(withTlsDecided({}, { brokers: false, mysql: false }))).toEqual({
      brokers: false,
      mysql: false,
    });
    expect(tlsOf(withTlsDecided({}, { brokers: true, mysql: false }))).toEqual({
      brokers: true,
      mysql: false,
    });
  });

  it('leaves what the spec says alone, so a change is made (brokers) or refused (MariaDB) as asked', () => {
    const spec = { brokers: { tls: { enabled: true }, port: 9443 }, mysql: { tls: { enabled: false } } };
    const decided = withTlsDecided(spec, { brokers: false, mysql: true });
    expect(tlsOf(decided)).toEqual({ brokers: true, mysql: false });
    expect(decided.brokers?.port).toBe(9443);
    expect(spec.brokers.tls).toEqual({ enabled: true });
  });
});

describe('brokersServeTls (what a client of the cluster object assumes)', () => {
  const meta = { name: 'mq', namespace: 'ns' };
  it('reads the spec, else the status the operator wrote, else the default', () => {
    expect(brokersServeTls({ metadata: meta, spec: { brokers: { tls: { enabled: false } } } })).toBe(false);
    expect(brokersServeTls({ metadata: meta, status: { tls: { brokers: false, mysql: false } } })).toBe(
      false,
    );
    expect(brokersServeTls({ metadata: meta })).toBe(true);
  });
});

describe('defaultCluster', () => {
  it('defaults the spec and requires name, namespace and uid', () => {
    const cr = defaultCluster({ metadata: { name: 'a', namespace: 'n', uid: 'u', generation: 3 } });
    expect(cr.apiVersion).toBe('mysqlmq.io/v1alpha1');
    expect(cr.kind).toBe('MessageQueueCluster');
    expect(cr.metadata.generation).toBe(3);
    expect(cr.spec.shards).toBe(2);
    expect(() => defaultCluster({ metadata: { name: 'a', namespace: 'n' } })).toThrow(/uid/);
  });
});
