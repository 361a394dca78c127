/**
 * What RBAC permission an API request needs. The operator records each request with its use when
 * MQ_K8S_AUDIT_LOG is set (./audit.ts), so the chart's least-privilege RBAC can be checked against
 * the requests it really makes; the checking itself is test code (test/support/rbac.ts).
 *
 * The mapping follows the apiserver's RequestInfoFactory
 * (k8s.io/apiserver/pkg/endpoints/request/requestinfo.go) and the RBAC rule matching of
 * k8s.io/kubernetes/pkg/apis/rbac/v1/evaluation_helpers.go.
 */

export type RbacVerb =
  'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete' | 'deletecollection';

/** A resource request, as the apiserver's authorizer sees it. */
export interface ResourcePath {
  /** "" for the core group (/api/v1). */
  apiGroup: string;
  version: string;
  /** The namespace of a namespaced request (for `namespaces/NAME` it is NAME). */
  namespace?: string;
  resource: string;
  name?: string;
  subresource?: string;
}

/** One request of a program, reduced to what RBAC decides on. */
export interface RbacUse {
  apiGroup: string;
  resource: string;
  subresource?: string;
  verb: RbacVerb;
  namespace?: string;
  name?: string;
}

/** Namespace subresources (`namespaces/NAME/status`), as opposed to `namespaces/NAME/pods`. */
const NAMESPACE_SUBRESOURCES = new Set(['status', 'finalize']);

function splitPath(path: string): string[] {
  const q = path.indexOf('?');
  return (q >= 0 ? path.slice(0, q) : path)
    .split('/')
    .filter(Boolean)
    .map((p) => decodeURIComponent(p));
}

interface ParsedPath extends ResourcePath {
  /** The deprecated `/api/v1/watch/...` form. */
  legacyWatch: boolean;
}

function parse(path: string): ParsedPath | undefined {
  let parts = splitPath(path);
  let apiGroup: string;
  let version: string;
  if (parts[0] === 'api' && parts.length >= 2) {
    apiGroup = '';
    version = parts[1]!;
    parts = parts.slice(2);
  } else if (parts[0] === 'apis' && parts.length >= 3) {
    apiGroup = parts[1]!;
    version = parts[2]!;
    parts = parts.slice(3);
  } else {
    return undefined;
  }
  const legacyWatch = parts[0] === 'watch';
  if (legacyWatch) parts = parts.slice(1);
  if (parts.length === 0) return undefined; // a group-version discovery document
  let namespace: string | undefined;
  if (parts[0] === 'namespaces' && parts.length > 1) {
    namespace = parts[1];
    if (parts.length > 2 && !NAMESPACE_SUBRESOURCES.has(parts[2]!)) parts = parts.slice(2);
  }
  const out: ParsedPath = { apiGroup, version, resource: parts[0]!, legacyWatch };
  if (namespace !== undefined) out.namespace = namespace;
  if (parts[1] !== undefined) out.name = parts[1];
  if (parts[2] !== undefined) out.subresource = parts.slice(2).join('/');
  return out;
}

/**
 * The resource a path names, or undefined for a non-resource URL (`/version`, `/healthz`,
 * discovery documents such as `/api`, `/apis`, `/apis/apps/v1`). Paths are absolute API paths
 * without the server's own prefix (a query string is ignored); the legacy `/watch/` prefix is
 * understood. For `namespaces/NAME` the namespace is NAME, as the apiserver has it.
 */
export function parseResourcePath(path: string): ResourcePath | undefined {
  const p = parse(path);
  if (!p) return undefined;
  const r: ResourcePath = { ...p };
  delete (r as Partial<ParsedPath>).legacyWatch;
  return r;
}

type QueryLike = Record<string, string | number | boolean | undefined> | URLSearchParams | string | undefined;

function queryValue(query: QueryLike, key: string): string | undefined {
  if (query === undefined) return undefined;
  if (typeof query === 'string') return new URLSearchParams(query.replace(/^\?/, '')).get(key) ?? undefined;
  if (query instanceof URLSearchParams) return query.get(key) ?? undefined;
  const v = query[key];
  return v === undefined ? undefined : String(v);
}

/** The `watch` list option is true ("true" or "1", as the apiserver's query decoder reads a bool). */
function isWatchQuery(query: QueryLike): boolean {
  const v = queryValue(query, 'watch');
  return v === 'true' || v === '1';
}

/**
 * The RBAC verb of a request: GET on one object → get, on a collection → list, with
 * `watch=true` (or the legacy /watch/ path) → watch; POST → create; PUT → update; PATCH → patch;
 * DELETE on one object → delete, on a collection → deletecollection. Undefined for a
 * non-resource URL (discovery, /version), for which RBAC has `nonResourceURLs` rules instead.
 *
 * `path` may carry its query string; `query` (an object, URLSearchParams or "a=b" string) is
 * consulted as well.
 */
export function rbacVerbOf(method: string, path: string, query?: QueryLike): RbacVerb | undefined {
  const r = parse(path);
  if (!r) return undefined;
  const q = path.indexOf('?');
  const pathQuery = q >= 0 ? path.slice(q + 1) : undefined;
  switch (method.toUpperCase()) {
    case 'GET':
    case 'HEAD':
      if (r.legacyWatch) return 'watch';
      if (r.name !== undefined) return 'get';
      return isWatchQuery(query) || isWatchQuery(pathQuery) ? 'watch' : 'list';
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return r.name !== undefined ? 'delete' : 'deletecollection';
    default:
      return undefined;
  }
}

/**
 * The request as RBAC sees it: group, resource, subresource, verb, namespace and name (also the
 * name of a `fieldSelector=metadata.name=X` list or watch). Undefined for a non-resource URL.
 */
export function rbacUseOf(method: string, path: string, query?: QueryLike): RbacUse | undefined {
  const r = parseResourcePath(path);
  const verb = rbacVerbOf(method, path, query);
  if (!r || !verb) return undefined;
  const use: RbacUse = { apiGroup: r.apiGroup, resource: r.resource, verb };
  if (r.subresource !== undefined) use.subresource = r.subresource;
  if (r.namespace !== undefined) use.namespace = r.namespace;
  if (r.name !== undefined) use.name = r.name;
  else if (verb === 'list' || verb === 'watch') {
    // A list/watch with fieldSelector metadata.name=X is authorized with name X (the verb stays),
    // so a rule with resourceNames [X] allows it, as in the apiserver.
    const q = path.indexOf('?');
    const selector =
      queryValue(query, 'fieldSelector') ??
      queryValue(q >= 0 ? path.slice(q + 1) : undefined, 'fieldSelector');
    const m = selector !== undefined ? /^metadata\.name==?([^,=!]+)$/.exec(selector) : null;
    if (m) use.name = m[1];
  }
  return use;
}
