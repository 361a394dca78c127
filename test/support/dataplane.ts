import { execFile } from 'node:child_process';
import { mkdtemp, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mysql from 'mysql2/promise';
import { BROKER_DEFAULTS, Broker, type BrokerConfig } from '../../src/broker/broker.js';
import { type TopicRight, tokenSha256 } from '../../src/api/users.js';
import { MqClientError } from '../../src/client/index.js';
import { createLogger } from '../../src/common/logger.js';
import { LocalShards } from '../../tools/local/cluster.js';

export const ADMIN_TOKEN = 'test-admin-token';

export async function startShards(addressPrefix: string, shards = 2): Promise<LocalShards> {
  const dir = await mkdtemp(join(tmpdir(), 'mq-test-'));
  return LocalShards.start({ dir, shards, addressPrefix });
}

/** A broker in this process; routing and credentials come from `cluster` unless given. */
export function startBroker(
  cluster: LocalShards | undefined,
  overrides: Partial<BrokerConfig> = {},
): Promise<Broker> {
  return Broker.start(
    {
      ...BROKER_DEFAULTS,
      port: 0,
      adminToken: ADMIN_TOKEN,
      ...overrides,
      db: overrides.db ?? cluster!.secrets.broker,
      routing: overrides.routing ?? cluster!.routing(),
    },
    createLogger('broker', process.env.MQ_LOG_LEVEL ?? 'error'),
  );
}

/** A POST of `body` (an object as JSON; text and bytes as they are) and its JSON answer. */
export async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/**
 * The value of the first sample on a metrics page whose line starts with `series` (name and
 * labels, as the page writes them) or matches it; 0 when there is none.
 */
export function sampleIn(page: string, series: string | RegExp): number {
  const found = page
    .split('\n')
    .find((l) => (typeof series === 'string' ? l.startsWith(`${series} `) : series.test(l)));
  return found ? Number(found.split(' ').pop()) : 0;
}

/** `sampleIn` of the broker's /metrics page now. */
export async function metric(brokerUrl: string, series: string | RegExp): Promise<number> {
  return sampleIn(await (await fetch(`${brokerUrl}/metrics`)).text(), series);
}

/** Committed offset per shard of a group, as the broker's offsets route reports it. */
export async function committedOffsets(
  brokerUrl: string,
  topic: string,
  group: string,
): Promise<Record<string, number>> {
  const res = await fetch(`${brokerUrl}/v1/topics/${topic}/groups/${group}/offsets`);
  const body = (await res.json()) as { shards: { shard: string; committed: number }[] };
  return Object.fromEntries(body.shards.map((s) => [s.shard, s.committed]));
}

/**
 * A transaction on the shard's primary that holds ids of the topic's table without committing:
 * an id gap readers must not step over. `ids` are `shard-N/id`.
 */
export async function holdIds(cluster: LocalShards, shard: number, topic: string, rows: number) {
  const conn = await mysql.createConnection({
    ...cluster.shards[shard].primary.endpoint,
    ...cluster.secrets.broker,
    database: 'mq',
  });
  const [found] = await conn.query('SELECT id FROM mq.topics WHERE name = ?', [topic]);
  const table = `mq.m_${(found as { id: number }[])[0].id}`;
  await conn.beginTransaction();
  const values = Array.from({ length: rows }, (_, i) => [Date.now(), Buffer.from(`held-${i}`)]);
  const [result] = await conn.query(`INSERT INTO ${table} (published_at, payload) VALUES ?`, [values]);
  const firstId = (result as mysql.ResultSetHeader).insertId;
  return {
    ids: Array.from({ length: rows }, (_, i) => `${cluster.shards[shard].name}/${firstId + i}`),
    commit: async () => {
      await conn.commit();
      await conn.end();
    },
    rollback: async () => {
      await conn.rollback();
      await conn.end();
    },
  };
}

/** The SDK's error from a call expected to be refused; anything else (or success) fails the test. */
export async function refusal(call: Promise<unknown>): Promise<MqClientError> {
  try {
    await call;
  } catch (err) {
    if (err instanceof MqClientError) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

/** A brokers' users file (`--users`) as JSON text: each user with the digest of `tokenOf(name)`. */
export function usersFileText(
  users: Record<string, TopicRight[]>,
  tokenOf: (name: string) => string,
): string {
  return JSON.stringify({
    users: Object.entries(users).map(([name, rights]) => ({
      name,
      tokenSha256: tokenSha256(tokenOf(name)),
      rights,
    })),
  });
}

/** Replaces a file in one step, as the kubelet swaps a mounted ConfigMap's or Secret's files. */
export async function replaceFile(file: string, text: string): Promise<void> {
  await writeFile(`${file}.new`, text);
  await rename(`${file}.new`, file);
}

/** The built `mqctl`. */
const MQCTL = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

/** `mqctl ARGS` (built: dist/cli) with `env` added to this process's; its exit code and output. */
export function runMqctl(args: string[], env: Record<string, string> = {}) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [MQCTL, ...args], { env: { ...process.env, ...env } }, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
  });
}
