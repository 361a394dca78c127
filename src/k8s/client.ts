/**
 * Kubeconfig loading and ApiException helpers (requests go through ./rest.ts).
 *
 * This is the only place (together with the other `src/k8s/*` modules) that knows how
 * @kubernetes/client-node 1.4 reports errors, so the rest of the operator talks about
 * "404" and "Conflict", never about `ApiException.body` being a JSON string.
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { ApiException, KubeConfig } from '@kubernetes/client-node';

export { ApiException, KubeConfig };

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface LoadKubeConfigOptions {
  /** An explicit kubeconfig file (a --kubeconfig flag); wins over everything else. */
  kubeconfigPath?: string;
  /** Use this context instead of the file's current-context. */
  context?: string;
  /** Environment to read KUBECONFIG / KUBERNETES_SERVICE_HOST from (tests pass their own). */
  env?: NodeJS.ProcessEnv;
  /** Where the in-cluster service-account token lives (tests point it elsewhere). */
  serviceAccountDir?: string;
  /** Where to look for ~/.kube/config. */
  homeDir?: string;
}

/**
 * Loads a kubeconfig the way controller-runtime's `config.GetConfig` does (explicit path →
 * $KUBECONFIG → in-cluster → ~/.kube/config) and throws when none is usable.
 *
 * Why not `kc.loadFromDefault()`: when it finds nothing it silently configures
 * `http://localhost:8080` (client-node 1.4 `dist/config.js`), so a misconfigured operator
 * would start, fail every request with ECONNREFUSED and look "alive". Failing at startup
 * with a message naming what was tried is far easier to debug.
 */
export function loadKubeConfig(opts: LoadKubeConfigOptions = {}): KubeConfig {
  const env = opts.env ?? process.env;
  const kc = new KubeConfig();
  let source: string;
  if (opts.kubeconfigPath) {
    kc.loadFromFile(opts.kubeconfigPath); // throws ENOENT itself: good, that is fail-fast
    source = opts.kubeconfigPath;
  } else if (env.KUBECONFIG) {
    // Same ':'-merge semantics as kubectl; loadFromDefault only reads env.KUBECONFIG here,
    // which is why we only call it when the variable is set (no silent fallback possible).
    const files = env.KUBECONFIG.split(delimiter).filter(Boolean);
    kc.loadFromFile(files[0]!);
    for (const f of files.slice(1)) {
      const extra = new KubeConfig();
      extra.loadFromFile(f);
      kc.mergeConfig(extra);
    }
    source = `KUBECONFIG=${env.KUBECONFIG}`;
  } else if (env.KUBERNETES_SERVICE_HOST) {
    const saDir = opts.serviceAccountDir ?? SA_DIR;
    if (!existsSync(join(saDir, 'token'))) {
      throw new Error(
        `KUBERNETES_SERVICE_HOST is set but ${saDir}/token does not exist (automountServiceAccountToken off?)`,
      );
    }
    // loadFromCluster uses a token-file authenticator that re-reads the projected token when
    // it rotates, so long-running operators keep working after the 1 h token expiry.
    kc.loadFromCluster();
    source = 'in-cluster service account';
  } else {
    const file = join(opts.homeDir ?? homedir(), '.kube', 'config');
    if (!existsSync(file)) {
      throw new Error(
        'no Kubernetes configuration: pass --kubeconfig, set KUBECONFIG, run in a pod, or create ~/.kube/config',
      );
    }
    kc.loadFromFile(file);
    source = file;
  }
  if (opts.context) kc.setCurrentContext(opts.context);
  assertUsable(kc, source);
  return kc;
}

