import { describe, expect, it } from 'vitest';
import type { RoutingDocument } from '../../../src/api/routing.js';
import {
  brokerDeployment,
  brokerPdb,
  brokerSelectorString,
  brokerService,
  initialRouting,
  routingConfigMap,
} from '../../../src/operator/desired/brokers.js';
import { OWNER, STANDARD_LABELS, cluster, container, envOf, plainCluster, specOf } from './fixtures.js';

const doc: RoutingDocument = {
  version: 42,
  shards: [
    {
      name: 'shard-0',
      write: { host: '10.0.0.1', port: 3306 },
      read: { host: '10.0.0.1', port: 3306 },
      requireStandbyAck: true,
    },
    { name: 'shard-1', write: null, read: { host: '10.0.0.4', port: 3306 }, requireStandbyAck: true },
  ],
};

describe('routing ConfigMap', () => {
  it('holds the routing document as routing.json, with its version annotated', () => {
    const cm = routingConfigMap(cluster(), doc);
    expect(cm.metadata.name).toBe('mq-routing');
    expect(cm.metadata.ownerReferences).toEqual([OWNER]);
    expect(cm.metadata.annotations).toEqual({ 'mysqlmq.io/routing-version': '42' });
    expect(JSON.parse((cm.data as Record<string, string>)['routing.json']!)).toEqual(doc);
  });

  it('refuses a document brokers would reject', () => {
    const bad = {
      version: 1,
      shards: [{ name: 'Shard 0', write: null, read: null, requireStandbyAck: true }],
    };
    expect(() => routingConfigMap(cluster(), bad)).toThrow(/name/);
  });

  it('starts with every shard listed and none routable', () => {
    expect(initialRouting(cluster({ shards: 2, mysql: { durability: 'preferred' } }))).toEqual({
      version: 0,
      shards: [
        { name: 'shard-0', write: null, read: null, requireStandbyAck: false },
        { name: 'shard-1', write: null, read: null, requireStandbyAck: false },
      ],
    });
  });
});

describe('broker placement', () => {
  it('spreads brokers over zones without ever blocking their scheduling', () => {
    const spec = specOf(brokerDeployment(cluster())).template.spec;
    expect(spec.topologySpreadConstraints).toEqual([
      {
        maxSkew: 1,
        topologyKey: 'topology.kubernetes.io/zone',
        whenUnsatisfiable: 'ScheduleAnyway',
        labelSelector: {
          matchLabels:
            spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm
              .labelSelector.matchLabels,
        },
      },
    ]);
  });
});

