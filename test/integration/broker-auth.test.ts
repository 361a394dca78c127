import { spawn } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/broker/broker.js';
import { Admin, Consumer, Producer } from '../../src/client/index.js';
import { type TopicRight, parseUsers } from '../../src/api/users.js';
import type { LocalShards } from '../../tools/local/cluster.js';
import { ADMIN_TOKEN, post, refusal, startBroker, startShards, usersFileText } from '../support/dataplane.js';
import { REPO, ensureBuilt } from '../support/operator.js';

/**
 * Users and rights on a live broker and a real shard (issue 14.2): 401 without a known token, 403
 * naming the missing right and topic, admin routes for admins, and a users file re-read in place.
 */
const PREFIX = '127.0.197';
let cluster: LocalShards;
let broker: Broker;
let usersFile: string;

const USERS: Record<string, TopicRight[]> = {
  root: [{ topic: '*', actions: ['produce', 'consume', 'admin'] }],
  writer: [{ topic: 'orders.*', actions: ['produce'] }],
  reader: [{ topic: 'orders.eu', actions: ['consume'] }],
  'orders-admin': [{ topic: 'orders.*', actions: ['admin'] }],
};
const tokenOf = (name: string) => `token-of-${name}-0123456789abcdef`;

async function writeUsers(users: Record<string, TopicRight[]>): Promise<void> {
  await writeFile(usersFile, usersFileText(users, tokenOf));
}

const as = (name: string) => ({ brokers: [broker.url], token: tokenOf(name), timeoutMs: 5000 });

beforeAll(async () => {
  cluster = await startShards(PREFIX, 1);
  usersFile = join(await mkdtemp(join(tmpdir(), 'mq-users-')), 'users.json');
  await writeUsers(USERS);
  broker = await startBroker(cluster, {
    users: parseUsers(JSON.parse(await readFile(usersFile, 'utf8'))),
    usersFile,
  });
  await new Producer(as('root')).createTopic('orders.eu');
  await new Producer(as('root')).createTopic('payments');
});

afterAll(async () => {
  await broker?.close();
  await cluster?.destroy();
});

describe('authentication', () => {
  it('answers 401 unauthenticated without a token and with an unknown one', async () => {
    for (const token of [undefined, 'not-a-token']) {
      const err = await refusal(
        new Producer({ brokers: [broker.url], token, timeoutMs: 5000 }).send('orders.eu', 'x'),
      );
      expect([err.status, err.code]).toEqual([401, 'unauthenticated']);
    }
    const raw = await post(`${broker.url}/v1/topics/orders.eu/messages`, { messages: [{ value: 'x' }] });
    expect(raw).toMatchObject({ status: 401, body: { code: 'unauthenticated' } });
    expect(typeof raw.body.message).toBe('string');
  });

  it('leaves probes and metrics open', async () => {
    expect((await fetch(`${broker.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${broker.url}/metrics`)).status).toBe(200);
  });
});

describe('rights per topic', () => {
  it('refuses a consume-only user on publish (403) and on another topic, and lets it consume', async () => {
    await new Producer(as('writer')).send('orders.eu', 'first');
    const publish = await refusal(new Producer(as('reader')).send('orders.eu', 'x'));
    expect([publish.status, publish.code]).toEqual([403, 'forbidden']);
    expect(publish.message).toBe('user reader lacks the produce right on topic orders.eu');

    const other = await refusal(
      new Consumer({ ...as('reader'), topic: 'payments', group: 'g', waitMs: 100 }).poll(),
    );
    expect([other.status, other.code]).toEqual([403, 'forbidden']);
    expect(other.message).toMatch(/consume right on topic payments/);

    const consumer = new Consumer({ ...as('reader'), topic: 'orders.eu', group: 'g', waitMs: 200 });
    const got = await consumer.poll();
    expect(got.map((m) => m.value.toString())).toEqual(['first']);
    await consumer.close();
  });

  it('gives a producer of a prefix nothing outside it, and no consume', async () => {
    const err = await refusal(new Producer(as('writer')).send('payments', 'x'));
    expect(err.message).toBe('user writer lacks the produce right on topic payments');
    const read = await refusal(
      new Consumer({ ...as('writer'), topic: 'orders.eu', group: 'w', waitMs: 100 }).poll(),
    );
    expect(read.status).toBe(403);
  });
});

