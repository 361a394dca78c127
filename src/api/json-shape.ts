/**
 * Shape checks for JSON documents both sides of a contract parse (the routing document, request
 * bodies): each failure is a 400 with a code and a message naming the offending field.
 */
import { badRequest } from '../common/errors.js';

/** `value` as a JSON object (not null, not an array), or a 400 `invalid_request` naming `where`. */
export function asObject(value: unknown, where: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw badRequest('invalid_request', `${where} must be a JSON object`);
  }
  return value as Record<string, unknown>;
}

/** A 400 `unknown_field` for the first key of `obj` not in `allowed`. */
export function onlyKeys(obj: Record<string, unknown>, allowed: string[], where: string): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) {
      throw badRequest('unknown_field', `${where}: unknown field "${key}" (allowed: ${allowed.join(', ')})`);
    }
  }
}
