import { describe, expect, it } from 'vitest';
import { accountPasswords, parseRestoreRequest, planRestore } from '../../../src/agent/restore-step.js';
import { adoptionScript, firstBinlogNumber, sqlString } from '../../../src/backup/adopt.js';
import type { MessageQueueClusterSpec, RestoreStatus } from '../../../src/operator/api/types.js';
import { validateSpec } from '../../../src/operator/api/validate.js';
import { desiredObjects, mysqlPod } from '../../../src/operator/desired/index.js';
import { generateCredentials } from '../../../src/operator/desired/credentials.js';
import { initialRouting } from '../../../src/operator/desired/index.js';
import { type RestoringShard, planRestorePods, restoreReport } from '../../../src/operator/restore/plan.js';
import { restoreSpecChange } from '../../../src/operator/restore/source.js';
import { cluster, envOf, specOf } from '../desired/fixtures.js';

const DIRECTORY = { directory: { path: '/backups' } };
const RESTORE: MessageQueueClusterSpec = {
  shards: 2,
  restore: { from: { cluster: 'old', target: DIRECTORY }, pointInTime: '2026-01-05T10:17:00Z' },
};
const NOW = new Date('2026-01-06T00:00:00Z');

describe('spec.restore validation', () => {
  it('defaults the target to spec.backup.target', () => {
    const cr = cluster({
      restore: { from: { cluster: 'old' } },
      backup: { schedule: '@daily', target: DIRECTORY },
    });
    expect(cr.spec.restore?.from.target).toEqual(DIRECTORY);
  });

  it('refuses a restore without a target, a bad source name and a point without a zone', () => {
    const problems = validateSpec({
      restore: { from: { cluster: 'Old_Cluster' }, pointInTime: '2026-01-05 10:17:00' },
    });
    expect(problems).toEqual([
      'spec.restore.from.cluster "Old_Cluster" is not a MessageQueueCluster name',
      expect.stringContaining('spec.restore.from.target is not set and there is no spec.backup.target'),
      expect.stringContaining('spec.restore.pointInTime "2026-01-05 10:17:00" is not an RFC 3339 time'),
    ]);
    expect(validateSpec(RESTORE)).toEqual([]);
  });

  it('refuses a changed, added or early-removed spec.restore, and allows removing it once done', () => {
    const previous: RestoreStatus = {
      from: 'old in directory /backups',
      pointInTime: '2026-01-05T10:17:00Z',
    };
    const cr = cluster(RESTORE);
    expect(restoreSpecChange(cr, previous.from, previous, true)).toBeUndefined();
    expect(restoreSpecChange(cr, 'other in directory /backups', previous, true)).toContain('cannot change');
    expect(
      restoreSpecChange(
        cluster({ ...RESTORE, restore: { ...RESTORE.restore!, pointInTime: undefined } }),
        previous.from,
        previous,
        true,
      ),
    ).toContain('cannot change');
    expect(restoreSpecChange(cr, previous.from, undefined, true)).toContain(
      'added to a cluster that already holds data',
    );
    expect(restoreSpecChange(cr, previous.from, undefined, false)).toBeUndefined();
    expect(restoreSpecChange(cluster({}), undefined, previous, true)).toContain('cannot be removed');
    expect(
      restoreSpecChange(cluster({}), undefined, { ...previous, completedTime: 'x' }, true),
    ).toBeUndefined();
  });
});

