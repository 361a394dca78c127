/**
 * Server-side apply, merge patch and error helpers against a real kube-apiserver (1.20).
 */
import {
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  V1MicroTime,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  applyObject,
  applyStatus,
  FIELD_MANAGER,
  mergePatch,
  mergePatchStatus,
} from '../../../src/k8s/apply.js';
import { apiErrorReason, errorSummary, isApiError } from '../../../src/k8s/client.js';
import { KubeRest } from '../../../src/k8s/rest.js';
import { refOf, resourcePath } from '../../../src/k8s/resources.js';
import { startKube, type Kube } from '../../support/kube.js';

const NS = 'apply-test';
const GROUP = 'mysqlmq.io';
const MQC = { apiVersion: `${GROUP}/v1alpha1`, kind: 'MessageQueueCluster' } as const;

/** A minimal stand-in for the real CRD: open schema, status subresource. */
const crd = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: `messagequeueclusters.${GROUP}` },
  spec: {
    group: GROUP,
    scope: 'Namespaced',
    names: {
      kind: 'MessageQueueCluster',
      plural: 'messagequeueclusters',
      singular: 'messagequeuecluster',
      shortNames: ['mqc'],
    },
    versions: [
      {
        name: 'v1alpha1',
        served: true,
        storage: true,
        subresources: { status: {} },
        schema: {
          openAPIV3Schema: {
            type: 'object',
            properties: {
              spec: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
              status: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
            },
          },
        },
      },
    ],
  },
};

let kube: Kube;
let rest: KubeRest;
/** client-node's typed clients, to compare with what KubeRest does. */
let c: { core: CoreV1Api; custom: CustomObjectsApi };

