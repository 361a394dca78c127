import { describe, expect, it } from 'vitest';
import {
  DEFAULT_NODE_TOLERATIONS,
  InvalidSpecError,
  dataPvc,
  instanceMyCnf,
  mycnfConfigMap,
  mysqlPod,
  mysqlPodHash,
  roleOf,
  serverIdOf,
  primaryPdb,
  shardPdb,
  shardService,
} from '../../../src/operator/desired/shard.js';
import { OWNER, STANDARD_LABELS, container, envOf, plainCluster, specOf } from './fixtures.js';

const cnfValue = (cnf: string, key: string) => new RegExp(`^${key} = (.*)$`, 'm').exec(cnf)?.[1];

describe('my.cnf ConfigMap', () => {
  it('has one file per instance with a cluster-unique server_id', () => {
    const cm = mycnfConfigMap(plainCluster(), 1);
    expect(cm.kind).toBe('ConfigMap');
    expect(cm.metadata.name).toBe('mq-shard-1-mycnf');
    expect(cm.metadata.labels).toMatchObject({ ...STANDARD_LABELS, 'mysqlmq.io/shard': 'shard-1' });
    expect(cm.metadata.ownerReferences).toEqual([OWNER]);
    const data = cm.data as Record<string, string>;
    expect(Object.keys(data).sort()).toEqual(['instance-0.cnf', 'instance-1.cnf']);
    expect(cnfValue(data['instance-0.cnf']!, 'server_id')).toBe('3');
    expect(cnfValue(data['instance-1.cnf']!, 'server_id')).toBe('4');
    expect(cnfValue(data['instance-0.cnf']!, 'bind_address')).toBe('0.0.0.0');
    expect(cnfValue(data['instance-0.cnf']!, 'port')).toBe('3306');
    expect(cnfValue(data['instance-0.cnf']!, 'sync_binlog')).toBe('1');
    expect(cnfValue(data['instance-0.cnf']!, 'read_only')).toBe('ON');
  });

  it('gives every instance of the cluster its own server_id', () => {
    const ids = [0, 1, 2, 3].flatMap((s) => [0, 1].map((i) => serverIdOf(s, i)));
    expect(new Set(ids).size).toBe(8);
    expect(Math.min(...ids)).toBe(1);
  });

  it('applies user overrides', () => {
    const cnf = instanceMyCnf(
      plainCluster({ mysql: { config: { 'innodb-buffer-pool-size': '2G', max_connections: '900' } } }),
      0,
      0,
    );
    expect(cnfValue(cnf, 'innodb_buffer_pool_size')).toBe('2G');
    expect(cnfValue(cnf, 'max_connections')).toBe('900');
  });

  it('refuses to render an operator-owned key, in any spelling MariaDB accepts', () => {
    for (const key of ['server_id', 'Server-ID', 'loose-server-id', 'skip-log-bin', 'log_replica_updates']) {
      expect(() => mycnfConfigMap(plainCluster({ mysql: { config: { [key]: '9' } } }), 0), key).toThrow(
        InvalidSpecError,
      );
    }
  });
});