describe('broker pod security', () => {
  it('runs as the image user, non-root, read-only root filesystem, no privileges, RuntimeDefault seccomp', () => {
    const spec = specOf(brokerDeployment(plainCluster())).template.spec;
    expect(spec.securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 1000,
      runAsGroup: 1000,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(container(spec, 'broker').securityContext).toEqual({
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      readOnlyRootFilesystem: true,
    });
  });
});

describe('broker Deployment', () => {
  const cr = plainCluster({
    brokers: {
      replicas: 3,
      image: 'reg/mq:1',
      port: 9090,
      maxMessageBytes: 4096,
      authSecretName: 'client-token',
      resources: { limits: { memory: '1Gi' } },
    },
    podTemplate: { labels: { team: 'mq' }, annotations: { note: 'x' } },
    users: [{ name: 'app', rights: [{ topic: 'orders', actions: ['produce'] }] }],
  });
  const dep = brokerDeployment(cr);
  const spec = specOf(dep);
  const pod = spec.template.spec;
  const c = container(pod, 'broker');

  it('runs spec.brokers.replicas pods selected by cluster and component', () => {
    expect(dep.apiVersion).toBe('apps/v1');
    expect(dep.kind).toBe('Deployment');
    expect(dep.metadata.name).toBe('mq-broker');
    expect(dep.metadata.ownerReferences).toEqual([OWNER]);
    expect(spec.replicas).toBe(3);
    expect(spec.selector).toEqual({
      matchLabels: { 'mysqlmq.io/cluster': 'mq', 'app.kubernetes.io/component': 'broker' },
    });
    expect(spec.template.metadata.labels).toEqual({
      ...STANDARD_LABELS,
      'app.kubernetes.io/component': 'broker',
      team: 'mq',
    });
    expect(spec.template.metadata.annotations.note).toBe('x');
    expect(spec.template.metadata.annotations['mysqlmq.io/config-hash']).toMatch(/^[0-9a-f]{16}$/);
  });

  it('starts the broker with the routing file, port and message limit', () => {
    expect(c.image).toBe('reg/mq:1');
    expect([...c.command, ...c.args]).toEqual([
      'node',
      '/app/dist/broker/main.js',
      '--routing',
      '/etc/mysqlmq/routing/routing.json',
      '--host',
      '0.0.0.0',
      '--port',
      '9090',
      '--max-message-bytes',
      '4096',
      '--users',
      '/etc/mysqlmq/users/users.json',
    ]);
    expect(c.ports).toEqual([{ name: 'http', containerPort: 9090, protocol: 'TCP' }]);
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 9090 });
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 9090 });
    expect(c.resources).toEqual({ limits: { memory: '1Gi' } });
  });

  it('takes secrets from Secrets only', () => {
    expect(envOf(c)).toEqual({
      NODE_OPTIONS: '--max-old-space-size=128 --max-semi-space-size=4',
      MQ_DB_USER: 'mq_broker',
      MQ_DB_PASSWORD: { secretKeyRef: { name: 'mq-credentials', key: 'broker-password' } },
      MQ_ADMIN_TOKEN: { secretKeyRef: { name: 'mq-credentials', key: 'admin-token' } },
      MQ_AUTH_TOKEN: { secretKeyRef: { name: 'client-token', key: 'token' } },
    });
    expect(
      envOf(container(specOf(brokerDeployment(plainCluster())).template.spec, 'broker')),
    ).not.toHaveProperty('MQ_AUTH_TOKEN');
  });

  it('mounts the routing and users ConfigMaps as directories, so updates reach running brokers', () => {
    expect(c.volumeMounts).toEqual([
      { name: 'routing', mountPath: '/etc/mysqlmq/routing', readOnly: true },
      { name: 'users', mountPath: '/etc/mysqlmq/users', readOnly: true },
    ]);
    expect(pod.volumes).toEqual([
      { name: 'routing', configMap: { name: 'mq-routing' } },
      { name: 'users', configMap: { name: 'mq-users' } },
    ]);
  });

  it('authenticates by default: without spec.users, the users file (the added admin) and the shared token if named', () => {
    const args = (d: ReturnType<typeof brokerDeployment>) =>
      container(specOf(d).template.spec, 'broker').args as string[];
    const usersFile = ['--users', '/etc/mysqlmq/users/users.json'];
    for (const spec of [{}, { users: [] }, { brokers: { authSecretName: 'client-token' } }]) {
      const d = brokerDeployment(plainCluster(spec));
      expect(args(d).slice(-2)).toEqual(usersFile);
      expect(args(d)).not.toContain('--no-auth');
      expect(container(specOf(d).template.spec, 'broker').volumeMounts).toContainEqual({
        name: 'users',
        mountPath: '/etc/mysqlmq/users',
        readOnly: true,
      });
    }
    const shared = container(
      specOf(brokerDeployment(plainCluster({ brokers: { authSecretName: 'client-token' } }))).template.spec,
      'broker',
    );
    expect(envOf(shared).MQ_AUTH_TOKEN).toEqual({ secretKeyRef: { name: 'client-token', key: 'token' } });
  });

  it('with spec.brokers.auth.enabled false: --no-auth, no users file, no token', () => {
    const off = brokerDeployment(plainCluster({ brokers: { auth: { enabled: false } } }));
    const c = container(specOf(off).template.spec, 'broker');
    expect(c.args).toContain('--no-auth');
    expect(c.args).not.toContain('--users');
    expect(envOf(c)).not.toHaveProperty('MQ_AUTH_TOKEN');
    expect(c.volumeMounts).toEqual([{ name: 'routing', mountPath: '/etc/mysqlmq/routing', readOnly: true }]);
    expect(specOf(off).template.spec.volumes).toEqual([
      { name: 'routing', configMap: { name: 'mq-routing' } },
    ]);
  });

  it('rolls when the spec or the auth Secret changes, not when the replica count does', () => {
    const hash = (d: ReturnType<typeof brokerDeployment>) =>
      specOf(d).template.metadata.annotations['mysqlmq.io/config-hash'];
    const base = hash(brokerDeployment(plainCluster()));
    expect(hash(brokerDeployment(plainCluster({ brokers: { replicas: 7 } })))).toBe(base);
    expect(hash(brokerDeployment(plainCluster({ brokers: { maxMessageBytes: 10 } })))).not.toBe(base);
    expect(hash(brokerDeployment(plainCluster(), { authSecretVersion: '12' }))).not.toBe(base);
    expect(hash(brokerDeployment(plainCluster(), { authSecretVersion: '12' }))).toBe(
      hash(brokerDeployment(plainCluster(), { authSecretVersion: '12' })),
    );
  });
});