describe('the restoring Pod', () => {
  it('asks instance 0 to restore through an annotation, with the passwords and S3 keys as secret references', () => {
    const cr = cluster({
      ...RESTORE,
      restore: {
        from: { cluster: 'old', target: { s3: { bucket: 'b', credentialsSecret: 's3-keys' } } },
      },
    });
    const pod = mysqlPod(cr, 1, 0, 'primary', undefined, true);
    const request = JSON.parse(pod.metadata.annotations!['mysqlmq.io/restore']!);
    expect(request).toEqual({
      cluster: 'old',
      shard: 'shard-1',
      target: { s3: { bucket: 'b' } },
      serverId: 3,
      accounts: [
        { user: 'root', passwordEnv: 'MQ_ROOT_PASSWORD' },
        { user: 'mysqlmq-admin', passwordEnv: 'MQ_ADMIN_PASSWORD' },
        { user: 'mq_repl', passwordEnv: 'MQ_REPLICATION_PASSWORD' },
        { user: 'mq_broker', passwordEnv: 'MQ_BROKER_PASSWORD' },
        { user: 'mq_monitor', passwordEnv: 'MQ_MONITOR_PASSWORD' },
      ],
    });
    const env = envOf(specOf(pod).initContainers[0]);
    expect(env.MQ_RESTORE).toEqual({ fieldRef: { fieldPath: "metadata.annotations['mysqlmq.io/restore']" } });
    expect(env.MQ_BROKER_PASSWORD).toEqual({
      secretKeyRef: { name: 'mq-credentials', key: 'broker-password' },
    });
    expect(env.MQ_ROOT_PASSWORD).toEqual({ secretKeyRef: { name: 'mq-credentials', key: 'root-password' } });
    expect(env.AWS_SECRET_ACCESS_KEY).toEqual({
      secretKeyRef: { name: 's3-keys', key: 'secretAccessKey', optional: true },
    });
    // Not asked (the shard is bootstrapped): same spec, no annotation, so no restart and no restore.
    const later = mysqlPod(cr, 1, 0, 'primary');
    expect(later.metadata.annotations).not.toHaveProperty('mysqlmq.io/restore');
    expect(later.metadata.annotations!['mysqlmq.io/config-hash']).toBe(
      pod.metadata.annotations!['mysqlmq.io/config-hash'],
    );
    // The standby never restores: it copies its primary.
    expect(envOf(specOf(mysqlPod(cr, 1, 1, 'standby')).initContainers[0])).not.toHaveProperty('MQ_RESTORE');
  });

  it("mounts a directory target's volume read-only at its path into instance 0's seed step only", () => {
    const volume = { persistentVolumeClaim: { claimName: 'mq-backups' } };
    const cr = cluster({
      ...RESTORE,
      restore: { from: { cluster: 'old', target: { directory: { path: '/backups', volume } } } },
    });
    const pod = mysqlPod(cr, 0, 0, 'primary', undefined, true);
    // The step finds the backups at the path; the request names no volume.
    expect(JSON.parse(pod.metadata.annotations!['mysqlmq.io/restore']!).target).toEqual(DIRECTORY);
    const spec = specOf(pod);
    expect(spec.volumes).toContainEqual({ name: 'restore-source', ...volume });
    expect(spec.initContainers[0].volumeMounts).toContainEqual({
      name: 'restore-source',
      mountPath: '/backups',
      readOnly: true,
    });
    // Neither mariadbd nor the agent sees it, nor the standby, nor a target without a volume.
    for (const c of spec.containers)
      expect(c.volumeMounts).not.toContainEqual(expect.objectContaining({ name: 'restore-source' }));
    expect(specOf(mysqlPod(cr, 0, 1, 'standby')).volumes).not.toContainEqual(
      expect.objectContaining({ name: 'restore-source' }),
    );
    expect(specOf(mysqlPod(cluster(RESTORE), 0, 0, 'primary', undefined, true)).volumes).not.toContainEqual(
      expect.objectContaining({ name: 'restore-source' }),
    );
  });

  it('leaves the Pods of a cluster without spec.restore as they were', () => {
    const env = envOf(specOf(mysqlPod(cluster({}), 0, 0, 'primary', undefined, true)).initContainers[0]);
    expect(Object.keys(env)).toEqual([
      'MQ_ADMIN_PASSWORD',
      'MQ_MONITOR_PASSWORD',
      'MQ_SEED_SOURCE',
      'MQ_SEED_ID',
    ]);
  });

  it('annotates only the shards still to restore', () => {
    const cr = cluster(RESTORE);
    const pods = desiredObjects(cr, {
      credentials: generateCredentials(),
      routing: initialRouting(cr),
      restoring: new Set(['shard-1']),
    }).filter((o) => o.kind === 'Pod' && o.metadata.annotations?.['mysqlmq.io/restore']);
    expect(pods.map((p) => p.metadata.name)).toEqual(['mq-shard-1-0']);
  });
});