describe('instance Pod', () => {
  const cr = plainCluster({
    mysql: { image: 'mariadb:11.4', resources: { requests: { cpu: 1, memory: '2Gi' } } },
    podTemplate: {
      labels: { team: 'mq', 'mysqlmq.io/role': 'hijack' },
      annotations: { note: 'x' },
      nodeSelector: { disk: 'ssd' },
      tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'mq', effect: 'NoSchedule' }],
      priorityClassName: 'high',
    },
  });
  const pod = mysqlPod(cr, 1, 0, 'primary');
  const spec = specOf(pod);
  const c = container(spec, 'mariadb');

  it('is named and labelled per the design, role included', () => {
    expect(pod.apiVersion).toBe('v1');
    expect(pod.kind).toBe('Pod');
    expect(pod.metadata.name).toBe('mq-shard-1-0');
    expect(pod.metadata.namespace).toBe('ns');
    expect(pod.metadata.ownerReferences).toEqual([OWNER]);
    expect(pod.metadata.labels).toEqual({
      ...STANDARD_LABELS,
      'app.kubernetes.io/component': 'mysql',
      'mysqlmq.io/shard': 'shard-1',
      'mysqlmq.io/instance': '0',
      'mysqlmq.io/role': 'primary',
      team: 'mq',
    });
    expect(pod.metadata.annotations).toEqual({ note: 'x', 'mysqlmq.io/config-hash': mysqlPodHash(cr, 1, 0) });
  });

  it('runs as the mysql user of the image under the restricted pod security profile', () => {
    expect(spec.securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 999,
      runAsGroup: 999,
      fsGroup: 999,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(c.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      readOnlyRootFilesystem: true,
    });
    // The agent sidecar and the seed init step too: the restricted profile covers every container.
    for (const other of [container(spec, 'agent'), spec.initContainers[0]]) {
      expect(other.securityContext).toEqual({
        allowPrivilegeEscalation: false,
        capabilities: { drop: ['ALL'] },
        readOnlyRootFilesystem: true,
        runAsUser: 999,
        runAsGroup: 999,
      });
    }
  });

  it('gives every container with a read-only image a volume at each place it writes', () => {
    const volumes = new Map(spec.volumes.map((v: { name: string }) => [v.name, v]));
    const writable = (name: string) =>
      (name === 'seed' ? spec.initContainers[0] : container(spec, name)).volumeMounts
        .filter((m: { readOnly?: boolean }) => !m.readOnly)
        .map((m: { mountPath: string; name: string }) => [m.mountPath, volumes.get(m.name)]);
    // mariadbd and the image's entrypoint: the socket and pid file, temporary files, the data.
    expect(Object.fromEntries(writable('mariadb'))).toEqual({
      '/var/lib/mysql': expect.objectContaining({ persistentVolumeClaim: expect.anything() }),
      '/run/mysqld': expect.objectContaining({ emptyDir: {} }),
      '/tmp': expect.objectContaining({ emptyDir: {} }),
    });
    // The agent and the seed step: the data files and mariadb-backup's work files, not shared
    // with mariadbd's /tmp; the seed step also writes the init file.
    for (const name of ['agent', 'seed']) {
      const mounts = Object.fromEntries(writable(name));
      expect(Object.keys(mounts).sort()).toEqual(
        name === 'seed' ? ['/run/mysqlmq-init', '/tmp', '/var/lib/mysql'] : ['/tmp', '/var/lib/mysql'],
      );
      expect(mounts['/tmp']).not.toBe(Object.fromEntries(writable('mariadb'))['/tmp']);
    }
  });

  it('runs mariadb with root on localhost only, its my.cnf by subPath and its init file', () => {
    expect(c.image).toBe('mariadb:11.4');
    expect(c.ports).toEqual([{ name: 'mysql', containerPort: 3306, protocol: 'TCP' }]);
    expect(envOf(c)).toEqual({
      MARIADB_ROOT_PASSWORD: { secretKeyRef: { name: 'mq-credentials', key: 'root-password' } },
      MARIADB_ROOT_HOST: 'localhost',
    });
    expect(c.volumeMounts).toContainEqual({
      name: 'mysql-init',
      mountPath: '/run/mysqlmq-init',
      readOnly: true,
    });
    expect(spec.volumes).toContainEqual({ name: 'mysql-init', emptyDir: { medium: 'Memory' } });
    expect(instanceMyCnf(cr, 1, 0)).toMatch(/^init_file = \/run\/mysqlmq-init\/init\.sql$/m);
    expect(c.volumeMounts).toEqual(
      expect.arrayContaining([
        { name: 'data', mountPath: '/var/lib/mysql' },
        {
          name: 'mycnf',
          mountPath: '/etc/mysql/conf.d/mysqlmq.cnf',
          subPath: 'instance-0.cnf',
          readOnly: true,
        },
      ]),
    );
    expect(spec.volumes).toEqual(
      expect.arrayContaining([
        { name: 'data', persistentVolumeClaim: { claimName: 'data-mq-shard-1-0' } },
        { name: 'mycnf', configMap: { name: 'mq-shard-1-mycnf' } },
      ]),
    );
    expect(c.readinessProbe.tcpSocket).toEqual({ port: 3306 });
    expect(c.resources).toEqual({ requests: { cpu: '1', memory: '2Gi' } });
  });

  it('never puts the two instances of a shard on one node, and honours the pod template', () => {
    const shardTerm = {
      topologyKey: 'kubernetes.io/hostname',
      labelSelector: {
        matchLabels: {
          'mysqlmq.io/cluster': 'mq',
          'app.kubernetes.io/component': 'mysql',
          'mysqlmq.io/shard': 'shard-1',
        },
      },
    };
    expect(spec.affinity.podAntiAffinity).toEqual({
      requiredDuringSchedulingIgnoredDuringExecution: [shardTerm],
    });
    // placement.instanceAntiAffinity: preferred only spreads them, and the change rolls the Pods.
    const relaxed = plainCluster({ ...cr.spec, placement: { instanceAntiAffinity: 'preferred' } });
    expect(specOf(mysqlPod(relaxed, 1, 0, 'primary')).affinity.podAntiAffinity).toEqual({
      preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 100, podAffinityTerm: shardTerm }],
    });
    expect(mysqlPodHash(relaxed, 1, 0)).not.toBe(mysqlPodHash(cr, 1, 0));
    expect(spec.nodeSelector).toEqual({ disk: 'ssd' });
    expect(spec.tolerations).toEqual([
      { key: 'dedicated', operator: 'Equal', value: 'mq', effect: 'NoSchedule' },
      {
        key: 'node.kubernetes.io/not-ready',
        operator: 'Exists',
        effect: 'NoExecute',
        tolerationSeconds: 300,
      },
      {
        key: 'node.kubernetes.io/unreachable',
        operator: 'Exists',
        effect: 'NoExecute',
        tolerationSeconds: 300,
      },
    ]);
    expect(spec.priorityClassName).toBe('high');
    expect(spec.restartPolicy).toBe('Always');
    expect(spec.automountServiceAccountToken).toBe(false);
  });

  it('keeps its config hash through a role change, and changes it with what needs a restart', () => {
    const hash = (p: ReturnType<typeof mysqlPod>) => p.metadata.annotations!['mysqlmq.io/config-hash'];
    const base = hash(mysqlPod(plainCluster(), 0, 1, 'standby'));
    expect(hash(mysqlPod(plainCluster(), 0, 1, 'primary'))).toBe(base);
    expect(hash(mysqlPod(plainCluster({ shards: 5 }), 0, 1, 'standby'))).toBe(base);
    expect(
      hash(mysqlPod(plainCluster({ mysql: { config: { max_connections: '50' } } }), 0, 1, 'standby')),
    ).not.toBe(base);
    expect(hash(mysqlPod(plainCluster({ mysql: { image: 'mariadb:11.4' } }), 0, 1, 'standby'))).not.toBe(
      base,
    );
    expect(
      hash(mysqlPod(plainCluster({ podTemplate: { nodeSelector: { a: 'b' } } }), 0, 1, 'standby')),
    ).not.toBe(base);
    expect(hash(mysqlPod(plainCluster(), 0, 0, 'standby'))).not.toBe(base);
  });

  it('spells out the tolerations admission would add, unless the user covers them', () => {
    // Otherwise every apply of a Pod with user tolerations changes it (tolerations is an atomic list).
    expect(specOf(mysqlPod(plainCluster(), 0, 0, 'primary')).tolerations).toEqual([
      ...DEFAULT_NODE_TOLERATIONS,
    ]);
    const own = {
      key: 'node.kubernetes.io/unreachable',
      operator: 'Exists',
      effect: 'NoExecute',
      tolerationSeconds: 30,
    };
    expect(
      specOf(mysqlPod(plainCluster({ podTemplate: { tolerations: [own] } }), 0, 0, 'primary')).tolerations,
    ).toEqual([own, DEFAULT_NODE_TOLERATIONS[0]]);
    expect(
      specOf(
        mysqlPod(plainCluster({ podTemplate: { tolerations: [{ operator: 'Exists' }] } }), 0, 0, 'primary'),
      ).tolerations,
    ).toEqual([{ operator: 'Exists' }]);
  });

  it('derives roles from the primary index', () => {
    expect([0, 1].map((i) => roleOf(i, 0))).toEqual(['primary', 'standby']);
    expect([0, 1].map((i) => roleOf(i, 1))).toEqual(['standby', 'primary']);
  });
});

