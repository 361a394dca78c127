/**
 * A minimal REST transport to the API server over node:http(s), authenticated by the
 * KubeConfig (`kc.applyToHTTPSOptions` adds CA, client certificate, bearer token — including
 * refreshing token-file/exec providers — and the agent/proxy).
 *
 * Why not only client-node's generated clients:
 *  - LIST/WATCH need a streaming response with timeouts we control; client-node 1.4's `Watch`
 *    loses its timeout signal and cannot be aborted before headers arrive (research §1.5).
 *  - Generic server-side apply must send the body verbatim. `KubernetesObjectApi.patch`
 *    serializes it through client-node's typed models, which silently drops every field the
 *    model does not know, defaults a missing namespace to the context's namespace and needs
 *    a discovery round trip (see ./apply.ts).
 * Failures are thrown as client-node's own `ApiException` (code + raw body string), so
 * `isApiError()` in ./client.ts treats both transports the same.
 */
import http from 'node:http';
import https from 'node:https';
import { ApiException, type KubeConfig } from '@kubernetes/client-node';
import { type RbacUse, rbacUseOf } from './rbac.js';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
export type Query = Record<string, string | number | boolean | undefined>;

export interface RestRequest {
  method?: HttpMethod;
  /** Absolute API path, e.g. `/api/v1/namespaces/ns/configmaps`. */
  path: string;
  query?: Query;
  /** Sent as JSON (also valid YAML, so fine for application/apply-patch+yaml). */
  body?: unknown;
  /** Content-Type of the body; default application/json. */
  contentType?: string;
  /** Whole-request deadline for `request()`; socket idle timeout for `stream()`. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** An open streaming response (a watch). `close()` is idempotent. */
export interface RestStream {
  response: http.IncomingMessage;
  close(reason?: Error): void;
  /** Why the stream was cut (idle timeout, abort signal, close(reason)), if it was. */
  failure(): Error | undefined;
}

/** One request as the audit hook sees it, before it is sent. */
export interface AuditedRequest {
  method: string;
  /** The API path without the server's prefix and without the query string. */
  path: string;
  /** The query string without "?" ("" when none). */
  query: string;
  /** The body's Content-Type, when the request has a body (a server-side apply also needs `create`). */
  contentType?: string;
  /** What RBAC decides on (group, resource, subresource, verb, namespace, name); undefined for a non-resource URL. */
  use: RbacUse | undefined;
}

/**
 * Called synchronously for every request before it is sent (also for requests the server then
 * refuses). Must not throw; an exception is swallowed so auditing can never break a request.
 */
export type RequestAuditHook = (req: AuditedRequest) => void;

/** The AuditedRequest of a method + path (+ query string or object, + the body's Content-Type). */
export function auditedRequest(
  method: string,
  path: string,
  query: string | Query = '',
  contentType?: string,
): AuditedRequest {
  const q = path.indexOf('?');
  const bare = q >= 0 ? path.slice(0, q) : path;
  let qs = typeof query === 'string' ? query.replace(/^\?/, '') : buildQuery(query).slice(1);
  if (q >= 0) qs = [path.slice(q + 1), qs].filter(Boolean).join('&');
  return {
    method: method.toUpperCase(),
    path: bare,
    query: qs,
    ...(contentType ? { contentType } : {}),
    use: rbacUseOf(method, bare, qs),
  };
}

/** Calls the hook, never letting it throw into the request path. */
function reportRequest(hook: RequestAuditHook | undefined, req: () => AuditedRequest): void {
  if (!hook) return;
  try {
    hook(req());
  } catch {
    // auditing must never break a request
  }
}

const DEFAULT_TIMEOUT_MS = 30_000;

export function timeoutError(message: string): Error {
  const e = new Error(message);
  e.name = 'TimeoutError';
  return e;
}

function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  const e = new Error('request aborted');
  e.name = 'AbortError';
  return e;
}

export function buildQuery(query: Query | undefined): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) params.set(k, String(v));
  const s = params.toString();
  return s ? `?${s}` : '';
}

