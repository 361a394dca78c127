/**
 * Writes: server-side apply (create-or-update, idempotent) for built-in and custom objects,
 * and JSON merge patch for custom resources and their /status subresource.
 *
 * Why a generic function over ./rest.ts rather than client-node's `KubernetesObjectApi.patch`
 * (which does accept an explicit PatchStrategy): it serializes the body through the typed
 * model named `<Version><Kind>` and silently drops every field the model does not know
 * (verified: `metadata.fooBar` and top-level extras vanish), it silently fills a missing
 * namespace from the kubeconfig context, it needs a discovery GET per apiVersion, and it
 * returns class instances with `Date` fields for built-ins but plain JSON for everything
 * else. Here the body goes out byte-for-byte as JSON (valid YAML, so acceptable as
 * `application/apply-patch+yaml`) and the answer comes back as plain JSON.
 */
import { PatchStrategy } from '@kubernetes/client-node';
import type { KubeRest } from './rest.js';
import { type KubeObject, type ObjectRef, refOf, resourcePath } from './resources.js';

/** The field manager of every write the operator makes (visible in metadata.managedFields). */
export const FIELD_MANAGER = 'mysqlmq-operator';

export interface ApplyOptions {
  fieldManager?: string;
  /** Take ownership of fields another manager set. Controllers force (default true). */
  force?: boolean;
  /** Validate and compute the result without persisting (dryRun=All). */
  dryRun?: boolean;
  signal?: AbortSignal;
}

/**
 * Server-side applies `obj` (which must carry apiVersion, kind, metadata.name and, for
 * namespaced kinds, metadata.namespace) and returns the object as stored.
 *
 * Only the fields present in `obj` are owned by the operator; everything else (fields set
 * by other controllers, defaults) is left alone, and fields the operator applied before but
 * no longer sends are removed. Send the *full* desired state each time, never a diff.
 */
export function applyObject<T extends KubeObject>(
  rest: KubeRest,
  obj: T,
  opts: ApplyOptions = {},
): Promise<T> {
  return apply(rest, obj, undefined, opts);
}

/**
 * Server-side applies the `status` of `obj` through the /status subresource. `obj` needs
 * apiVersion, kind, metadata.name/namespace and status; spec is ignored by the server.
 */
export function applyStatus<T extends KubeObject>(
  rest: KubeRest,
  obj: T,
  opts: ApplyOptions = {},
): Promise<T> {
  return apply(rest, obj, 'status', opts);
}

function apply<T extends KubeObject>(
  rest: KubeRest,
  obj: T,
  subresource: string | undefined,
  opts: ApplyOptions,
): Promise<T> {
  const ref = refOf(obj);
  const body = withApplyDefaults(obj);
  return rest.request<T>({
    method: 'PATCH',
    path: resourcePath(ref, subresource),
    query: {
      fieldManager: opts.fieldManager ?? FIELD_MANAGER,
      force: opts.force ?? true,
      dryRun: opts.dryRun ? 'All' : undefined,
    },
    contentType: PatchStrategy.ServerSideApply,
    body,
    signal: opts.signal,
  });
}

export interface MergePatchOptions {
  /**
   * Optimistic lock: the patch carries metadata.resourceVersion, so the server answers 409
   * Conflict if the object changed since it was read. Use it when the patch was computed
   * from what was read (e.g. a whole conditions list — merge patch replaces lists wholesale).
   */
  resourceVersion?: string;
  fieldManager?: string;
  signal?: AbortSignal;
}

/**
 * JSON merge patch (RFC 7386) of an object, typically a custom resource (custom resources
 * do not support strategic merge patch: 415). `null` values delete keys; lists are
 * replaced whole.
 */
export function mergePatch<T = unknown>(
  rest: KubeRest,
  ref: ObjectRef,
  patch: Record<string, unknown>,
  opts: MergePatchOptions = {},
): Promise<T> {
  return doMergePatch<T>(rest, ref, undefined, patch, opts);
}

/** JSON merge patch of `.status` through the /status subresource (spec changes are ignored there). */
export function mergePatchStatus<T = unknown>(
  rest: KubeRest,
  ref: ObjectRef,
  status: Record<string, unknown>,
  opts: MergePatchOptions = {},
): Promise<T> {
  return doMergePatch<T>(rest, ref, 'status', { status }, opts);
}

function doMergePatch<T>(
  rest: KubeRest,
  ref: ObjectRef,
  subresource: string | undefined,
  patch: Record<string, unknown>,
  opts: MergePatchOptions,
): Promise<T> {
  if (!ref.name) throw new Error('merge patch needs a name');
  let body = patch;
  if (opts.resourceVersion !== undefined) {
    const meta = (patch.metadata ?? {}) as Record<string, unknown>;
    body = { ...patch, metadata: { ...meta, resourceVersion: opts.resourceVersion } };
  }
  return rest.request<T>({
    method: 'PATCH',
    path: resourcePath(ref, subresource),
    query: { fieldManager: opts.fieldManager ?? FIELD_MANAGER },
    contentType: PatchStrategy.MergePatch,
    body,
    signal: opts.signal,
  });
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/**
 * A JSON copy of `obj` with the defaults that server-side apply on Kubernetes < 1.21 needs
 * spelled out. Verified on the 1.20 apiserver: applying a Service whose `spec.ports[]`
 * omits `protocol` fails with HTTP 500 "associative list with keys has an element that
 * omits key field "protocol"" (ports is a list-map keyed by port+protocol). Container ports
 * are accepted without it on 1.20, but get the same default so a desired Pod/Deployment
 * compares equal to what the server stores. The API server defaults protocol to TCP anyway,
 * so adding it changes nothing on newer servers.
 *
 * The JSON round trip also turns `V1MicroTime`/`Date` values into the strings the server
 * expects (V1MicroTime's toISOString has the 6 fractional digits MicroTime fields require).
 */
export function withApplyDefaults<T extends KubeObject>(obj: T): Json {
  const copy = JSON.parse(JSON.stringify(obj)) as { [k: string]: Json };
  const spec = copy.spec as { [k: string]: Json } | undefined;
  if (!spec || typeof spec !== 'object') return copy;
  if (copy.kind === 'Service') defaultProtocol(spec.ports);
  const podSpecs: unknown[] = [];
  if (copy.kind === 'Pod') podSpecs.push(spec);
  const tmpl = spec.template as { spec?: Json } | undefined;
  if (tmpl && typeof tmpl === 'object' && tmpl.spec) podSpecs.push(tmpl.spec);
  for (const ps of podSpecs) {
    const p = ps as { containers?: Json; initContainers?: Json };
    for (const list of [p.containers, p.initContainers]) {
      if (Array.isArray(list)) for (const c of list) defaultProtocol((c as { ports?: Json } | null)?.ports);
    }
  }
  return copy;
}

function defaultProtocol(ports: Json | undefined): void {
  if (!Array.isArray(ports)) return;
  for (const p of ports) {
    if (p && typeof p === 'object' && !Array.isArray(p) && p.protocol === undefined) p.protocol = 'TCP';
  }
}
