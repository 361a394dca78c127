import { type ChildProcess, spawn } from 'node:child_process';
import { type Socket, connect } from 'node:net';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BROKER_DEFAULTS, type Broker } from '../../src/broker/broker.js';
import { BROKER_NODE_OPTIONS } from '../../src/api/node-options.js';
import type { LocalShards } from '../../tools/local/cluster.js';
import { withAdmin } from '../../src/shard/connection.js';
import { ADMIN_TOKEN, metric, post, startBroker, startShards } from '../support/dataplane.js';
import { REPO, ensureBuilt, waitFor } from '../support/operator.js';

/**
 * Hostile input against live brokers on one real shard (primary + semi-sync standby): each case is
 * a way one client could take a broker down or corrupt what others stored (issue 14).
 */
const PREFIX = '127.0.141';
let cluster: LocalShards;
/** Production defaults, as its own process (dist/broker/main.js) with the Pod's heap ceiling. */
let real: { url: string; pid: number; child: ChildProcess };
/** Small limits, so each limit is reached quickly. */
let tight: Broker;
/** Values acknowledged on topic "safe", by any broker: all must be consumable at the end. */
const acknowledged: string[] = [];

const TIGHT = {
  maxPublishBytesInFlight: 1 << 20,
  maxTopics: 20,
  maxGroupsPerTopic: 5,
  probeIntervalMs: 60_000,
  http: {
    ...BROKER_DEFAULTS.http,
    headersTimeoutMs: 1000,
    bodyIdleTimeoutMs: 1000,
    maxConnections: 40,
  },
};

beforeAll(async () => {
  cluster = await startShards(PREFIX, 1);
  tight = await startBroker(cluster, TIGHT);
  real = await startBrokerProcess();
  expect((await post(`${tight.url}/v1/topics`, { name: 'safe' })).status).toBeLessThan(300);
  await publish(tight.url, 'safe', ['before-1', 'before-2']);
});

afterAll(async () => {
  real?.child.kill('SIGTERM');
  await tight?.close();
  await cluster?.destroy();
});

async function startBrokerProcess(): Promise<typeof real> {
  await ensureBuilt();
  const routingFile = join(cluster.shards[0].primary.options.dir, '..', 'routing.json');
  await writeFile(routingFile, JSON.stringify(cluster.routing()));
  const host = `${PREFIX}.100`;
  const child = spawn(
    process.execPath,
    [
      ...BROKER_NODE_OPTIONS,
      join(REPO, 'dist/broker/main.js'),
      '--routing',
      routingFile,
      '--host',
      host,
      '--port',
      '8080',
      // What any admitted client can do to a broker; who is admitted: test/integration/broker-auth.test.ts.
      '--no-auth',
    ],
    {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: {
        ...process.env,
        MQ_DB_USER: cluster.secrets.broker.user,
        MQ_DB_PASSWORD: cluster.secrets.broker.password,
        MQ_ADMIN_TOKEN: ADMIN_TOKEN,
        MQ_LOG_LEVEL: process.env.MQ_LOG_LEVEL ?? 'error',
      },
    },
  );
  const url = `http://${host}:8080`;
  await waitFor(
    'broker process ready',
    async () => {
      if (child.exitCode !== null) throw new Error(`broker exited with ${child.exitCode}`);
      return (await fetch(`${url}/readyz`).catch(() => undefined))?.ok;
    },
    30_000,
  );
  return { url, pid: child.pid!, child };
}

async function publish(url: string, topic: string, values: string[]): Promise<void> {
  const res = await post(`${url}/v1/topics/${topic}/messages`, {
    messages: values.map((value) => ({ value })),
  });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  if (topic === 'safe') acknowledged.push(...values);
}

