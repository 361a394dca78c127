/**
 * Whether a set of RBAC rules grants what a program used, from the requests it recorded
 * (src/k8s/audit.ts, MQ_K8S_AUDIT_LOG): what it needed and was not granted, and what it was granted
 * and never used. Test code only: the operator records, the tests judge.
 *
 * The rule matching follows k8s.io/kubernetes/pkg/apis/rbac/v1/evaluation_helpers.go.
 */
import { readFileSync } from 'node:fs';
import type { RbacUse } from '../../src/k8s/rbac.js';
import type { AuditedRequest } from '../../src/k8s/rest.js';

/** A permission: `resource` includes the subresource (`pods/status`), as in a PolicyRule. */
export interface RbacPermission {
  apiGroup: string;
  resource: string;
  verb: string;
}

/** An rbac.authorization.k8s.io/v1 PolicyRule. */
export interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

/** Parses a file written by `jsonlAuditHook`: every request, in order. A torn last line is skipped. */
export function readAuditedRequests(file: string): AuditedRequest[] {
  const out: AuditedRequest[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line) as AuditedRequest);
    } catch {
      // a line cut short by a killed process
    }
  }
  return out;
}

/**
 * The RBAC uses of the requests recorded in a `jsonlAuditHook` file, with what each implies (a
 * server-side apply also needs `create`, see `rbacUsesOf`); non-resource URLs are left out.
 */
export function readRequestAudit(file: string): RbacUse[] {
  return readAuditedRequests(file).flatMap((r) => rbacUsesOf(r));
}

/** The Content-Type of a server-side apply patch. */
export const APPLY_PATCH_CONTENT_TYPE = 'application/apply-patch+yaml';

/**
 * Every permission a recorded request (`auditedRequest`) may need: its own use and, for a
 * server-side apply (PATCH with Content-Type application/apply-patch+yaml), `create` on the same
 * object as well: an apply that finds no object creates it, and the apiserver then authorizes the
 * verb `create` too (handlers/patch.go: `withAuthorization(..., createAuthorizerAttributes)`;
 * refused as `... is forbidden: ` with no reason). Empty for a non-resource URL.
 */
export function rbacUsesOf(req: { use: RbacUse | undefined; contentType?: string }): RbacUse[] {
  const { use } = req;
  if (!use) return [];
  const mediaType = req.contentType?.split(';')[0]?.trim().toLowerCase();
  const isApply = use.verb === 'patch' && mediaType === APPLY_PATCH_CONTENT_TYPE;
  return isApply ? [use, { ...use, verb: 'create' }] : [use];
}

/** `pods` or `pods/status`, as PolicyRule.resources names it. */
export function resourceWithSubresource(u: { resource: string; subresource?: string }): string {
  return u.subresource ? `${u.resource}/${u.subresource}` : u.resource;
}

/** Whether one rule allows the request (verbs, apiGroups, resources, resourceNames; `*` wildcards). */
export function ruleAllows(rule: PolicyRule, use: RbacUse): boolean {
  const verbs = rule.verbs ?? [];
  if (!verbs.includes('*') && !verbs.includes(use.verb)) return false;
  const groups = rule.apiGroups ?? [];
  if (!groups.includes('*') && !groups.includes(use.apiGroup)) return false;
  const combined = resourceWithSubresource(use);
  const resources = rule.resources ?? [];
  // RBAC matches "*", the exact "resource/subresource", and "*/subresource"; nothing else.
  const resourceOk = resources.some(
    (r) => r === '*' || r === combined || (use.subresource !== undefined && r === `*/${use.subresource}`),
  );
  if (!resourceOk) return false;
  if (rule.resourceNames?.length) return use.name !== undefined && rule.resourceNames.includes(use.name);
  return true;
}

export interface RbacCheck {
  /** Permissions a recorded request needed that no rule grants (sorted, no duplicates). */
  missing: RbacPermission[];
  /**
   * Permissions the rules grant that no recorded request used (sorted, no duplicates). A rule
   * with `*` in apiGroups, resources or verbs is reported with the `*` as written.
   */
  unused: RbacPermission[];
}

const key = (p: RbacPermission) => `${p.apiGroup}\u0000${p.resource}\u0000${p.verb}`;

function sortUnique(perms: RbacPermission[]): RbacPermission[] {
  const m = new Map<string, RbacPermission>();
  for (const p of perms) m.set(key(p), p);
  return [...m.values()].sort(
    (a, b) =>
      a.apiGroup.localeCompare(b.apiGroup) ||
      a.resource.localeCompare(b.resource) ||
      a.verb.localeCompare(b.verb),
  );
}

/**
 * Compares the requests a program made with the RBAC rules it runs under: what it needed and
 * was not granted (`missing`: it would get 403 Forbidden), and what it was granted and never used
 * (`unused`: candidates to remove for least privilege). Non-resource rules are ignored.
 *
 * `rules` are the rules in force for the requests given: pass only the rules bound where the
 * requests happened (the ClusterRole for a cluster-wide operator; for a namespaced install, call
 * it per namespace with that namespace's Role rules and uses, see `usesIn`).
 */
export function checkRbac(used: Iterable<RbacUse>, rules: readonly PolicyRule[]): RbacCheck {
  const resourceRules = rules.filter((r) => (r.resources ?? []).length > 0);
  const uses = [...used];
  const missing: RbacPermission[] = [];
  for (const u of uses) {
    if (!resourceRules.some((r) => ruleAllows(r, u))) {
      missing.push({ apiGroup: u.apiGroup, resource: resourceWithSubresource(u), verb: u.verb });
    }
  }
  const unused: RbacPermission[] = [];
  for (const rule of resourceRules) {
    for (const apiGroup of rule.apiGroups ?? []) {
      for (const resource of rule.resources ?? []) {
        for (const verb of rule.verbs) {
          const grant: PolicyRule = { apiGroups: [apiGroup], resources: [resource], verbs: [verb] };
          if (rule.resourceNames?.length) grant.resourceNames = rule.resourceNames;
          if (!uses.some((u) => ruleAllows(grant, u))) unused.push({ apiGroup, resource, verb });
        }
      }
    }
  }
  return { missing: sortUnique(missing), unused: sortUnique(unused) };
}

/**
 * The uses made in one namespace (namespace given) or cluster-wide (namespace undefined: requests
 * without a namespace, such as a list or watch across all namespaces, or cluster-scoped objects).
 */
export function usesIn(used: Iterable<RbacUse>, namespace: string | undefined): RbacUse[] {
  return [...used].filter((u) => u.namespace === namespace);
}

/** `group/resource verb` lines, for readable assertion failures. */
export function formatPermissions(perms: readonly RbacPermission[]): string[] {
  return perms.map((p) => `${p.apiGroup || 'core'}/${p.resource} ${p.verb}`);
}
