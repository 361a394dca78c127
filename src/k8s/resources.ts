/**
 * Where an object lives in the REST API: apiVersion + kind + namespace + name → URL path.
 *
 * Why a static table instead of discovery: the operator touches a fixed set of kinds, and a
 * table needs no extra round trip, cannot fail at runtime and keeps the fake/unit tests free
 * of `/apis/<group>/<version>` discovery documents. Adding a kind is one line.
 */

export interface ResourceInfo {
  plural: string;
  namespaced: boolean;
}

/** Kind → plural and scope. The group comes from the object's apiVersion. */
export const RESOURCES: Readonly<Record<string, ResourceInfo>> = {
  Pod: { plural: 'pods', namespaced: true },
  PersistentVolumeClaim: { plural: 'persistentvolumeclaims', namespaced: true },
  Service: { plural: 'services', namespaced: true },
  ConfigMap: { plural: 'configmaps', namespaced: true },
  Secret: { plural: 'secrets', namespaced: true },
  ServiceAccount: { plural: 'serviceaccounts', namespaced: true },
  Deployment: { plural: 'deployments', namespaced: true },
  PodDisruptionBudget: { plural: 'poddisruptionbudgets', namespaced: true },
  NetworkPolicy: { plural: 'networkpolicies', namespaced: true },
  Event: { plural: 'events', namespaced: true }, // both core/v1 and events.k8s.io/v1
  Lease: { plural: 'leases', namespaced: true },
  MessageQueueCluster: { plural: 'messagequeueclusters', namespaced: true },
  MessageQueueTopic: { plural: 'messagequeuetopics', namespaced: true },
  Namespace: { plural: 'namespaces', namespaced: false },
  Node: { plural: 'nodes', namespaced: false },
  CustomResourceDefinition: { plural: 'customresourcedefinitions', namespaced: false },
};

/** Enough to address one object (or, without name, a collection). */
export interface ObjectRef {
  apiVersion: string;
  kind: string;
  namespace?: string;
  name?: string;
}

/** The minimal shape of any Kubernetes object. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    resourceVersion?: string;
    uid?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    deletionTimestamp?: Date | string;
    [k: string]: unknown;
  };
}

/** `/api/v1` for the core group, `/apis/<group>/<version>` otherwise. */
export function groupVersionPath(apiVersion: string): string {
  if (!apiVersion) throw new Error('apiVersion is required');
  return apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
}

export function resourceInfo(kind: string): ResourceInfo {
  const info = RESOURCES[kind];
  if (!info) throw new Error(`unknown kind ${kind}: add it to RESOURCES in src/k8s/resources.ts`);
  return info;
}

/**
 * REST path of an object (with name) or of a collection (without). A namespaced kind without
 * a namespace yields the all-namespaces collection, which is only valid for LIST/WATCH: a
 * write without a namespace throws instead of landing in some default namespace.
 */
export function resourcePath(ref: ObjectRef, subresource?: string): string {
  const info = resourceInfo(ref.kind);
  let p = groupVersionPath(ref.apiVersion);
  if (info.namespaced && ref.namespace) p += `/namespaces/${encodeURIComponent(ref.namespace)}`;
  if (info.namespaced && !ref.namespace && ref.name) {
    throw new Error(`${ref.kind} ${ref.name}: namespace is required`);
  }
  p += `/${info.plural}`;
  if (ref.name) p += `/${encodeURIComponent(ref.name)}`;
  if (subresource) {
    if (!ref.name) throw new Error(`subresource ${subresource} needs a name`);
    p += `/${subresource}`;
  }
  return p;
}

/** The ref of a full object; throws when apiVersion, kind or name is missing. */
export function refOf(
  obj: KubeObject,
): Required<Pick<ObjectRef, 'apiVersion' | 'kind' | 'name'>> & ObjectRef {
  const { apiVersion, kind } = obj;
  const name = obj.metadata?.name;
  if (!apiVersion || !kind || !name) throw new Error('object needs apiVersion, kind and metadata.name');
  return { apiVersion, kind, name, namespace: obj.metadata?.namespace };
}

/** The cache/workqueue key of an object: `namespace/name`, or `name` when cluster-scoped. */
export function objectKey(obj: KubeObject): string {
  const ns = obj.metadata?.namespace;
  const name = obj.metadata?.name ?? '';
  return ns ? `${ns}/${name}` : name;
}

/** Inverse of objectKey. */
export function splitKey(key: string): { namespace?: string; name: string } {
  const i = key.indexOf('/');
  return i < 0 ? { name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}