/** Throws unless the current context names a cluster with an http(s) server URL. */
export function assertUsable(kc: KubeConfig, source = 'kubeconfig'): void {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error(`${source}: current context "${kc.getCurrentContext()}" names no cluster`);
  let url: URL;
  try {
    url = new URL(cluster.server);
  } catch {
    throw new Error(`${source}: cluster "${cluster.name}" has no valid server URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new Error(`${source}: cluster "${cluster.name}" server must be http(s), got ${url.protocol}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Errors. client-node 1.x throws ApiException with `.code` (HTTP status) and `.body` (the raw
// response text, i.e. a JSON `Status` as a *string*). Its `.message` embeds every response
// header, so it must never be logged as-is.

/** The parsed `Status` of a failed API call, when the body is one. */
export interface ApiStatus {
  code?: number;
  reason?: string;
  message?: string;
  details?: { name?: string; kind?: string; retryAfterSeconds?: number; causes?: unknown[] };
}

export function isApiException(err: unknown): err is ApiException<unknown> {
  // instanceof works for errors from client-node's own typed clients and from ./rest.ts,
  // which throws the same class. The duck-typed fallback covers a second copy of the
  // package in node_modules (then instanceof is false).
  return (
    err instanceof ApiException ||
    (err instanceof Error &&
      typeof (err as { code?: unknown }).code === 'number' &&
      'body' in err &&
      'headers' in err)
  );
}

/** True when `err` is an API error; with `code`, only for that HTTP status (404, 409, 410, …). */
export function isApiError(err: unknown, code?: number): err is ApiException<unknown> {
  return isApiException(err) && (code === undefined || err.code === code);
}

export const isNotFound = (err: unknown): boolean => isApiError(err, 404);
export const isConflict = (err: unknown): boolean => isApiError(err, 409);
export const isGone = (err: unknown): boolean => isApiError(err, 410);

/** The `Status` object carried by an ApiException, parsed from its string body. */
export function apiStatus(err: unknown): ApiStatus | undefined {
  if (!isApiException(err)) return undefined;
  const body: unknown = err.body;
  if (body && typeof body === 'object') return body as ApiStatus;
  if (typeof body !== 'string' || body === '') return undefined;
  try {
    const parsed: unknown = JSON.parse(body);
    return parsed && typeof parsed === 'object' ? (parsed as ApiStatus) : undefined;
  } catch {
    return undefined;
  }
}

/** `Status.reason` (NotFound, AlreadyExists, Conflict, Expired, Invalid, …) of an API error. */
export function apiErrorReason(err: unknown): string | undefined {
  return apiStatus(err)?.reason;
}

const MAX_SUMMARY = 500;

/**
 * A one-line description of any error that is safe to log: the HTTP status, `Status.reason`
 * and `Status.message` for API errors, `name: message (code)` otherwise. It never includes
 * request or response headers (ApiException.message contains them, and a proxied 401 can
 * echo an Authorization header) and it is length-limited.
 */
export function errorSummary(err: unknown): string {
  let s: string;
  if (isApiException(err)) {
    const st = apiStatus(err);
    const text =
      st?.message ?? (typeof err.body === 'string' && !err.body.trimStart().startsWith('<') ? err.body : '');
    s = `HTTP ${err.code}${st?.reason ? ` ${st.reason}` : ''}${text ? `: ${text}` : ''}`;
  } else if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    s = `${err.name}: ${err.message}${typeof code === 'string' ? ` (${code})` : ''}`;
  } else {
    s = String(err);
  }
  s = s.replace(/(bearer|basic)\s+[A-Za-z0-9._~+/=-]+/gi, '$1 [redacted]').replace(/\s+/g, ' ');
  return s.length > MAX_SUMMARY ? `${s.slice(0, MAX_SUMMARY)}…` : s;
}

/** `Retry-After` of a 429/503 API error, in milliseconds, when the server sent one. */
export function retryAfterMs(err: unknown): number | undefined {
  if (!isApiException(err)) return undefined;
  const h = err.headers ?? {};
  const raw = h['retry-after'] ?? h['Retry-After'];
  const fromHeader = raw !== undefined ? Number(raw) : NaN;
  if (Number.isFinite(fromHeader) && fromHeader >= 0) return fromHeader * 1000;
  const fromBody = apiStatus(err)?.details?.retryAfterSeconds;
  return typeof fromBody === 'number' ? fromBody * 1000 : undefined;
}
