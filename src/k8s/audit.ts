/**
 * Recording which API requests a program makes, so its RBAC can be checked against what it
 * really uses (see ./rbac.ts `checkRbac`).
 *
 * Two transports reach the apiserver: KubeRest (./rest.ts, LIST/WATCH, server-side apply, events)
 * and client-node's typed clients made with `kc.makeApiClient(...)` (e.g. the leader election's
 * CoordinationV1Api). `installRequestAudit` hooks both:
 *
 *   const hook = requestAuditFromEnv();          // MQ_K8S_AUDIT_LOG=/path/requests.jsonl
 *   if (hook) installRequestAudit(hook, { kc, rest });
 *
 * Install it before the first request. The file has one JSON object per line
 * ({method, path, query, use}); the tests read it with `readRequestAudit(file)` of
 * test/support/rbac.ts.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { type KubeRest, type RequestAuditHook, auditedRequest, reportRequest } from './rest.js';

/** The environment variable naming the JSON-lines file every API request is appended to. */
export const AUDIT_LOG_ENV = 'MQ_K8S_AUDIT_LOG';

/**
 * A hook appending one JSON line per request to `file` (synchronously, so nothing is lost on exit).
 * Creates the file's directory.
 */
export function jsonlAuditHook(file: string): RequestAuditHook {
  mkdirSync(dirname(file), { recursive: true });
  return (req) => appendFileSync(file, `${JSON.stringify(req)}\n`);
}

/** `jsonlAuditHook($MQ_K8S_AUDIT_LOG)` when the variable is set, else undefined (no auditing). */
export function requestAuditFromEnv(env: NodeJS.ProcessEnv = process.env): RequestAuditHook | undefined {
  const file = env[AUDIT_LOG_ENV];
  return file ? jsonlAuditHook(file) : undefined;
}

const AUDITED = Symbol('mysqlmq.audited');

/**
 * Makes every typed client made from `kc` (`kc.makeApiClient(...)`, before or after this call)
 * report its requests to `hook`: client-node 1.4's generated clients call
 * `kc.applySecurityAuthentication(requestContext)` once per request, with the final URL and
 * method. KubeRest authenticates through `applyToHTTPSOptions` instead, so nothing is reported
 * twice. Idempotent per KubeConfig (a second call replaces the hook).
 */
export function auditTypedClients(kc: KubeConfig, hook: RequestAuditHook): void {
  type Patched = KubeConfig & { [AUDITED]?: { hook: RequestAuditHook } };
  const k = kc as Patched;
  if (k[AUDITED]) {
    k[AUDITED].hook = hook;
    return;
  }
  const state = { hook };
  k[AUDITED] = state;
  const original = kc.applySecurityAuthentication.bind(kc);
  kc.applySecurityAuthentication = async (context) => {
    reportRequest(state.hook, () => {
      const url = new URL(context.getUrl());
      const server = kc.getCurrentCluster()?.server;
      const prefix = server ? new URL(server).pathname.replace(/\/$/, '') : '';
      const path =
        prefix && url.pathname.startsWith(prefix) ? url.pathname.slice(prefix.length) : url.pathname;
      const headers = context.getHeaders();
      const contentType = Object.entries(headers).find(([k]) => k.toLowerCase() === 'content-type')?.[1];
      return auditedRequest(String(context.getHttpMethod()), path, url.search, contentType);
    });
    return original(context);
  };
}

/** Hooks KubeRest and the typed clients of its KubeConfig (and of `kc`, when another one is used). */
export function installRequestAudit(
  hook: RequestAuditHook,
  targets: { rest?: KubeRest; kc?: KubeConfig },
): void {
  if (targets.rest) {
    targets.rest.audit = hook;
    auditTypedClients(targets.rest.kc, hook);
  }
  if (targets.kc && targets.kc !== targets.rest?.kc) auditTypedClients(targets.kc, hook);
}
