import { describe, expect, it } from 'vitest';
import { backupStamp, backupsToPrune, groupBackups } from '../../../src/backup/catalog.js';
import { checkKey } from '../../../src/backup/target.js';
import { s3CredentialsFromSecret } from '../../../src/backup/target-spec.js';

describe('backup layout and retention', () => {
  it('stamps sort as time does and are valid file and object names', () => {
    expect(backupStamp(new Date('2026-01-05T08:12:03.456Z'))).toBe('20260105T081203Z');
    const a = backupStamp(new Date('2026-01-05T09:00:00Z'));
    const b = backupStamp(new Date('2026-01-10T08:00:00Z'));
    expect([b, a].sort()).toEqual([a, b]);
  });

  it('a backup is finished only once its manifest is there', () => {
    const keys = [
      'c/shard-0/20260101T000000Z/backup.xbstream',
      'c/shard-0/20260101T000000Z/manifest.json',
      'c/shard-0/20260102T000000Z/backup.xbstream',
      'c/shard-0/20260103T000000Z/manifest.json',
      'c/shard-0/20260103T000000Z/backup.xbstream',
      'c/shard-0/stray-file',
    ];
    expect(groupBackups(keys, 'c/shard-0/')).toEqual({
      complete: ['c/shard-0/20260101T000000Z/', 'c/shard-0/20260103T000000Z/'],
      incomplete: ['c/shard-0/20260102T000000Z/'],
    });
  });

  it('keeps the newest `keep` finished backups and drops unfinished ones older than the newest', () => {
    const backups = {
      complete: ['p/1/', 'p/3/', 'p/4/', 'p/5/'],
      incomplete: ['p/2/', 'p/6/'],
    };
    expect(backupsToPrune(backups, 2)).toEqual(['p/1/', 'p/3/', 'p/2/']);
    // One running now (p/6/) is never touched; keep is at least 1.
    expect(backupsToPrune(backups, 0)).toEqual(['p/1/', 'p/3/', 'p/4/', 'p/2/']);
    expect(backupsToPrune({ complete: [], incomplete: ['p/1/'] }, 3)).toEqual([]);
  });

  it('keys stay inside their target', () => {
    expect(checkKey('c/shard-0/')).toBe('c/shard-0/');
    for (const bad of ['', '/etc/passwd', 'c/../x', 'c//x', './x'])
      expect(() => checkKey(bad)).toThrow(/not a backup key/);
  });

  it('S3 credentials come from a Secret with both keys, or a message says which are missing', () => {
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    expect(s3CredentialsFromSecret('s3', { accessKeyId: b64('AK'), secretAccessKey: b64('SK') })).toEqual({
      accessKeyId: 'AK',
      secretAccessKey: 'SK',
    });
    expect(s3CredentialsFromSecret('s3', { accessKeyId: b64('AK') })).toMatch(
      /Secret s3 .* needs the keys accessKeyId and secretAccessKey/,
    );
  });
});
