import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUDIT_LOG_ENV, installRequestAudit, requestAuditFromEnv } from '../../../src/k8s/audit.js';
import { type RbacUse, parseResourcePath, rbacUseOf, rbacVerbOf } from '../../../src/k8s/rbac.js';
import {
  type PolicyRule,
  checkRbac,
  formatPermissions,
  rbacUsesOf,
  readAuditedRequests,
  readRequestAudit,
  ruleAllows,
  usesIn,
} from '../../support/rbac.js';
import { type AuditedRequest, KubeRest, auditedRequest } from '../../../src/k8s/rest.js';
import { coordinationLeaseClient } from '../../../src/operator/runtime/leader-election.js';

describe('rbacVerbOf', () => {
  const cases: [string, string, Record<string, string | boolean> | string | undefined, string | undefined][] =
    [
      ['GET', '/api/v1/namespaces/ns/pods/p', undefined, 'get'],
      ['HEAD', '/api/v1/namespaces/ns/pods/p', undefined, 'get'],
      ['GET', '/api/v1/namespaces/ns/pods', undefined, 'list'],
      ['GET', '/api/v1/pods', undefined, 'list'],
      ['GET', '/api/v1/pods', { watch: true }, 'watch'],
      ['GET', '/api/v1/pods', { watch: 'true', resourceVersion: '5' }, 'watch'],
      ['GET', '/api/v1/pods', 'watch=1&allowWatchBookmarks=true', 'watch'],
      ['GET', '/api/v1/pods?watch=true', undefined, 'watch'],
      ['GET', '/api/v1/pods', { watch: false }, 'list'],
      ['GET', '/api/v1/watch/namespaces/ns/pods', undefined, 'watch'],
      ['GET', '/api/v1/watch/namespaces/ns/pods/p', undefined, 'watch'],
      // A name wins over watch=true, as in the apiserver's RequestInfoFactory.
      ['GET', '/api/v1/namespaces/ns/pods/p', { watch: true }, 'get'],
      ['POST', '/api/v1/namespaces/ns/events', undefined, 'create'],
      ['POST', '/api/v1/namespaces/ns/pods/p/binding', undefined, 'create'],
      ['PUT', '/apis/coordination.k8s.io/v1/namespaces/ns/leases/l', undefined, 'update'],
      ['PATCH', '/apis/apps/v1/namespaces/ns/deployments/d', { fieldManager: 'x', force: true }, 'patch'],
      ['patch', '/apis/apps/v1/namespaces/ns/deployments/d', undefined, 'patch'],
      ['DELETE', '/api/v1/namespaces/ns/pods/p', undefined, 'delete'],
      ['DELETE', '/api/v1/namespaces/ns/pods', { labelSelector: 'a=b' }, 'deletecollection'],
      ['GET', '/api/v1/namespaces', undefined, 'list'],
      ['GET', '/api/v1/namespaces/ns', undefined, 'get'],
      ['PUT', '/api/v1/namespaces/ns/finalize', undefined, 'update'],
      // Non-resource URLs: discovery, version, health.
      ['GET', '/api', undefined, undefined],
      ['GET', '/api/v1', undefined, undefined],
      ['GET', '/apis', undefined, undefined],
      ['GET', '/apis/policy/v1beta1', undefined, undefined],
      ['GET', '/version', undefined, undefined],
      ['GET', '/readyz', undefined, undefined],
      ['OPTIONS', '/api/v1/pods', undefined, undefined],
    ];
  it.each(cases)('%s %s %j -> %s', (method, path, query, verb) => {
    expect(rbacVerbOf(method, path, query)).toBe(verb);
  });
});

