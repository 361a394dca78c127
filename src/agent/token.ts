import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * The bearer token of an instance's agent: derived from the shard's admin password, which every
 * MariaDB pod already has (the credentials Secret), so no new secret has to be created or rotated.
 * Whoever may take a physical copy of the data holds the admin password anyway.
 */
export function agentToken(adminPassword: string): string {
  return createHmac('sha256', adminPassword).update('mysqlmq-agent/v1').digest('hex');
}

/** Constant-time comparison of an `Authorization` header with the expected token. */
export function authorized(header: string | undefined, token: string): boolean {
  const given = Buffer.from(/^Bearer (.+)$/.exec(header ?? '')?.[1] ?? '');
  const want = Buffer.from(token);
  return given.length === want.length && timingSafeEqual(given, want);
}