describe('broker Service and PDB', () => {
  it('expose the broker port and tolerate one broker down', () => {
    const svc = brokerService(plainCluster({ brokers: { port: 9090 } }));
    expect(svc.metadata.name).toBe('mq-broker');
    expect(svc.spec).toEqual({
      type: 'ClusterIP',
      selector: { 'mysqlmq.io/cluster': 'mq', 'app.kubernetes.io/component': 'broker' },
      ports: [{ name: 'http', port: 9090, targetPort: 9090, protocol: 'TCP' }],
    });
    const pdb = brokerPdb(plainCluster(), 'policy/v1beta1');
    expect(pdb.apiVersion).toBe('policy/v1beta1');
    expect(pdb.spec).toEqual({ maxUnavailable: 1, selector: { matchLabels: specOf(svc).selector } });
  });

  it('gives the scale subresource its selector', () => {
    expect(brokerSelectorString(plainCluster())).toBe(
      'mysqlmq.io/cluster=mq,app.kubernetes.io/component=broker',
    );
  });
});

describe('brokers with spec.brokers.tls', () => {
  const tlsPod = (tls: { enabled?: boolean; secretName?: string }) =>
    specOf(brokerDeployment(cluster({ mysql: { tls: { enabled: false } }, brokers: { port: 9443, tls } })))
      .template.spec;

  it('serve HTTPS from the generated Secret, mounted as a directory so a renewal reaches them in place', () => {
    const pod = tlsPod({ enabled: true });
    const c = container(pod, 'broker');
    expect(c.args.slice(-4)).toEqual([
      '--tls-cert',
      '/etc/mysqlmq/tls/tls.crt',
      '--tls-key',
      '/etc/mysqlmq/tls/tls.key',
    ]);
    expect(c.volumeMounts).toContainEqual({ name: 'tls', mountPath: '/etc/mysqlmq/tls', readOnly: true });
    expect(pod.volumes).toContainEqual({
      name: 'tls',
      secret: { secretName: 'mq-broker-tls', defaultMode: 0o440 },
    });
    // The key file is group-readable only: the pod's group must be the broker's.
    expect(pod.securityContext.fsGroup).toBe(1000);
    expect(c.ports).toEqual([{ name: 'https', containerPort: 9443, protocol: 'TCP' }]);
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 9443, scheme: 'HTTPS' });
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 9443, scheme: 'HTTPS' });
  });

  it('serve the Secret the spec names instead', () => {
    expect(tlsPod({ enabled: true, secretName: 'my-cert' }).volumes).toContainEqual({
      name: 'tls',
      secret: { secretName: 'my-cert', defaultMode: 0o440 },
    });
  });

  it('on by default: a new cluster serves HTTPS from the generated Secret', () => {
    expect(container(tlsPod({}), 'broker').args).toContain('--tls-cert');
  });

  it('off: plain HTTP, no certificate mounted, and the pod template of before TLS existed', () => {
    const pod = tlsPod({ enabled: false });
    const c = container(pod, 'broker');
    expect(c.args).not.toContain('--tls-cert');
    expect(pod.volumes.map((v: { name: string }) => v.name)).toEqual(['routing', 'users']);
    expect(pod.securityContext).not.toHaveProperty('fsGroup');
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 9443 });
  });

  it('name the Service port https', () => {
    const svc = brokerService(cluster({ brokers: { port: 9443, tls: { enabled: true } } }));
    expect(specOf(svc).ports).toEqual([{ name: 'https', port: 9443, targetPort: 9443, protocol: 'TCP' }]);
  });
});
