import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiException, V1MicroTime } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { withApplyDefaults } from '../../../src/k8s/apply.js';
import {
  apiErrorReason,
  errorSummary,
  isApiError,
  isConflict,
  isNotFound,
  loadKubeConfig,
  retryAfterMs,
} from '../../../src/k8s/client.js';
import { Backoff } from '../../../src/k8s/backoff.js';
import { objectKey, resourcePath, splitKey } from '../../../src/k8s/resources.js';

const notFound = new ApiException(
  404,
  'HTTP-Code: 404\nMessage: Unknown\nBody: …\nHeaders: {"authorization":"Bearer s3cr3t"}',
  JSON.stringify({
    kind: 'Status',
    status: 'Failure',
    reason: 'NotFound',
    message: 'configmaps "x" not found',
    code: 404,
  }),
  { 'content-type': 'application/json', authorization: 'Bearer s3cr3t' },
);

describe('ApiException helpers', () => {
  it('recognise codes and reasons from the JSON-string body', () => {
    expect(isApiError(notFound)).toBe(true);
    expect(isApiError(notFound, 404)).toBe(true);
    expect(isApiError(notFound, 409)).toBe(false);
    expect(isNotFound(notFound)).toBe(true);
    expect(isConflict(notFound)).toBe(false);
    expect(apiErrorReason(notFound)).toBe('NotFound');
    expect(isApiError(new Error('x'))).toBe(false);
    expect(apiErrorReason(new ApiException(500, 'm', '<html>bad gateway</html>', {}))).toBeUndefined();
  });

  it('summaries never contain headers or tokens', () => {
    const s = errorSummary(notFound);
    expect(s).toBe('HTTP 404 NotFound: configmaps "x" not found');
    expect(s).not.toMatch(/s3cr3t|authorization/i);
    expect(errorSummary(new Error('proxy said: Authorization: Bearer abc.def'))).not.toContain('abc.def');
    const econn = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6443'), { code: 'ECONNREFUSED' });
    expect(errorSummary(econn)).toBe('Error: connect ECONNREFUSED 127.0.0.1:6443 (ECONNREFUSED)');
    expect(errorSummary(new ApiException(502, 'm', '<html>x</html>', {}))).toBe('HTTP 502');
    expect(errorSummary('x'.repeat(2_000)).length).toBeLessThanOrEqual(501);
  });

  it('reads Retry-After from the header or the Status details', () => {
    expect(retryAfterMs(new ApiException(429, 'm', '', { 'retry-after': '3' }))).toBe(3_000);
    expect(
      retryAfterMs(new ApiException(429, 'm', JSON.stringify({ details: { retryAfterSeconds: 2 } }), {})),
    ).toBe(2_000);
    expect(retryAfterMs(notFound)).toBeUndefined();
  });
});

describe('loadKubeConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kc-test-'));
  const good = join(dir, 'good.yaml');
  writeFileSync(
    good,
    `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`,
  );
  const empty = join(dir, 'empty.yaml');
  writeFileSync(empty, 'apiVersion: v1\nkind: Config\nclusters: []\nusers: []\ncontexts: []\n');
  const home = join(dir, 'home');
  mkdirSync(home);

  it('fails fast when nothing is configured instead of falling back to localhost:8080', () => {
    expect(() => loadKubeConfig({ env: {}, homeDir: home })).toThrow(/no Kubernetes configuration/);
  });

  it('fails on a kubeconfig without a usable current cluster', () => {
    expect(() => loadKubeConfig({ env: { KUBECONFIG: empty }, homeDir: home })).toThrow(/names no cluster/);
    expect(() => loadKubeConfig({ env: { KUBECONFIG: join(dir, 'missing') }, homeDir: home })).toThrow();
  });

  it('loads an explicit path or $KUBECONFIG', () => {
    expect(loadKubeConfig({ kubeconfigPath: good, env: {} }).getCurrentCluster()?.server).toBe(
      'https://127.0.0.1:6443',
    );
    expect(loadKubeConfig({ env: { KUBECONFIG: good } }).getCurrentCluster()?.server).toBe(
      'https://127.0.0.1:6443',
    );
  });

  it('in-cluster requires the service-account token', () => {
    expect(() =>
      loadKubeConfig({ env: { KUBERNETES_SERVICE_HOST: '10.96.0.1' }, serviceAccountDir: join(dir, 'nope') }),
    ).toThrow(/token does not exist/);
  });
});

