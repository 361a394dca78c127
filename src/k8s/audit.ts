/**
 * Recording which API requests a program makes, so its RBAC can be checked against what it
 * really uses (test/support/rbac.ts `checkRbac`). Every request of the operator goes through
 * KubeRest (./rest.ts: LIST/WATCH, server-side apply, events, the leader-election Lease), whose
 * audit hook sees it before it is sent; no client's authentication is wrapped.
 *
 *   const hook = requestAuditFromEnv();          // MQ_K8S_AUDIT_LOG=/path/requests.jsonl
 *   if (hook) installRequestAudit(hook, { rest });
 *
 * Install it before the first request. The file has one JSON object per line
 * ({method, path, query, use}); the tests read it with `readRequestAudit(file)` of
 * test/support/rbac.ts.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { KubeRest, RequestAuditHook } from './rest.js';

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

/** Reports every request of the operator's one client, KubeRest, to `hook`. */
export function installRequestAudit(hook: RequestAuditHook, targets: { rest: KubeRest }): void {
  targets.rest.audit = hook;
}