describe('topic listing', () => {
  it('shows each user only the topics it holds a right on', async () => {
    const listed = async (name: string) => {
      const res = await fetch(`${broker.url}/v1/topics`, {
        headers: { authorization: `Bearer ${tokenOf(name)}` },
      });
      return ((await res.json()) as { topics: string[] }).topics;
    };
    expect(await listed('reader')).toEqual(['orders.eu']);
    expect(await listed('root')).toEqual(expect.arrayContaining(['orders.eu', 'payments']));
  });
});

describe('admin routes', () => {
  it('create topics, reset and delete groups only with the admin right on the topic', async () => {
    const refused = await refusal(new Producer(as('writer')).createTopic('orders.us'));
    expect([refused.status, refused.message]).toEqual([
      403,
      'user writer lacks the admin right on topic orders.us',
    ]);
    expect((await new Producer(as('orders-admin')).createTopic('orders.us')).created).toBe(true);
    expect((await refusal(new Producer(as('orders-admin')).createTopic('billing'))).status).toBe(403);

    expect((await refusal(new Admin(as('reader')).resetGroup('orders.eu', 'g', 'earliest'))).status).toBe(
      403,
    );
    expect(
      (await refusal(new Admin(as('reader')).deleteGroup('orders.eu', 'g', { force: true }))).status,
    ).toBe(403);
    await new Admin(as('orders-admin')).resetGroup('orders.eu', 'g', 'earliest', { force: true });
  });

  it('change topic settings with the admin right on the topic or the operator token', async () => {
    const patch = (token: string, topic: string) =>
      fetch(`${broker.url}/v1/topics/${topic}`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ settings: { retentionMaxAgeHours: 48 } }),
      });
    expect((await patch(tokenOf('reader'), 'orders.eu')).status).toBe(403);
    expect((await patch(tokenOf('orders-admin'), 'orders.eu')).status).toBe(200);
    expect((await patch(ADMIN_TOKEN, 'payments')).status).toBe(200);
  });

  it('serve routing to the operator token and to admins of every topic only', async () => {
    const routing = (token: string) =>
      fetch(`${broker.url}/v1/admin/routing`, { headers: { authorization: `Bearer ${token}` } });
    expect((await routing(ADMIN_TOKEN)).status).toBe(200);
    expect((await routing(tokenOf('root'))).status).toBe(200);
    const refused = await routing(tokenOf('orders-admin'));
    expect(refused.status).toBe(403);
    expect(await refused.json()).toEqual({
      code: 'forbidden',
      message: 'user orders-admin lacks the admin right on every topic ("*")',
    });
  });
});

describe('the users file', () => {
  it('is re-read when it changes: a new user gets in, a removed one is refused', async () => {
    const others = Object.fromEntries(Object.entries(USERS).filter(([name]) => name !== 'reader'));
    await writeUsers({ ...others, late: [{ topic: 'payments', actions: ['produce'] }] });
    const late = new Producer(as('late'));
    for (let i = 0; ; i++) {
      const ok = await late.send('payments', 'hello').then(
        () => true,
        () => false,
      );
      if (ok) break;
      if (i > 40) throw new Error('the new user was not admitted within 4 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    const gone = await refusal(
      new Consumer({ ...as('reader'), topic: 'orders.eu', group: 'g', waitMs: 100 }).poll(),
    );
    expect(gone.status).toBe(401);
  });

  it('keeps the users in force when the new file is invalid', async () => {
    await writeFile(usersFile, '{"users": [{"name": "x"}]}');
    await new Promise((r) => setTimeout(r, 600));
    await new Producer(as('late')).send('payments', 'still in');
  });
});

describe('the broker process', () => {
  it('refuses to start without users, a token or an explicit --no-auth', async () => {
    await ensureBuilt();
    const routingFile = join(usersFile, '..', 'routing.json');
    await writeFile(routingFile, JSON.stringify(cluster.routing()));
    const child = spawn(
      process.execPath,
      [join(REPO, 'dist/broker/main.js'), '--routing', routingFile, '--host', `${PREFIX}.100`],
      {
        env: { ...process.env, MQ_AUTH_TOKEN: '' },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(1);
    expect(stderr).toMatch(/--users FILE .* or --no-auth/);
  });
});