describe('resource paths', () => {
  it('builds core, grouped, namespaced, cluster-scoped and subresource paths', () => {
    expect(resourcePath({ apiVersion: 'v1', kind: 'ConfigMap', namespace: 'ns', name: 'a' })).toBe(
      '/api/v1/namespaces/ns/configmaps/a',
    );
    expect(resourcePath({ apiVersion: 'apps/v1', kind: 'Deployment', namespace: 'ns' })).toBe(
      '/apis/apps/v1/namespaces/ns/deployments',
    );
    expect(
      resourcePath(
        { apiVersion: 'mysqlmq.io/v1alpha1', kind: 'MessageQueueCluster', namespace: 'n', name: 'c' },
        'status',
      ),
    ).toBe('/apis/mysqlmq.io/v1alpha1/namespaces/n/messagequeueclusters/c/status');
    expect(resourcePath({ apiVersion: 'policy/v1beta1', kind: 'PodDisruptionBudget' })).toBe(
      '/apis/policy/v1beta1/poddisruptionbudgets',
    );
    expect(resourcePath({ apiVersion: 'v1', kind: 'Namespace', name: 'x' })).toBe('/api/v1/namespaces/x');
  });

  it('refuses unknown kinds and namespaced writes without a namespace', () => {
    expect(() => resourcePath({ apiVersion: 'v1', kind: 'Frobnicator' })).toThrow(/unknown kind/);
    expect(() => resourcePath({ apiVersion: 'v1', kind: 'Pod', name: 'p' })).toThrow(/namespace is required/);
  });

  it('keys', () => {
    expect(objectKey({ metadata: { namespace: 'ns', name: 'a' } })).toBe('ns/a');
    expect(objectKey({ metadata: { name: 'node1' } })).toBe('node1');
    expect(splitKey('ns/a')).toEqual({ namespace: 'ns', name: 'a' });
    expect(splitKey('a')).toEqual({ name: 'a' });
  });
});

describe('withApplyDefaults', () => {
  it('adds protocol TCP to Service and container ports (SSA on 1.20 rejects it missing) without mutating', () => {
    const svc = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 's', namespace: 'n' },
      spec: { ports: [{ port: 3306 }, { port: 53, protocol: 'UDP' }] },
    };
    expect(withApplyDefaults(svc)).toMatchObject({
      spec: { ports: [{ port: 3306, protocol: 'TCP' }, { protocol: 'UDP' }] },
    });
    expect(svc.spec.ports[0]).toEqual({ port: 3306 });
    const dep = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'd', namespace: 'n' },
      spec: { template: { spec: { containers: [{ name: 'c', ports: [{ containerPort: 8080 }] }] } } },
    };
    expect(withApplyDefaults(dep)).toMatchObject({
      spec: { template: { spec: { containers: [{ ports: [{ containerPort: 8080, protocol: 'TCP' }] }] } } },
    });
  });

  it('serializes V1MicroTime with microseconds', () => {
    const out = withApplyDefaults({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: 'l', namespace: 'n' },
      spec: { renewTime: new V1MicroTime('2026-01-02T03:04:05.678Z') },
    } as never) as { spec: { renewTime: string } };
    expect(out.spec.renewTime).toBe('2026-01-02T03:04:05.678000Z');
  });
});

describe('Backoff', () => {
  it('grows exponentially with equal jitter, caps and resets', () => {
    const b = new Backoff({ initialMs: 1_000, maxMs: 8_000, random: () => 1 });
    expect([b.next(), b.next(), b.next(), b.next(), b.next()]).toEqual([1000, 2000, 4000, 8000, 8000]);
    b.reset();
    const low = new Backoff({ initialMs: 1_000, random: () => 0 });
    expect(low.next()).toBe(500);
  });
});