function flatHeaders(h: http.IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

export class KubeRest {
  /**
   * @param audit optional hook told about every request (method, path, RBAC group/resource/
   *   subresource/verb) before it is sent; also settable later through `rest.audit`.
   */
  constructor(
    readonly kc: KubeConfig,
    private readonly defaultTimeoutMs = DEFAULT_TIMEOUT_MS,
    public audit?: RequestAuditHook,
  ) {}

  /** JSON request/response. Resolves with the parsed body; non-2xx rejects with ApiException. */
  async request<T = unknown>(req: RestRequest): Promise<T> {
    const method = req.method ?? 'GET';
    const payload = req.body === undefined ? undefined : JSON.stringify(req.body);
    const r = await this.open(req, payload, req.timeoutMs ?? this.defaultTimeoutMs, true);
    // If the deadline or the signal cut the body short, report that rather than "aborted".
    let text: string;
    try {
      text = await readBody(r.response);
    } catch (err) {
      throw r.failure() ?? err;
    } finally {
      r.close(); // clears the deadline timer and the abort listener in every case
    }
    const status = r.response.statusCode ?? 0;
    if (status < 200 || status > 299) throw apiException(method, req.path, status, text, r.response.headers);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /**
   * Opens a streaming GET (a watch). Resolves once 2xx headers arrive; a non-2xx status
   * rejects with ApiException. `timeoutMs` is a socket *idle* timeout that stays armed for
   * the life of the stream, so it also covers a server that accepts the connection and then
   * never sends a byte (the hang client-node 1.4 cannot escape).
   */
  async stream(req: RestRequest): Promise<RestStream> {
    const r = await this.open(
      { ...req, method: 'GET' },
      undefined,
      req.timeoutMs ?? this.defaultTimeoutMs,
      false,
    );
    const status = r.response.statusCode ?? 0;
    if (status < 200 || status > 299) {
      const text = await readBody(r.response).catch(() => '');
      r.close();
      throw apiException('GET', req.path, status, text, r.response.headers);
    }
    return r;
  }

  private async open(
    req: RestRequest,
    payload: string | undefined,
    timeoutMs: number,
    wholeRequestDeadline: boolean,
  ): Promise<RestStream> {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    const base = new URL(cluster.server);
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (payload !== undefined) {
      headers['Content-Type'] = req.contentType ?? 'application/json';
      headers['Content-Length'] = String(Buffer.byteLength(payload));
    }
    const opts: https.RequestOptions = { method: req.method ?? 'GET', headers };
    await this.kc.applyToHTTPSOptions(opts);
    opts.protocol = base.protocol;
    opts.hostname = base.hostname.replace(/^\[(.*)\]$/, '$1'); // IPv6 literal without brackets
    opts.port = base.port || (base.protocol === 'https:' ? 443 : 80);
    opts.path = `${base.pathname.replace(/\/$/, '')}${req.path}${buildQuery(req.query)}`;
    const signal = req.signal;
    if (signal?.aborted) throw abortError(signal);
    reportRequest(this.audit, () =>
      auditedRequest(opts.method!, req.path, req.query ?? {}, headers['Content-Type']),
    );

    return new Promise((resolve, reject) => {
      const mod = base.protocol === 'https:' ? https : http;
      const cr = mod.request(opts);
      let settled = false;
      let failure: Error | undefined;
      let deadline: NodeJS.Timeout | undefined;
      const close = (reason?: Error) => {
        failure ??= reason;
        if (deadline) clearTimeout(deadline);
        signal?.removeEventListener('abort', onAbort);
        if (!cr.destroyed) cr.destroy(reason);
      };
      const fail = (err: Error) => {
        failure ??= err;
        close(err);
        if (!settled) {
          settled = true;
          reject(err);
        }
      };
      const onAbort = () => fail(abortError(signal!));
      signal?.addEventListener('abort', onAbort, { once: true });
      if (wholeRequestDeadline) {
        deadline = setTimeout(
          () => fail(timeoutError(`no complete response within ${timeoutMs} ms`)),
          timeoutMs,
        );
      } else {
        // Idle timeout on the socket: fires after timeoutMs without any byte in either direction.
        cr.setTimeout(timeoutMs, () => fail(timeoutError(`no data for ${timeoutMs} ms`)));
      }
      cr.on('error', fail);
      cr.on('response', (res) => {
        if (settled) return;
        settled = true;
        resolve({ response: res, close, failure: () => failure });
      });
      cr.end(payload);
    });
  }
}

function readBody(res: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
    res.on('close', () => {
      if (!res.complete) reject(new Error('connection closed before the response was complete'));
    });
  });
}

function apiException(
  method: string,
  path: string,
  status: number,
  body: string,
  headers: http.IncomingHttpHeaders,
): ApiException<string> {
  // The message names the request but carries no headers (unlike client-node's own, which
  // embeds them all); the raw Status JSON stays in `.body` like client-node's.
  return new ApiException<string>(status, `${method} ${path}: HTTP ${status}`, body, flatHeaders(headers));
}
