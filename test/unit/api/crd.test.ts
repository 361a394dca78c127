import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { DEFAULTS } from '../../../src/operator/api/defaults.js';
import {
  FINALIZER,
  GROUP,
  KIND,
  PHASES,
  PLURAL,
  SHORT_NAME,
  SINGULAR,
  VERSION,
} from '../../../src/operator/api/types.js';
import { validateName, validateSpec } from '../../../src/operator/api/validate.js';
import { OPERATOR_OWNED_KEYS } from '../../../src/shard/mycnf.js';

type Schema = Record<string, any>;
const root = join(import.meta.dirname, '../../..');
const crd = yaml.load(
  readFileSync(join(root, 'crds/mysqlmq.io_messagequeueclusters.yaml'), 'utf8'),
) as Schema;
const version = crd.spec.versions[0];
const schema = version.schema.openAPIV3Schema as Schema;
const spec = schema.properties.spec as Schema;
const status = schema.properties.status as Schema;
const at = (path: string): Schema =>
  path.split('.').reduce((s: Schema, k) => {
    if (!s.properties?.[k]) throw new Error(`no schema for ${path}`);
    return s.properties[k];
  }, spec);

describe('the CRD', () => {
  it('names the API the operator uses', () => {
    expect(crd.apiVersion).toBe('apiextensions.k8s.io/v1');
    expect(crd.metadata.name).toBe(`${PLURAL}.${GROUP}`);
    expect(crd.spec.group).toBe(GROUP);
    expect(crd.spec.scope).toBe('Namespaced');
    expect(crd.spec.names).toMatchObject({
      kind: KIND,
      plural: PLURAL,
      singular: SINGULAR,
      shortNames: [SHORT_NAME],
      categories: ['mysqlmq'],
    });
    expect(crd.spec.versions).toHaveLength(1);
    expect(version).toMatchObject({ name: VERSION, served: true, storage: true });
    expect(FINALIZER).toBe('mysqlmq.io/finalizer');
  });

  it('has status and scale subresources on the brokers', () => {
    expect(version.subresources).toEqual({
      status: {},
      scale: {
        specReplicasPath: '.spec.brokers.replicas',
        statusReplicasPath: '.status.brokerReplicas',
        labelSelectorPath: '.status.brokerSelector',
      },
    });
  });

  it('prints what kubectl get mqc should show', () => {
    const cols = Object.fromEntries(
      version.additionalPrinterColumns.map((c: Schema) => [c.name, c.jsonPath]),
    );
    expect(cols).toMatchObject({
      Ready: '.status.conditions[?(@.type=="Ready")].status',
      Phase: '.status.phase',
      ShardsReady: '.status.shardsReady',
      Shards: '.spec.shards',
      Writable: '.status.writableShards',
      Brokers: '.status.brokersReady',
      'Last-Failover': '.status.lastFailoverTime',
      Age: '.metadata.creationTimestamp',
    });
  });

  it('uses nothing a Kubernetes 1.20 API server lacks (no CEL rules)', () => {
    const keys = new Set<string>();
    const walk = (v: unknown): void => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === 'object') {
        for (const [k, x] of Object.entries(v)) {
          keys.add(k);
          walk(x);
        }
      }
    };
    walk(schema);
    expect(keys.has('x-kubernetes-validations')).toBe(false);
    // 1.20 accepts x-kubernetes-preserve-unknown-fields only as true (or absent).
    expect(JSON.stringify(schema)).not.toContain('"x-kubernetes-preserve-unknown-fields":false');
    expect(status['x-kubernetes-preserve-unknown-fields']).toBeUndefined();
  });

  it('declares the same defaults as withDefaults', () => {
    expect(spec.default).toEqual({});
    for (const section of ['mysql', 'mysql.storage', 'brokers', 'failover', 'placement', 'retention'])
      expect(at(section).default, section).toEqual({});
    expect(at('shards').default).toBe(DEFAULTS.shards);
    expect(at('mysql.image').default).toBe(DEFAULTS.mysql.image);
    expect(at('mysql.storage.size').default).toBe(DEFAULTS.mysql.storageSize);
    expect(at('mysql.durability').default).toBe(DEFAULTS.mysql.durability);
    expect(at('mysql.semiSyncTimeoutSeconds').default).toBe(DEFAULTS.mysql.semiSyncTimeoutSeconds);
    for (const [k, v] of Object.entries(DEFAULTS.brokers)) expect(at(`brokers.${k}`).default, k).toBe(v);
    expect(at('brokers.tls').default).toEqual({});
    // No default for TLS: unset means "on for a new cluster, what it runs for an old one" (withTlsDecided).
    expect(at('brokers.tls.enabled').default).toBeUndefined();
    expect(at('brokers.auth').default).toEqual({});
    expect(at('brokers.auth.enabled').default).toBe(DEFAULTS.brokerAuth.enabled);
    expect(at('mysql.tls').default).toEqual({});
    expect(at('mysql.tls.enabled').default).toBeUndefined();
    for (const [k, v] of Object.entries(DEFAULTS.failover)) expect(at(`failover.${k}`).default, k).toBe(v);
    expect(at('pvcDeletionPolicy').default).toBe(DEFAULTS.pvcDeletionPolicy);
    expect(at('placement.instanceAntiAffinity').default).toBe(DEFAULTS.placement.instanceAntiAffinity);
    for (const [k, v] of Object.entries(DEFAULTS.retention)) expect(at(`retention.${k}`).default, k).toBe(v);
    for (const section of ['monitoring', 'monitoring.mysqldExporter'])
      expect(at(section).default, section).toEqual({});
    expect(at('monitoring.mysqldExporter.enabled').default).toBe(DEFAULTS.monitoring.mysqldExporter.enabled);
    // Backups are opt-in: no default object, only the default of `keep` inside one.
    expect(at('backup').default).toBeUndefined();
    expect(at('backup.keep').default).toBe(DEFAULTS.backup.keep);
  });

  it('has the ranges validateSpec repeats', () => {
    const ranges: Record<string, [number, number]> = {
      shards: [1, 64],
      'mysql.semiSyncTimeoutSeconds': [1, 3600],
      'brokers.replicas': [0, 100],
      'brokers.port': [1024, 65535],
      'brokers.maxMessageBytes': [1, 16777215],
      'failover.probePeriodSeconds': [1, 60],
      'failover.failureThreshold': [1, 30],
      'failover.promoteForWritesDelaySeconds': [30, 86400],
      'retention.maxAgeHours': [1, 87600],
      'retention.binlogMinAgeHours': [0, 8760],
      'retention.intervalSeconds': [5, 3600],
    };
    for (const [path, [min, max]] of Object.entries(ranges)) {
      expect([at(path).minimum, at(path).maximum], path).toEqual([min, max]);
      expect(validateSpec(setAt(path, min - 1)), path).not.toEqual([]);
      expect(validateSpec(setAt(path, max + 1)), path).not.toEqual([]);
      expect(validateSpec(setAt(path, max)), path).toEqual([]);
    }
    expect(at('mysql.durability').enum).toEqual(['required', 'preferred']);
    expect(at('pvcDeletionPolicy').enum).toEqual(['Retain', 'Delete']);
    expect(at('placement.instanceAntiAffinity').enum).toEqual(['required', 'preferred']);
  });

  it('refuses every operator-owned my.cnf key, in both spellings', () => {
    const refused = Object.keys(at('mysql.config').allOf[0].properties).sort();
    const expected = OPERATOR_OWNED_KEYS.flatMap((k) =>
      k.includes('_') ? [k, k.replace(/_/g, '-')] : [k],
    ).sort();
    expect(refused).toEqual(expected);
    expect(at('mysql.config').additionalProperties.pattern).toBe('^[^\\r\\n]*$');
  });

  it('limits cluster names to what derived names allow', () => {
    expect(schema.properties.metadata.properties.name.maxLength).toBe(46);
  });

  it('keeps every status field the operator writes (a structural schema prunes the rest)', () => {
    expect(Object.keys(status.properties).sort()).toEqual(
      [
        'observedGeneration',
        'phase',
        'conditions',
        'shardsReady',
        'shardsTotal',
        'writableShards',
        'brokersReady',
        'brokerReplicas',
        'brokerSelector',
        'lastFailoverTime',
        'failoverCount',
        'lastSwitchover',
        'backup',
        'restore',
        'shards',
        'routingVersion',
        'tls',
      ].sort(),
    );
    expect(Object.keys(status.properties.tls.properties).sort()).toEqual(['brokers', 'mysql']);
    expect(Object.keys(status.properties.restore.properties).sort()).toEqual(
      ['from', 'pointInTime', 'shards', 'completedTime', 'error'].sort(),
    );
    expect(status.properties.phase.enum).toEqual([...PHASES]);
    expect(Object.keys(status.properties.shards.items.properties).sort()).toEqual(
      [
        'name',
        'phase',
        'primaryPod',
        'standbyPod',
        'readsFrom',
        'writable',
        'replicationLagSeconds',
        'lagTransactions',
        'semiSync',
        'lastTransitionTime',
        'message',
        'primaryIndex',
        'bootstrapped',
        'primaryProbeFailures',
        'failedOverAt',
        'failedOverProtected',
        'standbyMustRejoin',
        'standbyBehindBinlogPurge',
        'binlogBytes',
        'oldestMessageAgeSeconds',
        'retentionError',
        'rebuild',
      ].sort(),
    );
    const conditions = status.properties.conditions;
    expect(conditions['x-kubernetes-list-type']).toBe('map');
    expect(conditions['x-kubernetes-list-map-keys']).toEqual(['type']);
    expect(conditions.items.required).toEqual(['type', 'status', 'reason', 'message', 'lastTransitionTime']);
  });
});

