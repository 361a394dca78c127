import { defaultCluster } from '../../../src/operator/api/defaults.js';
import type { DefaultedCluster, MessageQueueClusterSpec } from '../../../src/operator/api/types.js';
import type { DesiredObject } from '../../../src/operator/desired/meta.js';

export const UID = '6f1c1a4e-0000-4000-8000-000000000001';

/** A defaulted cluster `mq` in namespace `ns`, as the reconciler would get it. */
export function cluster(spec: MessageQueueClusterSpec = {}, name = 'mq'): DefaultedCluster {
  return defaultCluster({
    apiVersion: 'mysqlmq.io/v1alpha1',
    kind: 'MessageQueueCluster',
    metadata: { name, namespace: 'ns', uid: UID, generation: 1 },
    spec,
  });
}

/** A cluster with TLS off on brokers and instances (as one created before TLS was the default runs). */
export function plainCluster(spec: MessageQueueClusterSpec = {}, name = 'mq'): DefaultedCluster {
  return cluster(
    {
      ...spec,
      mysql: { ...spec.mysql, tls: { enabled: false } },
      brokers: { ...spec.brokers, tls: { enabled: false } },
    },
    name,
  );
}

/** `obj.spec` as a loose record, for reading nested fields in assertions. */
export function specOf(obj: DesiredObject): Record<string, any> {
  return obj.spec as Record<string, any>;
}

export function container(podSpec: Record<string, any>, name: string): Record<string, any> {
  const c = (podSpec.containers as Record<string, any>[]).find((x) => x.name === name);
  if (!c) throw new Error(`no container ${name}`);
  return c;
}

export function envOf(c: Record<string, any>): Record<string, unknown> {
  return Object.fromEntries(
    (c.env as { name: string; value?: string; valueFrom?: unknown }[]).map((e) => [
      e.name,
      e.value ?? e.valueFrom,
    ]),
  );
}

export const STANDARD_LABELS = {
  'app.kubernetes.io/name': 'mysqlmq',
  'app.kubernetes.io/instance': 'mq',
  'app.kubernetes.io/managed-by': 'mysqlmq-operator',
  'mysqlmq.io/cluster': 'mq',
};

export const OWNER = {
  apiVersion: 'mysqlmq.io/v1alpha1',
  kind: 'MessageQueueCluster',
  name: 'mq',
  uid: UID,
  controller: true,
  blockOwnerDeletion: true,
};
