import { createHash } from 'node:crypto';
import {
  API_VERSION,
  APP_NAME,
  type DefaultedCluster,
  KIND,
  LABEL_APP_INSTANCE,
  LABEL_APP_NAME,
  LABEL_CLUSTER,
  LABEL_COMPONENT,
  LABEL_MANAGED_BY,
  MANAGED_BY,
} from '../api/types.js';

/**
 * What every desired-state builder returns: a plain JSON Kubernetes object (no client-node
 * classes), complete enough to server-side apply as it is.
 */
export interface DesiredObject {
  apiVersion: string;
  kind: string;
  metadata: DesiredMeta;
  [field: string]: unknown;
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller: boolean;
  blockOwnerDeletion: boolean;
}

export interface DesiredMeta {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  /** So a desired object is also a KubeObject (src/k8s/resources.ts). */
  [field: string]: unknown;
}

/** Names of everything a cluster owns, in one place (docs/operator-design.md). */
export const names = {
  shard: (shard: number) => `shard-${shard}`,
  credentials: (cluster: string) => `${cluster}-credentials`,
  mycnf: (cluster: string, shard: number) => `${cluster}-shard-${shard}-mycnf`,
  pod: (cluster: string, shard: number, instance: number) => `${cluster}-shard-${shard}-${instance}`,
  pvc: (cluster: string, shard: number, instance: number) => `data-${cluster}-shard-${shard}-${instance}`,
  shardService: (cluster: string, shard: number, role: Role) => `${cluster}-shard-${shard}-${role}`,
  shardPdb: (cluster: string, shard: number) => `${cluster}-shard-${shard}`,
  primaryPdb: (cluster: string, shard: number) => `${cluster}-shard-${shard}-primary`,
  routing: (cluster: string) => `${cluster}-routing`,
  users: (cluster: string) => `${cluster}-users`,
  userSecret: (cluster: string, user: string) => `${cluster}-user-${user}`,
  broker: (cluster: string) => `${cluster}-broker`,
  ca: (cluster: string) => `${cluster}-ca`,
  brokerTls: (cluster: string) => `${cluster}-broker-tls`,
  mysqlTls: (cluster: string) => `${cluster}-mysql-tls`,
  networkPolicy: (cluster: string) => `${cluster}-mysql`,
};

export type Role = 'primary' | 'standby';

/** The labels on everything a cluster owns (selectors use a subset). */
export function clusterLabels(cr: DefaultedCluster, component: string): Record<string, string> {
  return {
    [LABEL_APP_NAME]: APP_NAME,
    [LABEL_APP_INSTANCE]: cr.metadata.name,
    [LABEL_MANAGED_BY]: MANAGED_BY,
    [LABEL_COMPONENT]: component,
    [LABEL_CLUSTER]: cr.metadata.name,
  };
}