describe('examples', () => {
  const load = (f: string) => yaml.load(readFileSync(join(root, 'examples', f), 'utf8')) as Schema;

  it('basic, production and restore are valid for the operator too', () => {
    for (const f of ['basic.yaml', 'production.yaml', 'restore.yaml']) {
      const cr = load(f);
      expect(cr.kind).toBe(KIND);
      expect(validateName(cr.metadata.name), f).toEqual([]);
      expect(validateSpec(cr.spec), f).toEqual([]);
    }
    expect(load('basic.yaml').spec).toMatchObject({ shards: 2, brokers: { replicas: 2 } });
    expect(load('production.yaml').spec).toMatchObject({
      shards: 4,
      brokers: { replicas: 3 },
      mysql: { durability: 'required' },
      pvcDeletionPolicy: 'Retain',
    });
    expect(load('restore.yaml').spec.restore).toEqual({
      from: { cluster: 'orders' },
      pointInTime: '2026-01-05T10:17:00Z',
    });
  });

  it('has at least 12 invalid specs, each saying what is wrong', () => {
    const files = readdirSync(join(root, 'examples/invalid')).filter((f) => f.endsWith('.yaml'));
    expect(files.length).toBeGreaterThanOrEqual(12);
    for (const f of files) {
      const text = readFileSync(join(root, 'examples/invalid', f), 'utf8');
      expect(text, f).toMatch(/^# Invalid: \S/);
      expect((yaml.load(text) as Schema).kind, f).toBe(KIND);
    }
  });
});

function setAt(path: string, value: unknown): Schema {
  const keys = path.split('.');
  const out: Schema = {};
  let cur = out;
  for (const k of keys.slice(0, -1)) cur = cur[k] = {};
  cur[keys[keys.length - 1]!] = value;
  return out;
}