describe('data PVC', () => {
  it('requests spec.mysql.storage and is not owned under Retain (the default)', () => {
    const pvc = dataPvc(
      plainCluster({ mysql: { storage: { size: '5Gi', storageClassName: 'fast' } } }),
      2,
      1,
    );
    expect(pvc.kind).toBe('PersistentVolumeClaim');
    expect(pvc.metadata.name).toBe('data-mq-shard-2-1');
    expect(pvc.metadata.labels).toMatchObject({
      ...STANDARD_LABELS,
      'mysqlmq.io/shard': 'shard-2',
      'mysqlmq.io/instance': '1',
    });
    expect(pvc.metadata.ownerReferences).toBeUndefined();
    expect(pvc.spec).toEqual({
      accessModes: ['ReadWriteOnce'],
      resources: { requests: { storage: '5Gi' } },
      storageClassName: 'fast',
    });
  });

  it('is owned by the cluster under Delete, and uses the default class when none is given', () => {
    const pvc = dataPvc(plainCluster({ pvcDeletionPolicy: 'Delete' }), 0, 0);
    expect(pvc.metadata.ownerReferences).toEqual([OWNER]);
    expect(specOf(pvc).storageClassName).toBeUndefined();
    expect(specOf(pvc).resources.requests.storage).toBe('10Gi');
  });
});

