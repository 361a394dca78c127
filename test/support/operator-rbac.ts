/**
 * The operator's RBAC as the helm chart grants it, and a check of recorded API requests
 * against it, so the chart's rules are derived from (and tested against) what the code does.
 *
 * In an end-to-end test: run the operator with MQ_K8S_AUDIT_LOG=/some/file (its main installs
 * `installRequestAudit(requestAuditFromEnv(), { rest })`, see src/k8s/audit.ts), exercise it, then (./rbac.ts)
 *
 *   const rbac = await renderOperatorRbac({ values: { watchNamespaces: ['a'] } });
 *   const result = checkOperatorRbac(rbac, readRequestAudit(file));
 *   expect(formatPermissions(result.missing)).toEqual([]);   // nothing would be Forbidden
 *   expect(formatPermissions(result.unused)).toEqual([]);    // nothing granted in vain
 */
import type { RbacUse } from '../../src/k8s/rbac.js';
import { type PolicyRule, type RbacCheck, type RbacPermission, checkRbac, usesIn } from './rbac.js';
import { type HelmValues, type ManifestObject, helmTemplate, parseManifests } from './helm.js';

export interface RenderedRole {
  kind: 'ClusterRole' | 'Role';
  name: string;
  /** Set for a Role. */
  namespace?: string;
  rules: PolicyRule[];
}

export interface OperatorRbac {
  /** The operator's ServiceAccount. */
  serviceAccount: { name: string; namespace: string };
  /** Roles and ClusterRoles bound to that ServiceAccount by the chart's (Cluster)RoleBindings. */
  roles: RenderedRole[];
  /** True when the operator has a ClusterRole (watchNamespaces empty: every namespace). */
  clusterWide: boolean;
  /** The rendered objects, for further checks. */
  objects: ManifestObject[];
}

/** Where a rule set applies: a namespace, or the whole cluster (a ClusterRole through a ClusterRoleBinding). */
export function rulesFor(rbac: OperatorRbac, namespace: string | undefined): PolicyRule[] {
  return rbac.roles
    .filter((r) => r.kind === 'ClusterRole' || (namespace !== undefined && r.namespace === namespace))
    .flatMap((r) => r.rules);
}

interface Binding extends ManifestObject {
  roleRef: { kind: string; name: string };
  subjects?: { kind: string; name: string; namespace?: string }[];
}

/**
 * Renders the chart (`helm template`, release `mysqlmq-operator`, namespace `mysqlmq-system`
 * unless given) and returns the rules bound to the operator's ServiceAccount. Throws when the
 * chart renders no ServiceAccount binding, or binds a role it does not define.
 */
export async function renderOperatorRbac(
  opts: { values?: HelmValues; namespace?: string; release?: string } = {},
): Promise<OperatorRbac> {
  const namespace = opts.namespace ?? 'mysqlmq-system';
  const objects = parseManifests(await helmTemplate({ ...opts, namespace }));
  return operatorRbacOf(objects, namespace);
}