describe('parseResourcePath / rbacUseOf', () => {
  it('splits group, namespace, resource, name and subresource', () => {
    expect(
      parseResourcePath('/apis/mysqlmq.io/v1alpha1/namespaces/ns/messagequeueclusters/c/status'),
    ).toEqual({
      apiGroup: 'mysqlmq.io',
      version: 'v1alpha1',
      namespace: 'ns',
      resource: 'messagequeueclusters',
      name: 'c',
      subresource: 'status',
    });
    expect(parseResourcePath('/api/v1/nodes/n1/proxy/metrics')).toEqual({
      apiGroup: '',
      version: 'v1',
      resource: 'nodes',
      name: 'n1',
      subresource: 'proxy/metrics',
    });
    expect(parseResourcePath('/api/v1/namespaces/ns/status')).toEqual({
      apiGroup: '',
      version: 'v1',
      namespace: 'ns',
      resource: 'namespaces',
      name: 'ns',
      subresource: 'status',
    });
    expect(parseResourcePath('/api/v1/namespaces/a%2Db/configmaps/x?limit=5')).toMatchObject({
      namespace: 'a-b',
      resource: 'configmaps',
      name: 'x',
    });
    expect(parseResourcePath('/apis/apps/v1')).toBeUndefined();
  });

  it('gives the RBAC use of a request, with the name of a metadata.name field selector', () => {
    expect(rbacUseOf('PATCH', '/apis/apps/v1/namespaces/ns/deployments/d/scale')).toEqual({
      apiGroup: 'apps',
      resource: 'deployments',
      subresource: 'scale',
      verb: 'patch',
      namespace: 'ns',
      name: 'd',
    });
    expect(rbacUseOf('GET', '/api/v1/pods', { watch: true })).toEqual({
      apiGroup: '',
      resource: 'pods',
      verb: 'watch',
    });
    expect(
      rbacUseOf('GET', '/apis/coordination.k8s.io/v1/namespaces/ns/leases', {
        fieldSelector: 'metadata.name=op',
      }),
    ).toMatchObject({ verb: 'list', name: 'op' });
    expect(
      rbacUseOf('GET', '/api/v1/namespaces/ns/pods?fieldSelector=metadata.name%3Dp&watch=1'),
    ).toMatchObject({ verb: 'watch', name: 'p' });
    expect(rbacUseOf('GET', '/api/v1/pods', { fieldSelector: 'spec.nodeName=n' })?.name).toBeUndefined();
    expect(rbacUseOf('GET', '/version')).toBeUndefined();
  });

  it('a server-side apply also needs create (it creates a missing object); other patches do not', () => {
    const path = '/api/v1/namespaces/ns/configmaps/c';
    const uses = rbacUsesOf(
      auditedRequest('PATCH', path, { fieldManager: 'm', force: true }, 'application/apply-patch+yaml'),
    );
    expect(uses.map((u) => `${u.resource}/${u.name} ${u.verb}`)).toEqual([
      'configmaps/c patch',
      'configmaps/c create',
    ]);
    expect(
      rbacUsesOf(auditedRequest('PATCH', path, undefined, 'application/merge-patch+json')).map((u) => u.verb),
    ).toEqual(['patch']);
    expect(
      rbacUsesOf(auditedRequest('POST', '/api/v1/namespaces/ns/events', undefined, 'application/json')),
    ).toHaveLength(1);
    expect(rbacUsesOf(auditedRequest('GET', '/version'))).toEqual([]);
  });

  it('auditedRequest merges a query string in the path with the query object', () => {
    expect(auditedRequest('get', '/api/v1/pods?limit=500', { watch: true, x: undefined })).toEqual({
      method: 'GET',
      path: '/api/v1/pods',
      query: 'limit=500&watch=true',
      use: { apiGroup: '', resource: 'pods', verb: 'watch' },
    });
  });
});