/** Every message of the topic a new group sees, read until two empty answers in a row. */
async function consumeAll(url: string, topic: string, group: string, consumer = 'c'): Promise<string[]> {
  const got: string[] = [];
  let positions: Record<string, number> = {};
  for (let empty = 0; empty < 2;) {
    const res = await post(`${url}/v1/topics/${topic}/groups/${group}/fetch`, {
      consumer,
      positions,
      waitMs: 100,
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const messages = res.body.messages as { value: string }[];
    got.push(...messages.map((m) => m.value));
    positions = res.body.positions;
    empty = messages.length === 0 ? empty + 1 : 0;
  }
  return got;
}

/** A raw TCP connection to the broker, for requests no HTTP client would send. */
function rawSocket(url: string): Promise<Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Resolves with what the server sent once it closed the connection. */
function closed(socket: Socket): Promise<string> {
  let text = '';
  socket.on('data', (d: Buffer) => (text += d.toString()));
  socket.on('error', () => undefined);
  return new Promise((resolve) => socket.once('close', () => resolve(text)));
}

async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}

describe('request bodies', () => {
  it('refuses a fetch body of megabytes before parsing it (1.3 million positions took the heap)', async () => {
    const positions: Record<string, number> = {};
    for (let i = 0; i < 1_300_000; i++) positions[i.toString(36)] = 0;
    const body = JSON.stringify({ consumer: 'c', positions });
    const res = await fetch(`${real.url}/v1/topics/safe/groups/g/fetch`, { method: 'POST', body });
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ code: 'request_too_large' });
    expect((await fetch(`${real.url}/healthz`)).status).toBe(200);
    expect(await rssMiB(real.pid!)).toBeLessThan(400);
  });

  it('refuses a chunked publish past the chunked allowance with 411, takes a small one', async () => {
    const chunked = (text: string) =>
      fetch(`${tight.url}/v1/topics/safe/messages`, {
        method: 'POST',
        body: new Blob([text]).stream(),
        duplex: 'half',
      } as RequestInit);
    const big = JSON.stringify({
      messages: Array.from({ length: 5000 }, () => ({ value: 'x'.repeat(1000) })),
    });
    const refused = await chunked(big);
    expect(refused.status).toBe(411);
    expect(await refused.json()).toMatchObject({ code: 'length_required' });
    const small = await chunked(JSON.stringify({ messages: [{ value: 'chunked' }] }));
    expect(small.status).toBe(200);
    acknowledged.push('chunked');
    expect(await metric(tight.url, /^mq_broker_limit_rejections_total\{limit="length_required"\}/)).toBe(1);
  });

  it('answers malformed and truncated JSON with 400 and keeps serving', async () => {
    for (const body of [
      '{"messages": [{"value": "a"}',
      '{"messages": [{"value": "\\ud800',
      '\u0000\u0001',
      'null',
    ]) {
      const res = await post(`${real.url}/v1/topics/safe/messages`, body);
      expect(res.status).toBe(400);
      expect(typeof res.body.code).toBe('string');
    }
  });
});

