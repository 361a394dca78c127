import { randomBytes } from 'node:crypto';
import { type Action, type UsersDocument, parseUsers } from '../../api/users.js';
import type { InformerEventType } from '../../k8s/informer.js';
import type { MessageQueueTopic } from '../api/topic-types.js';
import { topicNameOf } from '../topics/plan.js';
import {
  COMPONENT_BROKER,
  COMPONENT_CREDENTIALS,
  type DefaultedCluster,
  type UserSpec,
} from '../api/types.js';
import { type DesiredObject, names, objectMeta } from './meta.js';

/**
 * The brokers' users (docs/security.md, "Clients and rights"): a Secret per user with its token,
 * and the ConfigMap `NAME-users` the brokers read, with the tokens' SHA-256 digests and rights.
 * The digests of 256-bit random tokens reveal nothing, so a ConfigMap (which the operator already
 * patches) carries them rather than a Secret it would need to patch.
 */

export const USERS_MOUNT = '/etc/mysqlmq/users';
export const USERS_FILE = 'users.json';
/** The key of a user's Secret that holds its token. */
export const TOKEN_KEY = 'token';
export const LABEL_USER = 'mysqlmq.io/user';

export function userSecretName(cr: DefaultedCluster, user: UserSpec): string {
  return user.secretName ?? names.userSecret(cr.metadata.name, user.name);
}

/** A new token: 32 random bytes, base64url. Not pure: called once per user, when its Secret is missing. */
export function generateUserToken(): string {
  return randomBytes(32).toString('base64url');
}

/** The Secret holding `user`'s token, owned by the cluster (deleted with it). */
export function userSecret(cr: DefaultedCluster, user: UserSpec, token: string): DesiredObject {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: objectMeta(cr, userSecretName(cr, user), COMPONENT_CREDENTIALS, {
      labels: { [LABEL_USER]: user.name },
    }),
    type: 'Opaque',
    data: { [TOKEN_KEY]: Buffer.from(token, 'utf8').toString('base64') },
  };
}

/** The token in a user Secret's `data`; undefined when the key is missing or empty. */
export function tokenFromSecret(data: Record<string, string> | undefined): string | undefined {
  const encoded = data?.[TOKEN_KEY];
  const token = encoded ? Buffer.from(encoded, 'base64').toString('utf8').trim() : '';
  return token || undefined;
}

/** A right a MessageQueueTopic's `spec.rights` grants one user on that topic. */
export interface TopicGrant {
  user: string;
  topic: string;
  actions: Action[];
}

/** What the cluster's (not deleting) MessageQueueTopics grant, in a stable order. */
export function topicGrants(cluster: string, topics: readonly MessageQueueTopic[]): TopicGrant[] {
  return topics
    .filter((t) => t.spec.cluster === cluster && !t.metadata.deletionTimestamp)
    .flatMap((t) =>
      (t.spec.rights ?? []).map((r) => ({ user: r.user, topic: topicNameOf(t), actions: r.actions })),
    )
    .sort((a, b) => (a.topic === b.topic ? a.user.localeCompare(b.user) : a.topic.localeCompare(b.topic)));
}

/**
 * Whether a topic event can change what `topicGrants` gives its cluster (its rights, its topic
 * name, its deletion), so the cluster is reconciled for it: most events are the topic's own
 * status. Pure.
 */
export function grantsChanged(
  type: InformerEventType,
  topic: MessageQueueTopic,
  old?: MessageQueueTopic,
): boolean {
  const grants = (t?: MessageQueueTopic) =>
    t && !t.metadata.deletionTimestamp && t.spec.rights?.length
      ? JSON.stringify([t.spec.cluster, topicNameOf(t), t.spec.rights])
      : '';
  if (type === 'resync') return false;
  return type === 'update' ? grants(topic) !== grants(old) : grants(topic) !== '';
}

/** The users a topic's `spec.rights` names that the cluster's `spec.users` does not hold. */
export function unknownRightUsers(topic: MessageQueueTopic, users: readonly UserSpec[]): string[] {
  const known = new Set(users.map((u) => u.name));
  return [...new Set((topic.spec.rights ?? []).map((r) => r.user))].filter((u) => !known.has(u));
}

/**
 * The users file for `cr.spec.users` plus what the cluster's topics grant them, given each user's
 * token digest by name. A user without a digest (its Secret not read yet) is left out: it cannot
 * authenticate until it has one.
 */
export function usersDocument(
  cr: DefaultedCluster,
  digests: Readonly<Record<string, string>>,
  grants: readonly TopicGrant[] = [],
): UsersDocument {
  return parseUsers({
    users: cr.spec.users
      .filter((u) => digests[u.name])
      .map((u) => ({
        name: u.name,
        tokenSha256: digests[u.name],
        rights: [
          ...u.rights,
          ...grants.filter((g) => g.user === u.name).map((g) => ({ topic: g.topic, actions: g.actions })),
        ],
      })),
  });
}

/** ConfigMap `NAME-users`, key `users.json`, mounted as a directory so brokers see changes in place. */
export function usersConfigMap(
  cr: DefaultedCluster,
  digests: Readonly<Record<string, string>>,
  grants: readonly TopicGrant[] = [],
): DesiredObject {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: objectMeta(cr, names.users(cr.metadata.name), COMPONENT_BROKER),
    data: { [USERS_FILE]: `${JSON.stringify(usersDocument(cr, digests, grants), null, 2)}\n` },
  };
}