beforeAll(async () => {
  kube = await startKube();
  rest = new KubeRest(kube.kc);
  c = { core: kube.kc.makeApiClient(CoreV1Api), custom: kube.kc.makeApiClient(CustomObjectsApi) };
  await applyObject(rest, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
  await applyObject(rest, crd);
  // The CRD is served only once Established.
  for (let i = 0; i < 100; i++) {
    const got = await rest.request<{ status?: { conditions?: { type: string; status: string }[] } }>({
      path: `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/messagequeueclusters.${GROUP}`,
    });
    if (got.status?.conditions?.some((x) => x.type === 'Established' && x.status === 'True')) break;
    await new Promise((r) => setTimeout(r, 100));
  }
});

afterAll(async () => {
  await kube?.stop();
});

const labels = { 'app.kubernetes.io/managed-by': 'mysqlmq-operator' };

describe('server-side apply (real apiserver)', () => {
  it('creates, is a no-op when unchanged, removes fields it stops sending, and records the field manager', async () => {
    const desired = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'cm1', namespace: NS, labels: { ...labels, extra: 'yes' } },
      data: { a: '1', b: '2' },
    };
    const created = await applyObject(rest, desired);
    expect(created.metadata?.resourceVersion).toBeTruthy();
    const again = await applyObject(rest, desired);
    expect(again.metadata?.resourceVersion).toBe(created.metadata?.resourceVersion); // idempotent
    const managers = (again.metadata?.managedFields as { manager: string; operation: string }[]).map(
      (m) => m.manager,
    );
    expect(managers).toContain(FIELD_MANAGER);

    const shrunk = await applyObject(rest, {
      ...desired,
      metadata: { name: 'cm1', namespace: NS, labels },
      data: { a: '1' },
    });
    expect(shrunk.metadata?.labels).toEqual(labels);
    expect((shrunk as { data?: object }).data).toEqual({ a: '1' });
  });

  it('takes over fields another manager owns (force) and leaves the rest alone', async () => {
    await c.core.createNamespacedConfigMap({
      namespace: NS,
      body: { metadata: { name: 'cm2' }, data: { mine: 'x', theirs: 'y' } },
    });
    const applied = await applyObject(rest, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'cm2', namespace: NS },
      data: { mine: 'operator' },
    });
    expect((applied as { data?: object }).data).toEqual({ mine: 'operator', theirs: 'y' });
  });

  it('applies every built-in kind the operator writes', async () => {
    const sel = { 'mysqlmq.io/cluster': 'c1' };
    const objs = [
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 's1', namespace: NS },
        type: 'Opaque',
        stringData: { k: 'v' },
      },
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'svc1', namespace: NS },
        // no protocol: the 1.20 apiserver rejects that under SSA unless withApplyDefaults adds it
        spec: { selector: sel, ports: [{ name: 'mysql', port: 3306, targetPort: 3306 }] },
      },
      {
        apiVersion: 'v1',
        kind: 'PersistentVolumeClaim',
        metadata: { name: 'data-c1-shard-0-0', namespace: NS },
        spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
      },
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'c1-shard-0-0', namespace: NS, labels: sel },
        spec: {
          containers: [
            {
              name: 'mariadb',
              image: 'mariadb:10.11',
              ports: [{ containerPort: 3306 }],
              readinessProbe: { tcpSocket: { port: 3306 } },
            },
          ],
        },
      },
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'c1-broker', namespace: NS },
        spec: {
          replicas: 2,
          selector: { matchLabels: sel },
          template: {
            metadata: { labels: sel },
            spec: {
              containers: [
                { name: 'broker', image: 'broker:1', ports: [{ containerPort: 8080, name: 'http' }] },
              ],
            },
          },
        },
      },
      {
        apiVersion: 'policy/v1beta1', // 1.20 has no policy/v1 PDB
        kind: 'PodDisruptionBudget',
        metadata: { name: 'c1-broker', namespace: NS },
        spec: { maxUnavailable: 1, selector: { matchLabels: sel } },
      },
      {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: 'l1', namespace: NS },
        spec: { holderIdentity: 'x', renewTime: new V1MicroTime() },
      },
      {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name: 'c1.ev1', namespace: NS },
        involvedObject: {
          kind: 'MessageQueueCluster',
          name: 'c1',
          namespace: NS,
          apiVersion: MQC.apiVersion,
        },
        reason: 'Created',
        message: 'hello',
        type: 'Normal',
      },
    ];
    for (const o of objs) {
      const out = await applyObject(rest, o);
      expect(out.metadata?.uid, o.kind).toBeTruthy();
      // Re-applying the same object writes nothing. (Controllers may still touch the object
      // in between — the PV controller annotates PVCs — hence read-then-apply, a few tries.)
      let idempotent = false;
      for (let i = 0; i < 5 && !idempotent; i++) {
        const before = await rest.request<{ metadata: { resourceVersion: string } }>({
          path: resourcePath(refOf(o)),
        });
        const after = await applyObject(rest, o);
        idempotent = after.metadata?.resourceVersion === before.metadata.resourceVersion;
        if (!idempotent) await new Promise((r) => setTimeout(r, 200));
      }
      expect(idempotent, `${o.kind} idempotent`).toBe(true);
    }
  });

  it('custom resources: apply, merge patch, status subresource and optimistic locking', async () => {
    const mqc = await applyObject(rest, {
      ...MQC,
      metadata: { name: 'c1', namespace: NS },
      spec: { shards: 2, brokers: { replicas: 2 } },
    });
    expect(mqc.metadata?.uid).toBeTruthy();

    const patched = await mergePatch<{ spec: { shards: number; brokers: object } }>(
      rest,
      { ...MQC, namespace: NS, name: 'c1' },
      { spec: { shards: 3 } },
    );
    expect(patched.spec).toEqual({ shards: 3, brokers: { replicas: 2 } });

    // status through /status; spec sent there is ignored
    const st = await mergePatchStatus<{
      status: object;
      spec: { shards: number };
      metadata: { resourceVersion: string };
    }>(
      rest,
      { ...MQC, namespace: NS, name: 'c1' },
      { phase: 'Pending', conditions: [{ type: 'Ready', status: 'False' }] },
    );
    expect(st.status).toEqual({ phase: 'Pending', conditions: [{ type: 'Ready', status: 'False' }] });

    // the resourceVersion precondition: stale → 409 Conflict
    const stale = mqc.metadata!.resourceVersion!;
    const err = await mergePatchStatus(
      rest,
      { ...MQC, namespace: NS, name: 'c1' },
      { phase: 'X' },
      { resourceVersion: stale },
    ).catch((e: unknown) => e);
    expect(isApiError(err, 409)).toBe(true);
    expect(apiErrorReason(err)).toBe('Conflict');
    expect(errorSummary(err)).toMatch(/^HTTP 409 Conflict: /);
    const ok = await mergePatchStatus<{ status: { phase: string } }>(
      rest,
      { ...MQC, namespace: NS, name: 'c1' },
      { phase: 'Running' },
      { resourceVersion: st.metadata.resourceVersion },
    );
    expect(ok.status.phase).toBe('Running');

    const applied = await applyStatus<{ status?: { phase?: string }; spec?: { shards?: number } }>(rest, {
      ...MQC,
      metadata: { name: 'c1', namespace: NS },
      status: { phase: 'Ready', observedGeneration: 2 },
    } as never);
    expect(applied.status?.phase).toBe('Ready');
    expect(applied.spec?.shards).toBe(3);

    // client-node's typed CustomObjectsApi with setHeaderOptions works too, and its errors
    // go through the same helpers.
    const viaTyped = await c.custom.patchNamespacedCustomObject(
      {
        group: GROUP,
        version: 'v1alpha1',
        namespace: NS,
        plural: 'messagequeueclusters',
        name: 'c1',
        body: { spec: { shards: 4 } },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    expect((viaTyped as { spec: { shards: number } }).spec.shards).toBe(4);
    const nf = await c.custom
      .getNamespacedCustomObject({
        group: GROUP,
        version: 'v1alpha1',
        namespace: NS,
        plural: 'messagequeueclusters',
        name: 'nope',
      })
      .catch((e: unknown) => e);
    expect(isApiError(nf, 404)).toBe(true);
    expect(apiErrorReason(nf)).toBe('NotFound');
    expect(errorSummary(nf)).not.toMatch(/authorization|bearer/i);
  });

  it('reports API errors from both transports the same way', async () => {
    const restErr = await rest
      .request({ path: `/api/v1/namespaces/${NS}/configmaps/missing` })
      .catch((e: unknown) => e);
    expect(isApiError(restErr, 404)).toBe(true);
    expect(apiErrorReason(restErr)).toBe('NotFound');
    const invalid = await applyObject(rest, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'Not_A_Valid_Name', namespace: NS },
    }).catch((e: unknown) => e);
    expect(isApiError(invalid, 422)).toBe(true);
    expect(apiErrorReason(invalid)).toBe('Invalid');
  });
});