describe('shard Services and PDB', () => {
  it('select the instance with the role label', () => {
    for (const role of ['primary', 'standby'] as const) {
      const svc = shardService(plainCluster(), 0, role);
      expect(svc.metadata.name).toBe(`mq-shard-0-${role}`);
      expect(svc.metadata.ownerReferences).toEqual([OWNER]);
      expect(svc.spec).toEqual({
        type: 'ClusterIP',
        selector: {
          'mysqlmq.io/cluster': 'mq',
          'app.kubernetes.io/component': 'mysql',
          'mysqlmq.io/shard': 'shard-0',
          'mysqlmq.io/role': role,
        },
        ports: [{ name: 'mysql', port: 3306, targetPort: 3306, protocol: 'TCP' }],
      });
    }
  });

  it('lets a drain evict the standby of a Healthy shard only, in the API version given', () => {
    expect(shardPdb(plainCluster(), 3, 'policy/v1beta1').spec).toMatchObject({ minAvailable: 1 });
    const pdb = shardPdb(plainCluster(), 3, 'policy/v1beta1', true);
    expect(pdb.apiVersion).toBe('policy/v1beta1');
    expect(pdb.kind).toBe('PodDisruptionBudget');
    expect(pdb.metadata.name).toBe('mq-shard-3');
    expect(pdb.spec).toEqual({
      minAvailable: 0,
      selector: {
        matchLabels: {
          'mysqlmq.io/cluster': 'mq',
          'app.kubernetes.io/component': 'mysql',
          'mysqlmq.io/shard': 'shard-3',
          'mysqlmq.io/role': 'standby',
        },
      },
    });
    expect(shardPdb(plainCluster(), 3, 'policy/v1').apiVersion).toBe('policy/v1');
  });

  it('never lets a drain evict the primary: the operator switches it over first', () => {
    expect(primaryPdb(plainCluster(), 3, 'policy/v1').spec).toEqual({
      minAvailable: 1,
      selector: {
        matchLabels: {
          'mysqlmq.io/cluster': 'mq',
          'app.kubernetes.io/component': 'mysql',
          'mysqlmq.io/shard': 'shard-3',
          'mysqlmq.io/role': 'primary',
        },
      },
    });
  });
});

