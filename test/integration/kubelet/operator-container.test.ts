/**
 * The test kubelet's `operator` containers, piece by piece: how the container's command maps to a
 * local `node dist/operator/main.js` process, what environment it gets, its probes, and the
 * kubeconfig built from the pod's ServiceAccount token Secret — checked against a real
 * kube-apiserver, whose RBAC must limit that token to what the account is granted.
 */
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CoreV1Api,
  KubeConfig,
  RbacAuthorizationV1Api,
  type V1Container,
  type V1Pod,
  type V1Secret,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isApiError, loadKubeConfig } from '../../../src/k8s/client.js';
import {
  containerKind,
  defaultOperatorMain,
  livenessCheck,
  localOperatorArgv,
  operatorArgs,
  operatorExtraEnv,
  readinessCheck,
} from '../../../tools/local/kubelet/containers.js';
import { type ObjectLookup, resolveEnv } from '../../../tools/local/kubelet/env.js';
import {
  SERVICE_ACCOUNT_TOKEN_TYPE,
  automountsToken,
  credentialsFromSecret,
  endpointOf,
  findTokenSecret,
  podServiceAccountCredentials,
  podServiceAccountName,
  serviceAccountKubeconfig,
  writeServiceAccountFiles,
} from '../../../tools/local/kubelet/service-account.js';
import type { PodVolumes } from '../../../tools/local/kubelet/volumes.js';
import { type Kube, startKube } from '../../support/kube.js';

