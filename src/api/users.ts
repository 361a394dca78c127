import { createHash } from 'node:crypto';
import { badRequest } from '../common/errors.js';
import { TOPIC_NAME_PATTERN } from '../shard/schema.js';
import { asObject, onlyKeys } from './json-shape.js';

/**
 * The users file (docs/security.md, "Clients and rights"): who may call the broker and what each
 * may do per topic. The operator renders it from `spec.users`; brokers re-read it when it changes.
 * It holds SHA-256 digests of the tokens, never the tokens: a token is 32 random bytes, so its
 * digest cannot be reversed and the file is no credential.
 */
export interface UsersDocument {
  users: UserEntry[];
}

export interface UserEntry {
  name: string;
  /** Lower-case hex SHA-256 of the user's token. */
  tokenSha256: string;
  rights: TopicRight[];
}

export const ACTIONS = ['produce', 'consume', 'admin'] as const;
export type Action = (typeof ACTIONS)[number];

/**
 * `topic` is an exact topic name, a prefix pattern `orders.*` (every topic whose name starts with
 * `orders.`, not `orders` itself) or `*` (every topic).
 */
export interface TopicRight {
  topic: string;
  actions: Action[];
}

export const USER_NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
/** The dead-letter topic of `T` is `T.dlq` (src/broker/dead-letters.ts). */
const DLQ_SUFFIX = '.dlq';

export function tokenSha256(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Null when `pattern` is a topic pattern users may hold rights on, else why not. */
export function topicPatternProblem(pattern: string): string | null {
  if (pattern === '*') return null;
  const base = pattern.endsWith('.*') ? pattern.slice(0, -2) : pattern;
  if (!TOPIC_NAME_PATTERN.test(base)) {
    return `topic pattern ${JSON.stringify(pattern)} must be "*", a topic name, or a topic name followed by ".*"`;
  }
  return null;
}

/**
 * Whether `pattern` covers `topic`. A dead-letter topic `T.dlq` is also covered by every pattern
 * that covers `T`: whoever consumes `orders` must be able to read and replay what was set aside
 * from it, without a second right per topic. An explicit right on `T.dlq` works as for any topic.
 */
export function patternCovers(pattern: string, topic: string): boolean {
  if (matchesDirectly(pattern, topic)) return true;
  return topic.endsWith(DLQ_SUFFIX) && matchesDirectly(pattern, topic.slice(0, -DLQ_SUFFIX.length));
}

function matchesDirectly(pattern: string, topic: string): boolean {
  if (pattern === '*') return true;
  if (pattern.endsWith('.*')) return topic.startsWith(pattern.slice(0, -1));
  return pattern === topic;
}

/** Whether `rights` grant `action` on `topic`; `topic` undefined asks for every topic (`*`). */
export function allows(rights: TopicRight[], action: Action, topic?: string): boolean {
  return rights.some(
    (r) =>
      r.actions.includes(action) && (topic === undefined ? r.topic === '*' : patternCovers(r.topic, topic)),
  );
}

/** Whether `rights` grant anything on `topic`. */
export function holdsAnyRight(rights: TopicRight[], topic: string): boolean {
  return rights.some((r) => patternCovers(r.topic, topic));
}

/** Checks a list of rights from JSON (the users file, or the cluster spec); throws a 400 naming the field. */
export function parseRights(raw: unknown, where: string): TopicRight[] {
  if (!Array.isArray(raw)) throw badRequest('invalid_users', `${where} must be an array`);
  return raw.map((item, i) => {
    const at = `${where}[${i}]`;
    const r = asObject(item, at);
    onlyKeys(r, ['topic', 'actions'], at);
    if (typeof r.topic !== 'string') throw badRequest('invalid_users', `${at}.topic must be a string`);
    const problem = topicPatternProblem(r.topic);
    if (problem) throw badRequest('invalid_users', `${at}.topic: ${problem}`);
    if (!Array.isArray(r.actions) || r.actions.length === 0) {
      throw badRequest('invalid_users', `${at}.actions must be a non-empty array`);
    }
    for (const a of r.actions) {
      if (!ACTIONS.includes(a as Action)) {
        throw badRequest(
          'invalid_users',
          `${at}.actions: ${JSON.stringify(a)} is not one of ${ACTIONS.join(', ')}`,
        );
      }
    }
    return { topic: r.topic, actions: [...new Set(r.actions as Action[])] };
  });
}

/** Validates a users file; throws a 400 MqError naming the bad field. */
export function parseUsers(raw: unknown): UsersDocument {
  const doc = asObject(raw, 'users file');
  onlyKeys(doc, ['users'], 'users file');
  if (!Array.isArray(doc.users)) throw badRequest('invalid_users', 'users file: users must be an array');
  const seen = new Set<string>();
  const users = doc.users.map((item, i) => {
    const at = `users[${i}]`;
    const u = asObject(item, at);
    onlyKeys(u, ['name', 'tokenSha256', 'rights'], at);
    if (typeof u.name !== 'string' || !USER_NAME_PATTERN.test(u.name)) {
      throw badRequest('invalid_users', `${at}.name must match ${USER_NAME_PATTERN.source}`);
    }
    if (seen.has(u.name)) throw badRequest('invalid_users', `${at}.name: user ${u.name} is listed twice`);
    seen.add(u.name);
    if (typeof u.tokenSha256 !== 'string' || !SHA256_HEX.test(u.tokenSha256)) {
      throw badRequest('invalid_users', `${at}.tokenSha256 must be 64 lower-case hex digits`);
    }
    return { name: u.name, tokenSha256: u.tokenSha256, rights: parseRights(u.rights, `${at}.rights`) };
  });
  return { users };
}