describe('the agent of an instance Pod', () => {
  it('runs the agent sidecar and the seed init step from the mysqlmq image, on the data volume', () => {
    const cr = plainCluster();
    const spec = specOf(mysqlPod(cr, 0, 1, 'standby'));
    const agent = container(spec, 'agent');
    expect(agent.image).toBe(cr.spec.brokers.image);
    expect(agent.command).toEqual([
      'node',
      '/app/dist/agent/main.js',
      'serve',
      '--data-dir',
      '/var/lib/mysql',
      '--work-dir',
      '/tmp/mq-agent',
      '--host',
      '0.0.0.0',
      '--port',
      '9080',
    ]);
    // No readiness probe: Pod readiness stays the failover signal of MariaDB alone.
    expect(agent.readinessProbe).toBeUndefined();
    expect(agent.volumeMounts).toContainEqual({ name: 'data', mountPath: '/var/lib/mysql' });
    const [seed] = spec.initContainers;
    expect(seed.name).toBe('seed');
    expect(seed.command).toContain('seed');
    expect(envOf(seed).MQ_SEED_SOURCE).toEqual({
      fieldRef: { fieldPath: "metadata.annotations['mysqlmq.io/seed-source']" },
    });
    // The seed step writes the init file (admin and monitor users) where mariadb reads it.
    expect(seed.command.slice(-2)).toEqual(['--init-file', '/run/mysqlmq-init/init.sql']);
    expect(seed.volumeMounts).toContainEqual({ name: 'mysql-init', mountPath: '/run/mysqlmq-init' });
    expect(envOf(seed)).toMatchObject({
      MQ_ADMIN_PASSWORD: { secretKeyRef: { name: 'mq-credentials', key: 'admin-password' } },
      MQ_MONITOR_PASSWORD: { secretKeyRef: { name: 'mq-credentials', key: 'monitor-password' } },
    });
    expect(envOf(agent)).toMatchObject({
      MQ_ADMIN_PASSWORD: { secretKeyRef: { name: 'mq-credentials', key: 'admin-password' } },
    });
    // Neither holds root's password.
    expect(JSON.stringify([agent.env, seed.env])).not.toContain('root-password');
    expect(spec.volumes).toContainEqual({ name: 'agent-tmp', emptyDir: {} });
  });

  it('carries the seed annotations it is created with, outside the config hash', () => {
    const cr = plainCluster();
    const plain = mysqlPod(cr, 0, 1, 'standby');
    const seeded = mysqlPod(cr, 0, 1, 'standby', { source: '10.0.0.5:9080', id: '20261204' });
    expect(plain.metadata.annotations).not.toHaveProperty('mysqlmq.io/seed-source');
    expect(seeded.metadata.annotations).toMatchObject({
      'mysqlmq.io/seed-source': '10.0.0.5:9080',
      'mysqlmq.io/seed-id': '20261204',
    });
    expect(seeded.metadata.annotations!['mysqlmq.io/config-hash']).toBe(
      plain.metadata.annotations!['mysqlmq.io/config-hash'],
    );
  });
});

describe('the mysqld_exporter sidecar (spec.monitoring.mysqldExporter)', () => {
  it('is absent by default, so upgrading the operator restarts no instance Pod', () => {
    const spec = specOf(mysqlPod(plainCluster(), 0, 0, 'primary'));
    expect(spec.containers.map((c: { name: string }) => c.name)).toEqual(['mariadb', 'agent']);
  });

  it('when enabled, serves /metrics on port 9104 as mq_monitor, the password only by reference', () => {
    const cr = plainCluster({
      monitoring: { mysqldExporter: { enabled: true, resources: { limits: { cpu: '50m' } } } },
    });
    const spec = specOf(mysqlPod(cr, 0, 1, 'standby'));
    const exporter = container(spec, 'mysqld-exporter');
    expect(exporter.image).toBe(cr.spec.brokers.image);
    expect(exporter.command[0]).toBe('/usr/bin/prometheus-mysqld-exporter');
    expect(exporter.command).toContain('--web.listen-address=:9104');
    expect(exporter.ports).toEqual([{ name: 'metrics', containerPort: 9104, protocol: 'TCP' }]);
    const env = envOf(exporter);
    expect(env.MQ_MONITOR_PASSWORD).toEqual({
      secretKeyRef: { name: 'mq-credentials', key: 'monitor-password' },
    });
    // Kubernetes expands $(VAR) from the variables before it: the spec never holds the password.
    expect(env.DATA_SOURCE_NAME).toBe('mq_monitor:$(MQ_MONITOR_PASSWORD)@tcp(127.0.0.1:3306)/');
    expect(exporter.readinessProbe).toBeUndefined();
    expect(exporter.resources).toEqual({ limits: { cpu: '50m' } });
    expect(exporter.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
    });
    // Turning it on changes the Pod spec hash: instance Pods roll, standby first.
    expect(mysqlPodHash(cr, 0, 1)).not.toBe(mysqlPodHash(plainCluster(), 0, 1));
  });

  it('runs the image the spec names', () => {
    const cr = plainCluster({
      monitoring: { mysqldExporter: { enabled: true, image: 'registry/exporter:0.14' } },
    });
    expect(container(specOf(mysqlPod(cr, 1, 0, 'primary')), 'mysqld-exporter').image).toBe(
      'registry/exporter:0.14',
    );
  });
});