/** Controller reference to the cluster: Kubernetes garbage-collects the object with it. */
export function ownerReference(cr: DefaultedCluster): OwnerReference {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    name: cr.metadata.name,
    uid: cr.metadata.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

export interface MetaExtras {
  /** The operator's own labels beyond the cluster labels (shard, instance, role). */
  labels?: Record<string, string>;
  /** `spec.podTemplate.labels`: applied first, so they can never replace an operator label. */
  userLabels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** false: no ownerReference (PVCs under `pvcDeletionPolicy: Retain`). */
  owned?: boolean;
}

/** Metadata of an object the cluster owns: name, namespace, standard labels, ownerReference. */
export function objectMeta(
  cr: DefaultedCluster,
  name: string,
  component: string,
  extra: MetaExtras = {},
): DesiredMeta {
  const annotations = extra.annotations ?? {};
  return {
    name,
    namespace: cr.metadata.namespace,
    labels: { ...extra.userLabels, ...clusterLabels(cr, component), ...extra.labels },
    ...(Object.keys(annotations).length ? { annotations } : {}),
    ...(extra.owned === false ? {} : { ownerReferences: [ownerReference(cr)] }),
  };
}

/**
 * A short, stable hash of JSON-able values: object keys are sorted first, so two equal values
 * built in a different order hash the same.
 */
export function hashOf(...parts: unknown[]): string {
  return createHash('sha256').update(stableJson(parts)).digest('hex').slice(0, 16);
}

function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

/** `k=v,k=v`, the form of `status.brokerSelector` and of `kubectl get -l`. */
export function selectorString(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

export type PdbApiVersion = 'policy/v1' | 'policy/v1beta1';

/**
 * The PodDisruptionBudget version to write, from the server's `api-versions` (discovery):
 * policy/v1 when offered (Kubernetes 1.21+), else policy/v1beta1 (1.20 and older). Undefined
 * when the server offers neither (then the operator creates no PDBs).
 */
export function pdbApiVersion(available: readonly string[]): PdbApiVersion | undefined {
  if (available.includes('policy/v1')) return 'policy/v1';
  if (available.includes('policy/v1beta1')) return 'policy/v1beta1';
  return undefined;
}

/** Kubernetes quantities as strings (YAML may give `cpu: 2`), the form the API server stores. */
export function quantities(
  r: Record<string, string | number> | undefined,
): Record<string, string> | undefined {
  if (!r || Object.keys(r).length === 0) return undefined;
  return Object.fromEntries(Object.entries(r).map(([k, v]) => [k, String(v)]));
}

/** A container's `resources`, or undefined when nothing is set. */
export function resourcesOf(r: {
  limits?: Record<string, string | number>;
  requests?: Record<string, string | number>;
}): { limits?: Record<string, string>; requests?: Record<string, string> } | undefined {
  const limits = quantities(r.limits);
  const requests = quantities(r.requests);
  if (!limits && !requests) return undefined;
  return { ...(limits ? { limits } : {}), ...(requests ? { requests } : {}) };
}

/**
 * The user's affinity with a preferred pod anti-affinity term added: pods matching `selector`
 * spread over nodes when possible, and the user's own node/pod (anti-)affinity stays as given.
 */
export function withSpreadAffinity(
  userAffinity: Record<string, unknown> | undefined,
  selector: Record<string, string>,
  topologyKey = 'kubernetes.io/hostname',
): Record<string, unknown> {
  const affinity = structuredClone(userAffinity ?? {});
  const anti = (affinity.podAntiAffinity ?? {}) as Record<string, unknown>;
  const preferred = Array.isArray(anti.preferredDuringSchedulingIgnoredDuringExecution)
    ? (anti.preferredDuringSchedulingIgnoredDuringExecution as unknown[])
    : [];
  affinity.podAntiAffinity = {
    ...anti,
    preferredDuringSchedulingIgnoredDuringExecution: [
      ...preferred,
      { weight: 100, podAffinityTerm: { topologyKey, labelSelector: { matchLabels: selector } } },
    ],
  };
  return affinity;
}

/**
 * The user's affinity with a required pod anti-affinity term added: a Pod matching `selector` is
 * never scheduled onto a node (`topologyKey` domain) that already runs one; it stays Pending
 * instead. The user's own node/pod (anti-)affinity stays as given.
 */
export function withRequiredAntiAffinity(
  userAffinity: Record<string, unknown> | undefined,
  selector: Record<string, string>,
  topologyKey = 'kubernetes.io/hostname',
): Record<string, unknown> {
  const affinity = structuredClone(userAffinity ?? {});
  const anti = (affinity.podAntiAffinity ?? {}) as Record<string, unknown>;
  const required = Array.isArray(anti.requiredDuringSchedulingIgnoredDuringExecution)
    ? (anti.requiredDuringSchedulingIgnoredDuringExecution as unknown[])
    : [];
  affinity.podAntiAffinity = {
    ...anti,
    requiredDuringSchedulingIgnoredDuringExecution: [
      ...required,
      { topologyKey, labelSelector: { matchLabels: selector } },
    ],
  };
  return affinity;
}

/**
 * A container that needs no Linux capability, cannot gain privileges (exec of setuid files) and
 * cannot change its image: it writes only to its volumes.
 */
export const READ_ONLY_CONTAINER = {
  allowPrivilegeEscalation: false,
  capabilities: { drop: ['ALL'] },
  readOnlyRootFilesystem: true,
} as const;

/**
 * Pod-level security of the operator's Pods (the Kubernetes "restricted" profile): a fixed
 * non-root user of the image, and the container runtime's default seccomp filter.
 */
export function restrictedPodSecurity(uid: number, fsGroup?: number): Record<string, unknown> {
  return {
    runAsNonRoot: true,
    runAsUser: uid,
    runAsGroup: uid,
    ...(fsGroup === undefined ? {} : { fsGroup }),
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

/** The pod-spec fields `spec.podTemplate` contributes (besides affinity, labels and annotations). */
export function podPlacement(cr: DefaultedCluster): Record<string, unknown> {
  const p = cr.spec.podTemplate;
  return {
    ...(Object.keys(p.nodeSelector).length ? { nodeSelector: { ...p.nodeSelector } } : {}),
    ...(p.tolerations.length ? { tolerations: structuredClone(p.tolerations) } : {}),
    ...(p.priorityClassName ? { priorityClassName: p.priorityClassName } : {}),
  };
}