describe('checkRbac', () => {
  const rules: PolicyRule[] = [
    {
      apiGroups: ['mysqlmq.io'],
      resources: ['messagequeueclusters'],
      verbs: ['get', 'list', 'watch', 'update'],
    },
    { apiGroups: ['mysqlmq.io'], resources: ['messagequeueclusters/status'], verbs: ['patch'] },
    { apiGroups: [''], resources: ['pods', 'configmaps'], verbs: ['list', 'watch', 'create', 'delete'] },
    { apiGroups: [''], resources: ['events'], verbs: ['create'] },
    { nonResourceURLs: ['/metrics'], verbs: ['get'] },
  ];
  const use = (apiGroup: string, resource: string, verb: RbacUse['verb'], more: Partial<RbacUse> = {}) =>
    ({ apiGroup, resource, verb, ...more }) as RbacUse;

  it('reports what was used but not granted, and what was granted but never used', () => {
    const used = [
      use('mysqlmq.io', 'messagequeueclusters', 'watch'),
      use('mysqlmq.io', 'messagequeueclusters', 'list'),
      use('mysqlmq.io', 'messagequeueclusters', 'patch', { subresource: 'status', name: 'c' }),
      use('mysqlmq.io', 'messagequeueclusters', 'update', { subresource: 'status', name: 'c' }),
      use('', 'pods', 'list'),
      use('', 'pods', 'watch'),
      use('', 'pods', 'create'),
      use('', 'pods', 'create'), // duplicates are reported once
      use('', 'configmaps', 'patch', { name: 'x' }),
      use('', 'events', 'create'),
      use('apps', 'deployments', 'get', { name: 'd' }),
    ];
    const r = checkRbac(used, rules);
    expect(formatPermissions(r.missing)).toEqual([
      'core/configmaps patch',
      'apps/deployments get',
      'mysqlmq.io/messagequeueclusters/status update',
    ]);
    expect(formatPermissions(r.unused)).toEqual([
      'core/configmaps create',
      'core/configmaps delete',
      'core/configmaps list',
      'core/configmaps watch',
      'core/pods delete',
      'mysqlmq.io/messagequeueclusters get',
      'mysqlmq.io/messagequeueclusters update',
    ]);
  });

  it('nothing missing and nothing unused when the rules are exactly what was used', () => {
    const used = [use('', 'events', 'create'), use('coordination.k8s.io', 'leases', 'get', { name: 'l' })];
    const exact: PolicyRule[] = [
      { apiGroups: [''], resources: ['events'], verbs: ['create'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get'] },
    ];
    expect(checkRbac(used, exact)).toEqual({ missing: [], unused: [] });
    expect(checkRbac([], [])).toEqual({ missing: [], unused: [] });
  });

  it('matches wildcards, */subresource and resourceNames the way RBAC does', () => {
    const scale = use('apps', 'deployments', 'get', { subresource: 'scale', name: 'd' });
    expect(ruleAllows({ apiGroups: ['*'], resources: ['*'], verbs: ['*'] }, scale)).toBe(true);
    expect(ruleAllows({ apiGroups: ['apps'], resources: ['*/scale'], verbs: ['get'] }, scale)).toBe(true);
    expect(ruleAllows({ apiGroups: ['apps'], resources: ['deployments'], verbs: ['get'] }, scale)).toBe(
      false,
    );
    expect(ruleAllows({ apiGroups: ['apps'], resources: ['deployments/*'], verbs: ['get'] }, scale)).toBe(
      false,
    );
    expect(ruleAllows({ apiGroups: [''], resources: ['deployments/scale'], verbs: ['get'] }, scale)).toBe(
      false,
    );
    const named: PolicyRule = {
      apiGroups: ['coordination.k8s.io'],
      resources: ['leases'],
      verbs: ['get', 'update', 'create'],
      resourceNames: ['op'],
    };
    expect(ruleAllows(named, use('coordination.k8s.io', 'leases', 'get', { name: 'op' }))).toBe(true);
    expect(ruleAllows(named, use('coordination.k8s.io', 'leases', 'get', { name: 'other' }))).toBe(false);
    // create carries no name in its path, so resourceNames can never allow it (a classic RBAC trap).
    expect(ruleAllows(named, use('coordination.k8s.io', 'leases', 'create'))).toBe(false);
    const r = checkRbac([use('coordination.k8s.io', 'leases', 'get', { name: 'op' })], [named]);
    expect(formatPermissions(r.unused)).toEqual([
      'coordination.k8s.io/leases create',
      'coordination.k8s.io/leases update',
    ]);
    expect(
      formatPermissions(
        checkRbac(
          [use('', 'pods', 'get', { name: 'p' })],
          [{ apiGroups: ['*'], resources: ['*'], verbs: ['*'] }],
        ).unused,
      ),
    ).toEqual([]);
  });

  it('usesIn splits uses by namespace (undefined: cluster-wide requests)', () => {
    const used = [
      use('', 'pods', 'watch'),
      use('', 'pods', 'create', { namespace: 'a' }),
      use('', 'pods', 'create', { namespace: 'b' }),
    ];
    expect(usesIn(used, undefined)).toHaveLength(1);
    expect(usesIn(used, 'a')).toEqual([used[1]]);
  });
});

describe('request audit hook', () => {
  let server: http.Server;
  let base: string;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mq-audit-'));
    server = http.createServer((req, res) => {
      res.setHeader('Content-Type', 'application/json');
      if (req.url?.includes('watch=true')) {
        res.write('{"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"1"}}}\n');
        res.end();
        return;
      }
      if (req.url?.startsWith('/api/v1/namespaces/ns/pods/missing')) {
        res.statusCode = 404;
        res.end('{"kind":"Status","code":404,"reason":"NotFound"}');
        return;
      }
      if (req.url?.includes('/leases')) {
        res.end(
          '{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"l","resourceVersion":"3"}}',
        );
        return;
      }
      res.end('{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[]}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  const kubeConfig = (server: string) => {
    const kc = new KubeConfig();
    kc.loadFromClusterAndUser({ name: 'fake', server, skipTLSVerify: true }, { name: 'u', token: 't' });
    return kc;
  };

  it('KubeRest reports every request (also refused ones) and streams', async () => {
    const seen: AuditedRequest[] = [];
    const rest = new KubeRest(kubeConfig(base), 5000, (r) => seen.push(r));
    await rest.request({ path: '/api/v1/namespaces/ns/pods', query: { labelSelector: 'a=b' } });
    await rest.request({ path: '/api/v1/namespaces/ns/pods/missing' }).catch(() => undefined);
    await rest.request({ method: 'POST', path: '/api/v1/namespaces/ns/events', body: {} });
    const st = await rest.stream({ path: '/api/v1/pods', query: { watch: true, allowWatchBookmarks: true } });
    st.close();
    await rest.request({ path: '/version' });
    expect(
      seen.map((r) => (r.use ? `${r.method} ${r.use.resource} ${r.use.verb}` : `${r.method} ${r.path}`)),
    ).toEqual(['GET pods list', 'GET pods get', 'POST events create', 'GET pods watch', 'GET /version']);
    expect(seen[0]).toMatchObject({ query: 'labelSelector=a%3Db', use: { namespace: 'ns' } });
  });

  it('installRequestAudit hooks KubeRest, also the Lease calls of the leader election', async () => {
    const seen: AuditedRequest[] = [];
    const rest = new KubeRest(kubeConfig(base), 5000);
    installRequestAudit((r) => seen.push(r), { rest });
    await coordinationLeaseClient(rest, 'ns', 'l')
      .get()
      .catch(() => undefined);
    expect(seen[0]!.use).toEqual({
      apiGroup: 'coordination.k8s.io',
      resource: 'leases',
      verb: 'get',
      namespace: 'ns',
      name: 'l',
    });
  });

  it('a hook that throws never breaks a request', async () => {
    const rest = new KubeRest(kubeConfig(base), 5000, () => {
      throw new Error('boom');
    });
    await expect(rest.request({ path: '/api/v1/namespaces/ns/pods' })).resolves.toMatchObject({
      kind: 'PodList',
    });
  });

  it(`${AUDIT_LOG_ENV} writes JSON lines that readRequestAudit reads back`, async () => {
    const file = join(dir, 'sub', 'requests.jsonl');
    expect(requestAuditFromEnv({})).toBeUndefined();
    const hook = requestAuditFromEnv({ [AUDIT_LOG_ENV]: file })!;
    const rest = new KubeRest(kubeConfig(base), 5000, hook);
    await rest.request({ path: '/api/v1/namespaces/ns/pods' });
    await rest.request({ path: '/version' });
    await rest.request({
      method: 'PATCH',
      path: '/api/v1/namespaces/ns/configmaps/c',
      query: { fieldManager: 'm', force: true },
      contentType: 'application/apply-patch+yaml',
      body: { apiVersion: 'v1', kind: 'ConfigMap' },
    });
    writeFileSync(file, '{"method":"GET","pa', { flag: 'a' }); // a torn last line
    expect(readAuditedRequests(file)).toHaveLength(3);
    expect(readAuditedRequests(file)[2]).toMatchObject({ contentType: 'application/apply-patch+yaml' });
    const configMap = { apiGroup: '', resource: 'configmaps', namespace: 'ns', name: 'c' };
    expect(readRequestAudit(file)).toEqual([
      { apiGroup: '', resource: 'pods', verb: 'list', namespace: 'ns' },
      { ...configMap, verb: 'patch' },
      { ...configMap, verb: 'create' },
    ]);
  });
});