/** The same from already rendered objects (e.g. manifests/install.yaml). */
export function operatorRbacOf(objects: ManifestObject[], releaseNamespace: string): OperatorRbac {
  const deployment = objects.find(
    (o) =>
      o.kind === 'Deployment' &&
      (
        o as { spec?: { template?: { spec?: { containers?: { name: string }[] } } } }
      ).spec?.template?.spec?.containers?.some((c) => c.name === 'operator'),
  ) as { spec: { template: { spec: { serviceAccountName?: string } } } } | undefined;
  if (!deployment) throw new Error('the chart rendered no Deployment with an "operator" container');
  const saName = deployment.spec.template.spec.serviceAccountName ?? 'default';
  const serviceAccount = { name: saName, namespace: releaseNamespace };
  const roles: RenderedRole[] = [];
  for (const b of objects.filter(
    (o) => o.kind === 'RoleBinding' || o.kind === 'ClusterRoleBinding',
  ) as Binding[]) {
    const bound = (b.subjects ?? []).some(
      (s) =>
        s.kind === 'ServiceAccount' &&
        s.name === saName &&
        (s.namespace ?? b.metadata.namespace) === releaseNamespace,
    );
    if (!bound) continue;
    const role = objects.find(
      (o) =>
        o.kind === b.roleRef.kind &&
        o.metadata.name === b.roleRef.name &&
        (o.kind === 'ClusterRole' || o.metadata.namespace === b.metadata.namespace),
    ) as (ManifestObject & { rules?: PolicyRule[] }) | undefined;
    if (!role)
      throw new Error(
        `${b.kind} ${b.metadata.name} refers to ${b.roleRef.kind} ${b.roleRef.name}, which the chart does not define`,
      );
    if (b.kind === 'ClusterRoleBinding' && role.kind !== 'ClusterRole')
      throw new Error('a ClusterRoleBinding can only bind a ClusterRole');
    roles.push({
      kind: role.kind as RenderedRole['kind'],
      name: role.metadata.name,
      // A ClusterRole bound by a RoleBinding applies in the binding's namespace only.
      ...(b.kind === 'RoleBinding' ? { namespace: b.metadata.namespace ?? releaseNamespace } : {}),
      rules: role.rules ?? [],
    });
  }
  if (roles.length === 0) throw new Error(`no role is bound to ServiceAccount ${releaseNamespace}/${saName}`);
  // A ClusterRole bound through a RoleBinding counts as namespaced.
  const normalized = roles.map((r) =>
    r.kind === 'ClusterRole' && r.namespace !== undefined ? { ...r, kind: 'Role' as const } : r,
  );
  return {
    serviceAccount,
    roles: normalized,
    clusterWide: normalized.some((r) => r.kind === 'ClusterRole'),
    objects,
  };
}

export interface NamespacedPermission extends RbacPermission {
  /** Where: a namespace, or undefined for a cluster-wide request / ClusterRole grant. */
  namespace?: string;
}

export interface OperatorRbacCheck {
  missing: NamespacedPermission[];
  unused: NamespacedPermission[];
}

/**
 * Checks recorded requests against the chart's RBAC. Cluster-wide install: every request against
 * the ClusterRole. Namespaced install: the requests in each namespace against the Role there (plus
 * any ClusterRole); a request without a namespace (a list or watch across all namespaces) needs a
 * ClusterRole and is missing otherwise. `unused` is per Role (per ClusterRole for cluster-wide).
 */
export function checkOperatorRbac(rbac: OperatorRbac, used: Iterable<RbacUse>): OperatorRbacCheck {
  const uses = [...used];
  const missing: NamespacedPermission[] = [];
  const unused: NamespacedPermission[] = [];
  const add = (out: NamespacedPermission[], r: RbacCheck['missing'], namespace: string | undefined) =>
    out.push(...r.map((p) => (namespace === undefined ? p : { ...p, namespace })));
  const namespaces = new Set<string | undefined>([undefined]);
  for (const u of uses) namespaces.add(u.namespace);
  for (const r of rbac.roles) if (r.namespace !== undefined) namespaces.add(r.namespace);
  for (const ns of namespaces) {
    const here = usesIn(uses, ns);
    add(missing, checkRbac(here, rulesFor(rbac, ns)).missing, ns);
  }
  for (const role of rbac.roles) {
    const scope = role.kind === 'ClusterRole' ? uses : usesIn(uses, role.namespace);
    add(unused, checkRbac(scope, role.rules).unused, role.namespace);
  }
  return { missing, unused };
}

/** `[ns] group/resource verb` lines, for readable assertion failures. */
export function formatNamespacedPermissions(perms: readonly NamespacedPermission[]): string[] {
  return perms.map(
    (p) => `${p.namespace ? `[${p.namespace}] ` : ''}${p.apiGroup || 'core'}/${p.resource} ${p.verb}`,
  );
}