describe('slow and idle clients', () => {
  it('cuts off a publish that trickles its body (408) so it cannot hold the publish budget', async () => {
    const socket = await rawSocket(tight.url);
    const answer = closed(socket);
    socket.write(
      'POST /v1/topics/safe/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
        `Content-Length: ${1 << 20}\r\n\r\n{"messages":[`,
    );
    const trickle = setInterval(() => socket.write(' '), 1500);
    try {
      // The trickling request holds the whole budget; this one waits until it is cut off.
      await new Promise((r) => setTimeout(r, 200));
      const started = Date.now();
      await publish(tight.url, 'safe', ['after-trickle']);
      expect(Date.now() - started).toBeLessThan(30_000);
      expect(await answer).toContain('408');
    } finally {
      clearInterval(trickle);
      socket.destroy();
    }
  });

  it('closes connections that send nothing and refuses those past the cap', async () => {
    const sockets = await Promise.all(Array.from({ length: 80 }, () => rawSocket(tight.url)));
    const closes = sockets.map(closed);
    const all = Promise.all(closes).then(() => 'closed');
    const later = new Promise((r) => setTimeout(() => r('still open'), 15_000));
    expect(await Promise.race([all, later])).toBe('closed');
    await publish(tight.url, 'safe', ['after-idle']);
    expect(
      await metric(tight.url, /^mq_broker_limit_rejections_total\{limit="connections"\}/),
    ).toBeGreaterThan(0);
  });

  it('a consumer that stops reading holds its own answer only: other answers shrink until it goes', async () => {
    const broker = await startBroker(cluster, {
      fetcher: { ...BROKER_DEFAULTS.fetcher, answerBytesInFlight: 12 << 20 },
    });
    const stalled = await rawSocket(broker.url);
    try {
      expect((await post(`${broker.url}/v1/topics`, { name: 'held' })).status).toBe(201);
      const value = 'x'.repeat(200_000);
      for (let i = 0; i < 5; i++) await publish(broker.url, 'held', Array(20).fill(value));
      const fetchFromStart = async (group: string) => {
        const res = await post(`${broker.url}/v1/topics/held/groups/${group}/fetch`, {
          consumer: 'c',
          maxMessages: 1000,
          maxBytes: 64 << 20,
          waitMs: 0,
        });
        expect(res.status).toBe(200);
        return (res.body as { messages: unknown[] }).messages.length;
      };
      // An answer of the whole budget that the client stops reading after its first bytes: far
      // more than the sockets buffer. Nothing else is answered before it has begun, so it is whole.
      const body = JSON.stringify({ consumer: 'c', maxMessages: 1000, maxBytes: 64 << 20, waitMs: 0 });
      const answering = new Promise((resolve) => stalled.once('data', resolve));
      stalled.write(
        'POST /v1/topics/held/groups/stalled/fetch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
          `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
      await answering;
      stalled.pause();
      // While it is held, another group's answers carry one message each (and keep coming).
      await waitFor('answers shrunk to one message', async () => (await fetchFromStart('other')) === 1);
      stalled.destroy();
      // Up to the budget: 62 messages of 200 KB fit in 12 MiB.
      await waitFor('full answers again', async () => (await fetchFromStart('other')) === 62);
    } finally {
      stalled.destroy();
      await broker.close();
    }
  });
});

describe('long-poll fetches and writes', () => {
  it('publishes keep committing while 400 fetches long-poll far past the end', async () => {
    const topics = ['poll-0', 'poll-1', 'poll-2', 'poll-3'];
    for (const name of topics) await post(`${real.url}/v1/topics`, { name });
    const waiting = Array.from({ length: 400 }, (_, i) =>
      post(`${real.url}/v1/topics/${topics[i % 4]}/groups/g-${i}/fetch`, {
        consumer: 'c',
        positions: { 'shard-0': 1e12 },
        waitMs: 6000,
      }),
    );
    await new Promise((r) => setTimeout(r, 500));
    for (let i = 0; i < 10; i++) await publish(real.url, 'safe', [`during-poll-${i}`]);
    for (const res of await Promise.all(waiting)) expect(res.status).toBe(200);
  });
});

describe('names and SQL', () => {
  it('refuses topic and group names with SQL metacharacters or Unicode; consumer ids are data', async () => {
    for (const name of ["a'b", 'a;drop', 'a b', 'tópico', 'a\\b', 'a`b', '🙂']) {
      const created = await post(`${real.url}/v1/topics`, { name });
      expect(created.status).toBe(400);
      expect(created.body.code).toBe('invalid_topic');
      const fetched = await post(`${real.url}/v1/topics/safe/groups/${encodeURIComponent(name)}/fetch`, {
        consumer: 'c',
      });
      expect(fetched.status).toBe(400);
    }
    const consumer = "x'); DROP TABLE mq.topics; -- \\ ü 🙂";
    const got = await consumeAll(real.url, 'safe', 'odd-consumer', consumer);
    expect(got.length).toBeGreaterThan(0);
    expect((await fetch(`${real.url}/v1/topics`)).status).toBe(200);
  });

  it('stores payloads with quotes and backslashes intact even when the server has NO_BACKSLASH_ESCAPES', async () => {
    const primary = cluster.shards[0].primary;
    await primary.asRoot((c) =>
      c.query(`SET GLOBAL sql_mode = CONCAT(@@global.sql_mode, ',NO_BACKSLASH_ESCAPES')`),
    );
    const broker = await startBroker(cluster);
    try {
      await post(`${broker.url}/v1/topics`, { name: 'escapes' });
      // Under NO_BACKSLASH_ESCAPES a backslash-escaped quote ends the literal: the rest would add a
      // row of its own and comment out the batch's other messages, which were still acknowledged.
      const values = ["'),(1,0x6576696c)#", 'second', "it's a \\ backslash", "\\'); --"];
      await publish(broker.url, 'escapes', values);
      expect((await consumeAll(broker.url, 'escapes', 'g')).sort()).toEqual([...values].sort());
    } finally {
      await broker.close();
      await primary.asRoot((c) =>
        c.query(`SET GLOBAL sql_mode = REPLACE(@@global.sql_mode, ',NO_BACKSLASH_ESCAPES', '')`),
      );
    }
  });

  it('a statement one shard rejects answers that publish with an error and leaves the shard writable', async () => {
    await post(`${tight.url}/v1/topics`, { name: 'doomed' });
    await publish(tight.url, 'doomed', ['x']);
    await withAdmin(cluster.shards[0].primary.endpoint, cluster.secrets.admin, async (c) => {
      const [rows] = await c.query(`SELECT id FROM mq.topics WHERE name = 'doomed'`);
      await c.query(`DROP TABLE mq.m_${(rows as { id: number }[])[0].id}`);
    });
    const failed = await post(`${tight.url}/v1/topics/doomed/messages`, { messages: [{ value: 'y' }] });
    expect(failed.status).toBe(500);
    expect(failed.body.code).toBe('write_rejected');
    const status = (await (await fetch(`${tight.url}/v1/status`)).json()) as {
      shards: { writable: boolean }[];
    };
    expect(status.shards[0].writable).toBe(true);
    await publish(tight.url, 'safe', ['after-bad-statement']);
  });
});

describe('least privilege', () => {
  it('the broker user cannot delete messages, only the bookkeeping rows it clears', async () => {
    const endpoint = cluster.shards[0].primary.endpoint;
    const [topic] = await withAdmin(endpoint, cluster.secrets.admin, (c) =>
      c.query(`SELECT id FROM mq.topics WHERE name = 'safe'`),
    );
    const id = (topic as { id: number }[])[0].id;
    await withAdmin(endpoint, cluster.secrets.broker, async (c) => {
      await expect(c.query(`DELETE FROM mq.m_${id} WHERE id = 0`)).rejects.toMatchObject({ errno: 1142 });
      await expect(c.query(`DROP TABLE mq.m_${id}`)).rejects.toMatchObject({ errno: 1142 });
      await c.query('DELETE FROM mq.deliveries WHERE message_id = 0');
    });
  });
});

describe('consumer groups', () => {
  it('a topic takes new groups up to the limit (409 past it); stored groups keep working', async () => {
    await post(`${tight.url}/v1/topics`, { name: 'groups' });
    const fetchAs = (group: string) =>
      post(`${tight.url}/v1/topics/groups/groups/${group}/fetch`, { consumer: 'c', waitMs: 0 });
    const codes: number[] = [];
    for (let i = 0; i < 8; i++) codes.push((await fetchAs(`random-${i}`)).status);
    expect(codes).toEqual([200, 200, 200, 200, 200, 409, 409, 409]);
    const refused = await fetchAs('random-7');
    expect(refused.body.code).toBe('group_limit');
    // A broker that never saw them counts the groups stored on the shards.
    const fresh = await startBroker(cluster, { maxGroupsPerTopic: 5 });
    try {
      const at = (group: string) =>
        post(`${fresh.url}/v1/topics/groups/groups/${group}/fetch`, { consumer: 'c', waitMs: 0 });
      expect((await at('random-0')).status).toBe(200);
      expect((await at('random-9')).status).toBe(409);
    } finally {
      await fresh.close();
    }
    expect(await metric(tight.url, /^mq_broker_limit_rejections_total\{limit="groups"\}/)).toBe(4);
  });
});

describe('topics', () => {
  it('10,000 topic creations: past the limit each gets 409, the broker stays up', async () => {
    const codes = new Map<number, number>();
    for (let batch = 0; batch < 500; batch++) {
      // Below the tight broker's connection cap.
      const answers = await Promise.all(
        Array.from({ length: 20 }, (_, i) => post(`${tight.url}/v1/topics`, { name: `t-${batch}-${i}` })),
      );
      for (const a of answers) codes.set(a.status, (codes.get(a.status) ?? 0) + 1);
    }
    const topics = ((await (await fetch(`${tight.url}/v1/topics`)).json()) as { topics: string[] }).topics;
    expect(topics.length).toBeLessThanOrEqual(TIGHT.maxTopics);
    expect(codes.get(409)).toBeGreaterThan(9900);
    expect(await metric(tight.url, /^mq_broker_limit_rejections_total\{limit="topics"\}/)).toBeGreaterThan(
      9900,
    );
  });
});

describe('after all that', () => {
  it('both brokers are up with bounded memory and every acknowledged message is consumable', async () => {
    expect((await fetch(`${real.url}/healthz`)).status).toBe(200);
    expect(await rssMiB(real.pid!)).toBeLessThan(400);
    const got = await consumeAll(tight.url, 'safe', 'final');
    expect(got.sort()).toEqual([...acknowledged].sort());
  });
});
