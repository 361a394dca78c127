import { describe, expect, it } from 'vitest';
import { parseUsers, tokenSha256 } from '../../../src/api/users.js';
import { validateSpec } from '../../../src/operator/api/validate.js';
import type { MessageQueueTopic } from '../../../src/operator/api/topic-types.js';
import {
  grantsChanged,
  tokenFromSecret,
  topicGrants,
  unknownRightUsers,
  userSecret,
  userSecretName,
  usersConfigMap,
} from '../../../src/operator/desired/users.js';
import { OWNER, cluster } from './fixtures.js';

const app = { name: 'app', rights: [{ topic: 'orders.*', actions: ['produce' as const] }] };

describe('user Secrets', () => {
  it('are named NAME-user-<name> unless the user names one, owned by the cluster', () => {
    const cr = cluster({ users: [app, { ...app, name: 'own', secretName: 'byo' }] });
    expect(cr.spec.users.map((u) => userSecretName(cr, u))).toEqual(['mq-user-admin', 'mq-user-app', 'byo']);
    const secret = userSecret(cr, app, 'tok');
    expect(secret.metadata).toMatchObject({
      name: 'mq-user-app',
      namespace: 'ns',
      labels: { 'mysqlmq.io/user': 'app' },
      ownerReferences: [OWNER],
    });
    expect(tokenFromSecret(secret.data as Record<string, string>)).toBe('tok');
    expect(tokenFromSecret({})).toBeUndefined();
  });
});

describe('the users ConfigMap', () => {
  it('holds digests and rights of the users whose token is known, never a token', () => {
    const cr = cluster({ users: [app] });
    const cm = usersConfigMap(cr, { admin: tokenSha256('a'), app: tokenSha256('b') });
    expect(cm.metadata.name).toBe('mq-users');
    const text = (cm.data as Record<string, string>)['users.json'];
    expect(parseUsers(JSON.parse(text))).toEqual({
      users: [
        {
          name: 'admin',
          tokenSha256: tokenSha256('a'),
          rights: [{ topic: '*', actions: ['produce', 'consume', 'admin'] }],
        },
        { name: 'app', tokenSha256: tokenSha256('b'), rights: app.rights },
      ],
    });
    const withoutApp = usersConfigMap(cr, { admin: tokenSha256('a') });
    expect((withoutApp.data as Record<string, string>)['users.json']).not.toContain('"app"');
  });
});

const topic = (
  name: string,
  spec: Partial<MessageQueueTopic['spec']>,
  deleting = false,
): MessageQueueTopic => ({
  metadata: { name, namespace: 'ns', ...(deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}) },
  spec: { cluster: 'mq', ...spec },
});

describe("a MessageQueueTopic's rights", () => {
  const topics = [
    topic('payments', { rights: [{ user: 'app', actions: ['consume'] }] }),
    topic('ledger-res', { topicName: 'ledger', rights: [{ user: 'app', actions: ['produce', 'consume'] }] }),
    topic('gone', { rights: [{ user: 'app', actions: ['admin'] }] }, true),
    topic('other-cluster', { cluster: 'other', rights: [{ user: 'app', actions: ['admin'] }] }),
    topic('ghost', { rights: [{ user: 'nobody', actions: ['consume'] }] }),
  ];

  it("are added to the user's own rights in the users file, for the topic's broker name", () => {
    const cr = cluster({ users: [app] });
    const grants = topicGrants('mq', topics);
    const text = (usersConfigMap(cr, { app: tokenSha256('b') }, grants).data as Record<string, string>)[
      'users.json'
    ];
    expect(parseUsers(JSON.parse(text)).users.find((u) => u.name === 'app')?.rights).toEqual([
      ...app.rights,
      { topic: 'ledger', actions: ['produce', 'consume'] },
      { topic: 'payments', actions: ['consume'] },
    ]);
    // A deleted topic, another cluster's topic and an unknown user grant nothing.
    expect(text).not.toContain('admin"]');
    expect(text).not.toContain('nobody');
  });

  it("reconcile the cluster only when a topic's rights, name or deletion change, not on its status", () => {
    const [payments] = topics;
    const withStatus = { ...payments, status: { phase: 'Ready' } } as MessageQueueTopic;
    expect(grantsChanged('update', withStatus, payments)).toBe(false);
    expect(grantsChanged('resync', payments)).toBe(false);
    expect(grantsChanged('add', payments)).toBe(true);
    expect(grantsChanged('delete', payments)).toBe(true);
    expect(grantsChanged('add', topic('plain', {}))).toBe(false);
    const more = topic('payments', { rights: [{ user: 'app', actions: ['consume', 'produce'] }] });
    expect(grantsChanged('update', more, payments)).toBe(true);
    const deleting = { ...payments, metadata: { ...payments.metadata, deletionTimestamp: 'now' } };
    expect(grantsChanged('update', deleting, payments)).toBe(true);
    // Already out of the grants while it was being deleted: its removal changes nothing more.
    expect(grantsChanged('delete', deleting)).toBe(false);
  });

  it('name users the cluster does not have', () => {
    const cr = cluster({ users: [app] });
    expect(unknownRightUsers(topics[4], cr.spec.users)).toEqual(['nobody']);
    expect(unknownRightUsers(topics[0], cr.spec.users)).toEqual([]);
  });
});

describe('validation of spec.users', () => {
  it('refuses duplicate names, bad patterns and actions, and a shared Secret', () => {
    expect(validateSpec({ users: [app] })).toEqual([]);
    expect(
      validateSpec({
        users: [
          app,
          { ...app, secretName: 's' },
          { name: 'b', secretName: 's', rights: [{ topic: 'ord*', actions: ['produce'] }] },
          { name: 'c', rights: [{ topic: 'x', actions: ['read' as 'produce'] }] },
        ],
      }),
    ).toEqual([
      'spec.users[1].name: user app is listed twice',
      'spec.users[2].rights[0].topic: topic pattern "ord*" must be "*", a topic name, or a topic name followed by ".*"',
      "spec.users[2].secretName s is another user's too",
      'spec.users[3].rights[0].actions: "read" is not one of produce, consume, admin',
    ]);
  });
});