/** The operator container as helm/mysqlmq-operator renders it (default values). */
const chartContainer: V1Container = {
  name: 'operator',
  image: 'ghcr.io/mysqlmq/mysqlmq:0.1.0',
  command: ['node', '/app/dist/operator/main.js'],
  args: ['--leader-elect'],
  env: [
    { name: 'WATCH_NAMESPACES', value: '' },
    { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
    { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    { name: 'MQ_LOG_LEVEL', value: 'info' },
    { name: 'METRICS_PORT', value: '8080' },
    { name: 'HEALTH_PORT', value: '8081' },
    { name: 'LEADER_ELECT_LEASE_DURATION', value: '15s' },
  ],
  ports: [
    { name: 'http-metrics', containerPort: 8080 },
    { name: 'http-health', containerPort: 8081 },
  ],
  livenessProbe: {
    httpGet: { path: '/healthz', port: 'http-health' },
    initialDelaySeconds: 15,
    periodSeconds: 20,
  },
  readinessProbe: {
    httpGet: { path: '/readyz', port: 'http-health' },
    initialDelaySeconds: 5,
    periodSeconds: 10,
  },
  volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
};

const chartPod: V1Pod = {
  metadata: { name: 'mysqlmq-operator-7d9c-abcde', namespace: 'mysqlmq-system', uid: 'u1' },
  spec: { serviceAccountName: 'mysqlmq-operator', containers: [chartContainer] },
};

/** Volumes that know one emptyDir, mounted at /tmp. */
const volumes = {
  mountPath: (m: { name: string }) => (m.name === 'tmp' ? '/state/pods/ns/p/volumes/tmp' : undefined),
  mapArg: (_c: V1Container, a: string) => a.replace('=/tmp/', '=/state/pods/ns/p/volumes/tmp/'),
  mapPath: (_c: V1Container, p: string) => p,
} as unknown as PodVolumes;

describe('operator containers: process and environment', () => {
  it('an "operator" container is run by the kubelet', () => {
    expect(containerKind(chartContainer)).toBe('operator');
    expect(containerKind({ name: 'sidecar' })).toBeUndefined();
    expect(defaultOperatorMain()).toMatch(/[/\\]dist[/\\]operator[/\\]main\.js$/);
  });

  it("maps the image's node /app/dist/operator/main.js to the repository's dist, keeping flags and node options", () => {
    expect(operatorArgs(chartContainer)).toEqual({ nodeOptions: [], args: ['--leader-elect'] });
    const c: V1Container = {
      name: 'operator',
      command: ['/usr/local/bin/node', '--max-old-space-size=128', '/app/dist/operator/main.js'],
      args: ['--leader-elect', '--namespace=$(POD_NAMESPACE)', '--scratch=/tmp/x', '$$(literal)'],
    };
    expect(operatorArgs(c, { POD_NAMESPACE: 'ops' })).toEqual({
      nodeOptions: ['--max-old-space-size=128'],
      args: ['--leader-elect', '--namespace=ops', '--scratch=/tmp/x', '$(literal)'],
    });
    expect(
      localOperatorArgv({
        container: c,
        env: { POD_NAMESPACE: 'ops' },
        operatorMain: '/repo/dist/operator/main.js',
        volumes,
      }),
    ).toEqual([
      '--max-old-space-size=128',
      '/repo/dist/operator/main.js',
      '--leader-elect',
      '--namespace=ops',
      '--scratch=/state/pods/ns/p/volumes/tmp/x',
      '$(literal)',
    ]);
    // Only args (the image's entrypoint runs the operator).
    expect(operatorArgs({ name: 'operator', args: ['--leader-elect'] })).toEqual({
      nodeOptions: [],
      args: ['--leader-elect'],
    });
  });

  it('resolves the chart env (fieldRefs) and adds KUBECONFIG, POD_IP and TMPDIR', async () => {
    const lookup = {} as ObjectLookup; // the chart's env refers to no Secret or ConfigMap
    const env = await resolveEnv(chartPod, chartContainer, lookup, {
      podIP: '127.88.0.4',
      hostIP: '127.0.0.1',
    });
    expect(env).toEqual({
      WATCH_NAMESPACES: '',
      POD_NAMESPACE: 'mysqlmq-system',
      POD_NAME: 'mysqlmq-operator-7d9c-abcde',
      MQ_LOG_LEVEL: 'info',
      METRICS_PORT: '8080',
      HEALTH_PORT: '8081',
      LEADER_ELECT_LEASE_DURATION: '15s',
    });
    const extra = operatorExtraEnv({
      container: chartContainer,
      env,
      podIP: '127.88.0.4',
      serviceAccountKubeconfig: '/state/pods/mysqlmq-system/p/serviceaccount/kubeconfig',
      volumes,
    });
    expect(extra).toEqual({
      KUBECONFIG: '/state/pods/mysqlmq-system/p/serviceaccount/kubeconfig',
      POD_IP: '127.88.0.4',
      TMPDIR: '/state/pods/ns/p/volumes/tmp',
    });
    // A spec that sets POD_IP itself (fieldRef status.podIP) keeps it; no token, no KUBECONFIG.
    expect(
      operatorExtraEnv({
        container: { name: 'operator' },
        env: { POD_IP: '127.88.0.4' },
        podIP: '127.88.0.4',
        serviceAccountKubeconfig: undefined,
        volumes,
      }),
    ).toEqual({});
  });

  it('probes the health port at the pod IP: readiness /readyz, liveness /healthz with the chart timings', () => {
    expect(readinessCheck('operator', chartContainer)).toEqual({
      kind: 'http',
      port: 8081,
      path: '/readyz',
      timeoutMs: 1000,
    });
    expect(readinessCheck('operator', { name: 'operator' })).toEqual({ kind: 'running' });
    expect(livenessCheck(chartContainer)).toEqual({
      check: { kind: 'http', port: 8081, path: '/healthz', timeoutMs: 1000 },
      initialDelayMs: 15_000,
      periodMs: 20_000,
      failureThreshold: 3,
    });
    expect(livenessCheck({ name: 'x' })).toBeUndefined();
    expect(livenessCheck({ name: 'x', livenessProbe: { exec: { command: ['true'] } } })).toBeUndefined();
  });
});

describe('service account kubeconfig', () => {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const tokenSecret = (name: string, sa: string, extra: Partial<V1Secret> = {}, uid?: string): V1Secret => ({
    metadata: {
      name,
      namespace: 'ops',
      annotations: {
        'kubernetes.io/service-account.name': sa,
        ...(uid ? { 'kubernetes.io/service-account.uid': uid } : {}),
      },
    },
    type: SERVICE_ACCOUNT_TOKEN_TYPE,
    data: {
      token: b64(`tok-${name}`),
      'ca.crt': b64('-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n'),
      namespace: b64('ops'),
    },
    ...extra,
  });

  it('finds the token Secret of the pod service account', () => {
    const secrets = [
      tokenSecret('default-token-a', 'default'),
      tokenSecret('op-token-z', 'op'),
      tokenSecret('op-token-b', 'op'),
      tokenSecret('op-token-old', 'op', {}, 'old-uid'),
      tokenSecret('op-opaque', 'op', { type: 'Opaque' }),
      tokenSecret('op-empty', 'op', { data: {} }),
    ];
    expect(findTokenSecret(secrets, 'op')?.metadata?.name).toBe('op-token-b'); // stable: by name
    const sa = { metadata: { name: 'op', uid: 'new-uid' }, secrets: [{ name: 'op-token-z' }] };
    expect(findTokenSecret(secrets, 'op', sa)?.metadata?.name).toBe('op-token-z'); // listed first
    expect(findTokenSecret(secrets, 'op', { metadata: { uid: 'x' } })?.metadata?.name).toBe('op-token-b');
    expect(findTokenSecret(secrets.slice(3), 'op', { metadata: { uid: 'new-uid' } })).toBeUndefined(); // stale uid
    expect(findTokenSecret(secrets, 'nobody')).toBeUndefined();
    expect(podServiceAccountName(chartPod)).toBe('mysqlmq-operator');
    expect(podServiceAccountName({ spec: { containers: [] } })).toBe('default');
    expect(automountsToken(chartPod, undefined)).toBe(true);
    expect(automountsToken(chartPod, { automountServiceAccountToken: false })).toBe(false);
    expect(
      automountsToken(
        { spec: { containers: [], automountServiceAccountToken: true } },
        { automountServiceAccountToken: false },
      ),
    ).toBe(true);
  });

  it('builds a kubeconfig client-node loads: server of the kubelet, CA of the secret, the token, the namespace', () => {
    const creds = credentialsFromSecret(tokenSecret('op-token-b', 'op'), 'op');
    expect(creds).toMatchObject({ token: 'tok-op-token-b', namespace: 'ops', serviceAccountName: 'op' });
    const text = serviceAccountKubeconfig(creds, { server: 'https://127.0.0.1:6443', caPem: 'OTHER' });
    const kc = new KubeConfig();
    kc.loadFromString(text);
    expect(kc.getCurrentCluster()?.server).toBe('https://127.0.0.1:6443');
    expect(Buffer.from(kc.getCurrentCluster()!.caData!, 'base64').toString()).toContain('\nCA\n'); // the secret's
    expect(kc.getCurrentUser()).toMatchObject({
      name: 'system:serviceaccount:ops:op',
      token: 'tok-op-token-b',
    });
    expect(kc.getContextObject(kc.getCurrentContext())?.namespace).toBe('ops');
    // Without ca.crt in the secret, the kubelet's CA.
    const noCa = { ...creds, caPem: undefined };
    const kc2 = new KubeConfig();
    kc2.loadFromString(serviceAccountKubeconfig(noCa, { server: 'https://h:1', caPem: 'KUBELET-CA' }));
    expect(Buffer.from(kc2.getCurrentCluster()!.caData!, 'base64').toString()).toBe('KUBELET-CA');
    expect(() => credentialsFromSecret({ metadata: { name: 's' }, data: {} }, 'op')).toThrow(/has no token/);
  });
});

describe('service account kubeconfig on a real apiserver', () => {
  let kube: Kube;
  let core: CoreV1Api;
  let dir: string;
  const ns = 'op-rbac';
  beforeAll(async () => {
    kube = await startKube();
    core = kube.kc.makeApiClient(CoreV1Api);
    dir = await mkdtemp(join(tmpdir(), 'mq-sa-'));
  });
  afterAll(async () => {
    await kube?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("gives the process exactly the ServiceAccount's RBAC", async () => {
    await core.createNamespace({ body: { metadata: { name: ns } } });
    await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'operator' } } });
    const pod: V1Pod = {
      metadata: { name: 'p', namespace: ns },
      spec: { serviceAccountName: 'operator', containers: [] },
    };
    // The token controller creates the Secret within a moment; until then it is a ContainerConfigError.
    let found: Awaited<ReturnType<typeof podServiceAccountCredentials>> | undefined;
    for (let i = 0; i < 100 && !found; i++) {
      found = await podServiceAccountCredentials(core, pod).catch(() => undefined);
      if (!found) await new Promise((r) => setTimeout(r, 200));
    }
    expect(found?.automount).toBe(true);
    const path = await writeServiceAccountFiles(
      join(dir, 'serviceaccount'),
      found!.creds,
      endpointOf(kube.kc),
    );
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'serviceaccount'))).mode & 0o777).toBe(0o700);
    expect(await readFile(join(dir, 'serviceaccount', 'namespace'), 'utf8')).toBe(ns);

    // Loaded the way the operator loads it (KUBECONFIG).
    const kc = loadKubeConfig({ env: { KUBECONFIG: path } });
    const asOperator = kc.makeApiClient(CoreV1Api);
    const forbidden = await asOperator.listNamespace().catch((e: unknown) => e);
    expect(isApiError(forbidden, 403)).toBe(true);
    expect(String((forbidden as { body?: unknown }).body)).toContain(
      'system:serviceaccount:op-rbac:operator',
    );

    const rbac = kube.kc.makeApiClient(RbacAuthorizationV1Api);
    await rbac.createClusterRole({
      body: {
        metadata: { name: 'op-rbac-list-namespaces' },
        rules: [{ apiGroups: [''], resources: ['namespaces'], verbs: ['list'] }],
      },
    });
    await rbac.createClusterRoleBinding({
      body: {
        metadata: { name: 'op-rbac-list-namespaces' },
        roleRef: {
          apiGroup: 'rbac.authorization.k8s.io',
          kind: 'ClusterRole',
          name: 'op-rbac-list-namespaces',
        },
        subjects: [{ kind: 'ServiceAccount', name: 'operator', namespace: ns }],
      },
    });
    let names: string[] = [];
    for (let i = 0; i < 50 && !names.includes(ns); i++) {
      names = await asOperator
        .listNamespace()
        .then((l) => l.items.map((n) => n.metadata!.name!))
        .catch(() => []);
      if (!names.includes(ns)) await new Promise((r) => setTimeout(r, 200));
    }
    expect(names).toContain(ns);
    // Still nothing beyond the grant.
    const secrets = await asOperator.listNamespacedSecret({ namespace: ns }).catch((e: unknown) => e);
    expect(isApiError(secrets, 403)).toBe(true);
  });

  it('reports a missing ServiceAccount as a configuration error the kubelet retries', async () => {
    const pod: V1Pod = {
      metadata: { name: 'p', namespace: ns },
      spec: { serviceAccountName: 'nobody', containers: [] },
    };
    await expect(podServiceAccountCredentials(core, pod)).rejects.toMatchObject({
      name: 'ContainerConfigError',
      message: 'serviceaccount "nobody" not found',
    });
  });
});
