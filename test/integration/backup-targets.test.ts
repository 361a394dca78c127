import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DirectoryTarget } from '../../src/backup/directory.js';
import { S3Target } from '../../src/backup/s3.js';
import { BackupNotFoundError, type BackupTarget } from '../../src/backup/target.js';
import { startS3 } from '../support/s3.js';

/**
 * The two backup targets behind one interface, the S3 one against a real S3-compatible server:
 * streams larger than a multipart part round-trip byte for byte, listing and removal by prefix,
 * and the errors a user sees.
 */
let dir: string;
let s3: Awaited<ReturnType<typeof startS3>>;
const targets: Record<string, BackupTarget> = {};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mq-backup-targets-'));
  s3 = await startS3('backups');
  targets.directory = new DirectoryTarget(join(dir, 'backups'));
  targets.s3 = new S3Target({
    bucket: 'backups',
    prefix: 'team-a',
    endpoint: s3.endpoint,
    forcePathStyle: true,
    credentials: s3.credentials,
  });
});

afterAll(async () => {
  (targets.s3 as S3Target | undefined)?.close();
  await s3?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
async function read(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe.each(['directory', 's3'])('%s target', (name) => {
  it('round-trips a stream of several parts byte for byte', async () => {
    const t = targets[name]!;
    const data = randomBytes(20 * 1024 * 1024 + 123);
    // In 1 MiB chunks of unknown total length, as a backup stream arrives.
    const chunks = Array.from({ length: Math.ceil(data.length / 2 ** 20) }, (_, i) =>
      data.subarray(i * 2 ** 20, (i + 1) * 2 ** 20),
    );
    const bytes = await t.put('c1/shard-0/20260101T000000Z/backup.xbstream', Readable.from(chunks));
    expect(bytes).toBe(data.length);
    await t.put('c1/shard-0/20260101T000000Z/manifest.json', '{"ok":true}');
    const back = await read(await t.get('c1/shard-0/20260101T000000Z/backup.xbstream'));
    expect(sha(back)).toBe(sha(data));
    expect((await read(await t.get('c1/shard-0/20260101T000000Z/manifest.json'))).toString()).toBe(
      '{"ok":true}',
    );
  });

  it('lists and removes by prefix, leaving other prefixes alone', async () => {
    const t = targets[name]!;
    await t.put('c2/shard-0/a/manifest.json', '1');
    await t.put('c2/shard-0/b/manifest.json', '2');
    await t.put('c2/shard-1/a/manifest.json', '3');
    expect((await t.list('c2/shard-0/')).sort()).toEqual([
      'c2/shard-0/a/manifest.json',
      'c2/shard-0/b/manifest.json',
    ]);
    await t.removeAll('c2/shard-0/a/');
    expect(await t.list('c2/shard-0/')).toEqual(['c2/shard-0/b/manifest.json']);
    expect(await t.list('c2/shard-1/')).toEqual(['c2/shard-1/a/manifest.json']);
    expect(await t.list('nothing-here/')).toEqual([]);
  });

  it('says which key is missing, and refuses keys that leave the target', async () => {
    const t = targets[name]!;
    await expect(t.get('c3/none/manifest.json')).rejects.toBeInstanceOf(BackupNotFoundError);
    await expect(t.put('../escape', 'x')).rejects.toThrow(/not a backup key/);
    await expect(t.put('/abs', 'x')).rejects.toThrow(/not a backup key/);
  });
});

describe('an S3 target that cannot be reached or used', () => {
  it('fails with the reason instead of hanging', async () => {
    const dead = new S3Target({
      bucket: 'backups',
      endpoint: 'http://127.0.0.1:1',
      forcePathStyle: true,
      credentials: s3.credentials,
    });
    await expect(dead.put('x/manifest.json', '1')).rejects.toThrow(/ECONNREFUSED|connect/);
    dead.close();
  });

  it('reports a bucket that does not exist', async () => {
    const wrong = new S3Target({
      bucket: 'no-such-bucket',
      endpoint: s3.endpoint,
      forcePathStyle: true,
      credentials: s3.credentials,
    });
    await expect(wrong.put('x/manifest.json', '1')).rejects.toThrow(/bucket/i);
    wrong.close();
  });
});