const shard = (name: string, over: Partial<RestoringShard> = {}): RestoringShard => ({
  name,
  bootstrapped: false,
  ...over,
});

describe('planRestorePods', () => {
  it('holds each standby until its restored primary is ready, then seeds it from that primary', () => {
    const plan = planRestorePods(cluster(RESTORE), [
      shard('shard-0', { primaryPod: { ready: false, podIP: '10.0.0.1' } }),
      shard('shard-1', { primaryPod: { ready: true, podIP: '10.0.0.2' } }),
    ]);
    expect([...plan.restoring]).toEqual(['shard-0', 'shard-1']);
    expect([...plan.held]).toEqual(['mq-shard-0-1']);
    expect(plan.seeds).toEqual({ 'mq-shard-1-1': { source: '10.0.0.2:9080' } });
  });

  it('does nothing for a bootstrapped shard or a cluster without spec.restore', () => {
    const plan = planRestorePods(cluster(RESTORE), [shard('shard-0', { bootstrapped: true })]);
    expect(plan).toEqual({ restoring: new Set(), held: new Set(), seeds: {} });
    expect(planRestorePods(cluster({}), [shard('shard-0')]).restoring.size).toBe(0);
  });
});

describe('restoreReport', () => {
  const cr = cluster(RESTORE);
  const FROM = 'old in directory /backups';
  const done = (at: string) => ({
    ready: true,
    seed: { restartCount: 0, state: { terminated: { exitCode: 0, finishedAt: at } } },
  });

  it('starts Restoring with a RestoreStarted Event', () => {
    const r = restoreReport(cr, FROM, [shard('shard-0'), shard('shard-1')], undefined, undefined, NOW)!;
    expect(r.condition).toMatchObject({ status: 'False', reason: 'Restoring' });
    expect(r.events.map((e) => e.reason)).toEqual(['RestoreStarted']);
    expect(r.status).toMatchObject({ from: FROM, pointInTime: '2026-01-05T10:17:00Z', error: '' });
  });

  it('reports a failing init step once, naming the Pod and where to read why', () => {
    const failing = shard('shard-1', {
      primaryPod: { ready: false, seed: { restartCount: 2, lastState: { terminated: { exitCode: 1 } } } },
    });
    const r = restoreReport(cr, FROM, [shard('shard-0'), failing], { from: FROM }, undefined, NOW)!;
    expect(r.condition).toMatchObject({ status: 'False', reason: 'RestoreFailed' });
    expect(r.status.error).toContain('seed init step of Pod mq-shard-1-0');
    expect(r.status.error).toContain('`kubectl logs -n ns mq-shard-1-0 -c seed` says why');
    expect(r.events.map((e) => e.reason)).toEqual(['RestoreFailed']);
    const again = restoreReport(cr, FROM, [shard('shard-0'), failing], r.status, undefined, NOW)!;
    expect(again.events).toEqual([]);
  });

  it('completes when every primary finished its restore, with one RestoreCompleted Event', () => {
    const shards = [
      shard('shard-0', { primaryPod: done('2026-01-06T00:00:01Z') }),
      shard('shard-1', { primaryPod: done('2026-01-06T00:00:05Z') }),
    ];
    const r = restoreReport(cr, FROM, shards, { from: FROM }, undefined, NOW)!;
    expect(r.condition).toMatchObject({ status: 'True', reason: 'RestoreCompleted' });
    expect(r.status.completedTime).toBe('2026-01-06T00:00:05Z');
    expect(r.status.shards).toEqual([
      { name: 'shard-0', completedTime: '2026-01-06T00:00:01Z' },
      { name: 'shard-1', completedTime: '2026-01-06T00:00:05Z' },
    ]);
    expect(r.events.map((e) => e.reason)).toEqual(['RestoreCompleted']);
    expect(restoreReport(cr, FROM, shards, r.status, undefined, NOW)!.events).toEqual([]);
  });

  it('shows a source that cannot be restored as SourceUnusable', () => {
    const r = restoreReport(cr, FROM, [], undefined, 'no finished backup of old', NOW)!;
    expect(r.condition).toMatchObject({
      status: 'False',
      reason: 'SourceUnusable',
      message: 'no finished backup of old',
    });
    expect(r.events.map((e) => e.reason)).toEqual(['RestoreStarted', 'RestoreFailed']);
  });
});

