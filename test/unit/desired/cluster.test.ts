import { describe, expect, it } from 'vitest';
import { tokenSha256 } from '../../../src/api/users.js';
import { initialRouting } from '../../../src/operator/desired/brokers.js';
import { desiredObjects } from '../../../src/operator/desired/cluster.js';
import { generateCredentials } from '../../../src/operator/desired/credentials.js';
import type { DesiredObject } from '../../../src/operator/desired/meta.js';
import { InvalidSpecError } from '../../../src/operator/desired/shard.js';
import { OWNER, STANDARD_LABELS, cluster } from './fixtures.js';

const credentials = generateCredentials(() => 'x');
const build = (cr = cluster(), extra: Partial<Parameters<typeof desiredObjects>[1]> = {}) =>
  desiredObjects(cr, { credentials, routing: initialRouting(cr), pdbApiVersion: 'policy/v1beta1', ...extra });
const ids = (objs: DesiredObject[]) => objs.map((o) => `${o.kind}/${o.metadata.name}`);

describe('desiredObjects', () => {
  it('lists every object of a 2-shard cluster exactly once', () => {
    expect(ids(build())).toEqual([
      'Secret/mq-credentials',
      'ConfigMap/mq-shard-0-mycnf',
      'PersistentVolumeClaim/data-mq-shard-0-0',
      'PersistentVolumeClaim/data-mq-shard-0-1',
      'Service/mq-shard-0-primary',
      'Service/mq-shard-0-standby',
      'PodDisruptionBudget/mq-shard-0',
      'PodDisruptionBudget/mq-shard-0-primary',
      'ConfigMap/mq-shard-1-mycnf',
      'PersistentVolumeClaim/data-mq-shard-1-0',
      'PersistentVolumeClaim/data-mq-shard-1-1',
      'Service/mq-shard-1-primary',
      'Service/mq-shard-1-standby',
      'PodDisruptionBudget/mq-shard-1',
      'PodDisruptionBudget/mq-shard-1-primary',
      'Pod/mq-shard-0-0',
      'Pod/mq-shard-0-1',
      'Pod/mq-shard-1-0',
      'Pod/mq-shard-1-1',
      'ConfigMap/mq-routing',
      'Deployment/mq-broker',
      'Service/mq-broker',
      'PodDisruptionBudget/mq-broker',
    ]);
  });

  it("gives a cluster without spec.users the admin user's file before the brokers that read it", () => {
    const objs = ids(build(cluster(), { userDigests: { admin: tokenSha256('t') } }));
    expect(objs.indexOf('ConfigMap/mq-users')).toBeGreaterThan(-1);
    expect(objs.indexOf('ConfigMap/mq-users')).toBeLessThan(objs.indexOf('Deployment/mq-broker'));
  });

  it('scales with spec.shards', () => {
    const objs = build(cluster({ shards: 4 }));
    expect(objs.filter((o) => o.kind === 'Pod')).toHaveLength(8);
    expect(objs.filter((o) => o.kind === 'PersistentVolumeClaim')).toHaveLength(8);
    expect(new Set(ids(objs)).size).toBe(objs.length);
  });

  it('labels everything, owns everything but retained PVCs, and stays in the namespace', () => {
    for (const o of build()) {
      expect(o.apiVersion, ids([o])[0]).toBeTruthy();
      expect(o.metadata.namespace).toBe('ns');
      expect(o.metadata.labels).toMatchObject(STANDARD_LABELS);
      if (o.kind === 'PersistentVolumeClaim') expect(o.metadata.ownerReferences).toBeUndefined();
      else expect(o.metadata.ownerReferences).toEqual([OWNER]);
    }
    for (const o of build(cluster({ pvcDeletionPolicy: 'Delete' })))
      expect(o.metadata.ownerReferences).toEqual([OWNER]);
  });

  it('labels roles from the observed primary of each shard (instance 0 by default)', () => {
    const roles = (objs: DesiredObject[]) =>
      Object.fromEntries(
        objs
          .filter((o) => o.kind === 'Pod')
          .map((o) => [o.metadata.name, o.metadata.labels['mysqlmq.io/role']]),
      );
    expect(roles(build())).toEqual({
      'mq-shard-0-0': 'primary',
      'mq-shard-0-1': 'standby',
      'mq-shard-1-0': 'primary',
      'mq-shard-1-1': 'standby',
    });
    expect(roles(build(cluster(), { primaryIndex: { 'shard-1': 1 } }))).toMatchObject({
      'mq-shard-1-0': 'standby',
      'mq-shard-1-1': 'primary',
    });
  });

  it('writes no PDBs when the server offers no policy API', () => {
    expect(build(cluster(), { pdbApiVersion: undefined }).some((o) => o.kind === 'PodDisruptionBudget')).toBe(
      false,
    );
  });

  it('is pure: the same input gives the same objects, and the cluster is not modified', () => {
    const cr = cluster({ podTemplate: { affinity: { nodeAffinity: {} }, tolerations: [{ key: 'a' }] } });
    const before = structuredClone(cr);
    expect(build(cr)).toEqual(build(cr));
    expect(cr).toEqual(before);
  });

  it('never puts a secret value in anything but the Secret', () => {
    const secret = generateCredentials();
    const objs = desiredObjects(cluster(), { credentials: secret, routing: initialRouting(cluster()) });
    const text = JSON.stringify(objs.filter((o) => o.kind !== 'Secret'));
    for (const v of Object.values(secret)) expect(text).not.toContain(v);
  });

  it('throws for a spec validateSpec refuses', () => {
    expect(() => build(cluster({ mysql: { config: { log_bin: 'OFF' } } }))).toThrow(InvalidSpecError);
  });
});
