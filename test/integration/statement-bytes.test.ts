/**
 * Statements sent as bytes (src/shard/statement-bytes.ts) on real mariadbd: what the broker's
 * publishes ride on. The stored bytes, the answer, errors and queued commands must be mysql2's own.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTopic, insertMessages, insertStatement, readMessages } from '../../src/broker/queue-store.js';
import { ReusableBuffers } from '../../src/common/reusable-buffers.js';
import { generateCredentials, shardSecrets } from '../../src/operator/desired/credentials.js';
import { connectionOptions } from '../../src/shard/connection.js';
import { messageTable } from '../../src/shard/schema.js';
import { bootstrapPrimary, setReadOnly } from '../../src/shard/bootstrap.js';
import { queryBytes } from '../../src/shard/statement-bytes.js';
import { LocalMariaDb } from '../../tools/local/mariadbd.js';

const secrets = shardSecrets(generateCredentials());
let dir: string;
let instance: LocalMariaDb;
let pool: mysql.Pool;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mq-statement-bytes-'));
  instance = await LocalMariaDb.start({ dir, host: '127.0.174.1', serverId: 1, admin: secrets.admin });
  await bootstrapPrimary(instance.endpoint, secrets);
  await setReadOnly(instance.endpoint, secrets.admin, false);
  pool = mysql.createPool({ ...connectionOptions(instance.endpoint, secrets.broker), connectionLimit: 2 });
}, 120_000);

afterAll(async () => {
  await pool?.end();
  await instance?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('statements sent as bytes', () => {
  it('store each payload byte for byte and answer with the first id, on a pool and on one connection', async () => {
    const topicId = await createTopic(pool, 'bytes');
    const text = ['plain', 'it\'s \\ \0 "quoted"', 'é ünï 🙂', 'x'.repeat(300_000)];
    const binary = Buffer.from([0, 0x27, 0x5c, 0xff, 0xfe, 0x80]);
    const first = await insertMessages(pool, topicId, [...text, binary], new ReusableBuffers());
    const conn = await pool.getConnection();
    const second = await insertMessages(conn, topicId, ['again']);
    conn.release();
    expect(second).toBe(first + text.length + 1);
    const { messages } = await readMessages(pool, topicId, 0, 100);
    expect(messages.map((m) => m.payload)).toEqual([
      ...text.map((t) => Buffer.from(t)),
      binary,
      Buffer.from('again'),
    ]);
  });

  it('run one after another when sent together on one connection', async () => {
    const topicId = await createTopic(pool, 'queued');
    const conn = await pool.getConnection();
    const table = messageTable(topicId);
    const ids = await Promise.all(
      Array.from({ length: 5 }, (_, i) => queryBytes(conn, insertStatement(table, [`m${i}`, `n${i}`]))),
    );
    conn.release();
    expect(ids.map((r) => r.affectedRows)).toEqual([2, 2, 2, 2, 2]);
    expect(ids.map((r) => r.insertId)).toEqual([1, 3, 5, 7, 9]);
  });

  it("stamp every row of a statement with the shard's time of that statement, on a connection used again", async () => {
    const topicId = await createTopic(pool, 'stamped');
    const conn = await pool.getConnection();
    const [[before]] = (await conn.query('SELECT UNIX_TIMESTAMP(NOW(3))*1000 AS now')) as unknown as [
      { now: string }[],
    ];
    await insertMessages(conn, topicId, ['a', 'b', 'c']);
    await conn.query('DO SLEEP(0.05)');
    await insertMessages(conn, topicId, ['d', 'e']);
    conn.release();
    const { messages } = await readMessages(pool, topicId, 0, 10);
    const stamps = messages.map((m) => m.publishedAt);
    expect(new Set(stamps.slice(0, 3)).size).toBe(1);
    expect(new Set(stamps.slice(3)).size).toBe(1);
    expect(stamps[0]).toBeGreaterThanOrEqual(Number(before.now));
    expect(stamps[3] - stamps[0]).toBeGreaterThanOrEqual(50);
  });

  it('send a statement over 16 MiB as several protocol packets', async () => {
    const topicId = await createTopic(pool, 'large');
    // Two binary literals of about 9 MiB each (random bytes, a few escaped), past one packet's 16 MiB.
    const payloads = [randomBytes(9 << 20), randomBytes(9 << 20)];
    const statement = insertStatement(messageTable(topicId), payloads);
    expect(statement.length).toBeGreaterThan(16 << 20);
    await queryBytes(pool, statement);
    const { messages } = await readMessages(pool, topicId, 0, 2);
    expect(messages.map((m) => m.payload.equals(payloads[m.id - 1]))).toEqual([true, true]);
  });

  it("fail with the server's error, and the connection goes on", async () => {
    const conn = await pool.getConnection();
    const missing = queryBytes(conn, insertStatement('mq.m_999999', ['lost']));
    await expect(missing).rejects.toMatchObject({ errno: 1146, sqlState: '42S02' });
    const [rows] = await conn.query('SELECT 1 AS one');
    conn.release();
    expect(rows).toEqual([{ one: 1 }]);
  });
});