describe('the restore init step', () => {
  it('restores an empty or half-restored directory, skips a restored one, refuses one holding other data', () => {
    expect(planRestore({ initialised: false, restored: false, incomplete: false }).restore).toBe(true);
    expect(planRestore({ initialised: true, restored: true, incomplete: true }).restore).toBe(true);
    expect(planRestore({ initialised: true, restored: true, incomplete: false }).restore).toBe(false);
    expect(planRestore({ initialised: true, restored: false, incomplete: false })).toMatchObject({
      restore: false,
      fail: true,
      reason: expect.stringContaining('delete its PersistentVolumeClaim'),
    });
  });

  it('reads the annotation and the passwords, naming what is missing', () => {
    expect(parseRestoreRequest('')).toBeUndefined();
    expect(parseRestoreRequest('{')).toContain('not JSON');
    expect(parseRestoreRequest('{"cluster":"old"}')).toContain('lacks');
    const request = { cluster: 'old', shard: 'shard-0', target: DIRECTORY, serverId: 1, accounts: [] };
    expect(parseRestoreRequest(JSON.stringify({ ...request, pointInTime: 'yesterday' }))).toContain(
      'RFC 3339',
    );
    expect(parseRestoreRequest(JSON.stringify(request))).toEqual(request);
    const accounts = [
      { user: 'root', passwordEnv: 'A' },
      { user: 'mq_repl', passwordEnv: 'B' },
    ];
    expect(accountPasswords(accounts, { A: 'x' })).toBe('the environment lacks B');
    expect(accountPasswords(accounts, { A: 'x', B: 'y' })).toEqual([
      { user: 'root', password: 'x' },
      { user: 'mq_repl', password: 'y' },
    ]);
  });

  it("sets the new cluster's passwords unlogged, forgets the source's position and binlogs one transaction", () => {
    const script = adoptionScript(
      {
        accounts: [
          { user: 'root', password: "p'w\\d" },
          { user: 'mq_monitor', password: 'm' },
        ],
        serverId: 3,
        restoredFrom: 'x',
        firstBinlog: 8,
      },
      [
        { user: 'root', host: '%' },
        { user: 'root', host: 'localhost' },
      ],
    ).split('\n');
    expect(script.slice(0, 4)).toEqual([
      'FLUSH PRIVILEGES;',
      'SET SESSION sql_log_bin = 0;',
      `ALTER USER 'root'@'%' IDENTIFIED BY 'p\\'w\\\\d';`,
      `ALTER USER 'root'@'localhost' IDENTIFIED BY 'p\\'w\\\\d';`,
    ]);
    expect(script.join('\n')).not.toContain('mq_monitor');
    expect(script.slice(4, 6)).toEqual(['RESET MASTER TO 8;', `SET GLOBAL gtid_slave_pos = '';`]);
    expect(script.slice(6).join('\n')).toMatch(
      /sql_log_bin = 1;\nCREATE TABLE IF NOT EXISTS mysql.mysqlmq_restore .* ENGINE=InnoDB;\nINSERT INTO mysql.mysqlmq_restore/,
    );
    expect(sqlString("a'b")).toBe("'a\\'b'");
  });

  it("numbers the new binlog past the source's file InnoDB recorded", () => {
    expect(firstBinlogNumber('./mysql-bin.000007\t230948\n')).toBe(8);
    expect(firstBinlogNumber('')).toBe(1);
  });
});
