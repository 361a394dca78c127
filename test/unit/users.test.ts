import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { allows, parseUsers, patternCovers, tokenSha256, topicPatternProblem } from '../../src/api/users.js';
import { Auth } from '../../src/broker/auth.js';
import { MqError } from '../../src/common/errors.js';

describe('topic patterns', () => {
  it('match an exact name, a prefix with .* and everything with *', () => {
    expect(patternCovers('orders', 'orders')).toBe(true);
    expect(patternCovers('orders', 'orders2')).toBe(false);
    expect(patternCovers('orders.*', 'orders.eu')).toBe(true);
    expect(patternCovers('orders.*', 'orders.eu.late')).toBe(true);
    expect(patternCovers('orders.*', 'orders')).toBe(false);
    expect(patternCovers('orders.*', 'ordersx.eu')).toBe(false);
    expect(patternCovers('*', 'anything')).toBe(true);
  });

  it('give a dead-letter topic the rights of its topic, and explicit rights on it', () => {
    expect(patternCovers('orders', 'orders.dlq')).toBe(true);
    expect(patternCovers('orders.*', 'orders.eu.dlq')).toBe(true);
    expect(patternCovers('orders.dlq', 'orders.dlq')).toBe(true);
    expect(patternCovers('orders.dlq', 'orders')).toBe(false);
    expect(patternCovers('payments', 'orders.dlq')).toBe(false);
  });

  it('refuse what is neither a name, a prefix nor *', () => {
    expect(topicPatternProblem('orders.*')).toBeNull();
    expect(topicPatternProblem('*')).toBeNull();
    expect(topicPatternProblem('ord*')).toMatch(/must be/);
    expect(topicPatternProblem('Orders')).toMatch(/must be/);
    expect(topicPatternProblem('.*')).toMatch(/must be/);
  });
});

describe('rights', () => {
  const rights = [
    { topic: 'orders.*', actions: ['produce' as const] },
    { topic: 'audit', actions: ['consume' as const, 'admin' as const] },
  ];

  it('grant an action only where a pattern with that action covers the topic', () => {
    expect(allows(rights, 'produce', 'orders.eu')).toBe(true);
    expect(allows(rights, 'consume', 'orders.eu')).toBe(false);
    expect(allows(rights, 'admin', 'audit')).toBe(true);
    expect(allows(rights, 'produce', 'audit')).toBe(false);
  });

  it('grant "every topic" only through *', () => {
    expect(allows(rights, 'admin')).toBe(false);
    expect(allows([{ topic: '*', actions: ['admin'] }], 'admin')).toBe(true);
  });
});

describe('users file', () => {
  const hash = tokenSha256('t');

  it('parses users with digests and rights', () => {
    const doc = parseUsers({
      users: [{ name: 'app', tokenSha256: hash, rights: [{ topic: '*', actions: ['consume'] }] }],
    });
    expect(doc.users[0]).toEqual({
      name: 'app',
      tokenSha256: hash,
      rights: [{ topic: '*', actions: ['consume'] }],
    });
  });

  it.each([
    [{ users: [{ name: 'app', tokenSha256: 'short', rights: [] }] }, /tokenSha256/],
    [{ users: [{ name: 'App', tokenSha256: hash, rights: [] }] }, /name/],
    [
      { users: [{ name: 'a', tokenSha256: hash, rights: [{ topic: 'x', actions: ['read'] }] }] },
      /"read" is not one of/,
    ],
    [{ users: [{ name: 'a', tokenSha256: hash, rights: [{ topic: 'x', actions: [] }] }] }, /non-empty/],
    [
      {
        users: [
          { name: 'a', tokenSha256: hash, rights: [] },
          { name: 'a', tokenSha256: hash, rights: [] },
        ],
      },
      /twice/,
    ],
    [{ users: [], token: 'x' }, /unknown field/],
  ])('refuses %j', (raw, message) => {
    expect(() => parseUsers(raw)).toThrow(message);
  });
});

describe('Auth', () => {
  const req = (token?: string) =>
    ({ headers: token === undefined ? {} : { authorization: `Bearer ${token}` } }) as IncomingMessage;
  const users = parseUsers({
    users: [
      {
        name: 'reader',
        tokenSha256: tokenSha256('reader-token'),
        rights: [{ topic: 'orders', actions: ['consume'] }],
      },
      { name: 'root', tokenSha256: tokenSha256('root-token'), rights: [{ topic: '*', actions: ['admin'] }] },
    ],
  });
  const refusal = (f: () => unknown) => {
    try {
      f();
    } catch (err) {
      return err instanceof MqError ? { status: err.status, code: err.code, message: err.message } : err;
    }
    throw new Error('not refused');
  };

  it('answers 401 without a token or with an unknown one, and finds the user of a known one', () => {
    const auth = new Auth({ users, operatorToken: 'op' });
    expect(refusal(() => auth.authenticate(req()))).toMatchObject({ status: 401, code: 'unauthenticated' });
    expect(refusal(() => auth.authenticate(req('nope')))).toMatchObject({
      status: 401,
      code: 'unauthenticated',
    });
    expect(auth.authenticate(req('reader-token')).name).toBe('reader');
    expect(auth.authenticate(req('op')).operator).toBe(true);
  });

  it('answers 403 naming the missing right and the topic', () => {
    const auth = new Auth({ users });
    const reader = auth.authenticate(req('reader-token'));
    auth.require(reader, 'consume', 'orders');
    auth.require(reader, 'consume', 'orders.dlq');
    expect(refusal(() => auth.require(reader, 'produce', 'orders'))).toEqual({
      status: 403,
      code: 'forbidden',
      message: 'user reader lacks the produce right on topic orders',
    });
    expect(refusal(() => auth.require(reader, 'consume', 'payments'))).toMatchObject({ status: 403 });
  });

  it('lets operator routes be called by the operator token or an admin of every topic', () => {
    const auth = new Auth({ users, operatorToken: 'op' });
    auth.requireOperator(auth.authenticate(req('op')));
    auth.requireOperator(auth.authenticate(req('root-token')));
    expect(refusal(() => auth.requireOperator(auth.authenticate(req('reader-token'))))).toMatchObject({
      status: 403,
      message: 'user reader lacks the admin right on every topic ("*")',
    });
  });

  it('without users or a shared token lets clients in without one, but not into operator routes', () => {
    const auth = new Auth({ operatorToken: 'op' });
    expect(auth.enabled).toBe(false);
    const anyone = auth.authenticate(req());
    auth.require(anyone, 'produce', 'orders');
    expect(refusal(() => auth.requireOperator(anyone))).toMatchObject({ status: 401 });
    expect(refusal(() => new Auth({}).requireOperator(anyone))).toMatchObject({
      status: 403,
      code: 'admin_disabled',
    });
  });

  it('takes the deprecated shared token as a user with every right, and reloads users', () => {
    const auth = new Auth({ sharedToken: 'shared' });
    expect(refusal(() => auth.authenticate(req()))).toMatchObject({ status: 401 });
    auth.require(auth.authenticate(req('shared')), 'admin', 'orders');
    auth.setUsers(users);
    expect(auth.authenticate(req('reader-token')).name).toBe('reader');
    auth.setUsers({ users: [] });
    expect(refusal(() => auth.authenticate(req('reader-token')))).toMatchObject({ status: 401 });
  });
});
