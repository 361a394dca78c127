import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BackupNotFoundError, type BackupTarget, checkKey } from './target.js';

/**
 * Backups in a directory of the operator's file system (a PVC mounted into the operator pod, or a
 * local directory on the embedded cluster). An object is written to `<key>.partial` and renamed when
 * complete, so a reader never sees half of one under its real name.
 */
export class DirectoryTarget implements BackupTarget {
  readonly description: string;

  constructor(private readonly root: string) {
    this.description = `directory ${root}`;
  }

  async put(key: string, body: Readable | string): Promise<number> {
    const file = join(this.root, checkKey(key));
    await mkdir(dirname(file), { recursive: true });
    const partial = `${file}.partial`;
    let bytes = 0;
    const source = typeof body === 'string' ? Readable.from([Buffer.from(body)]) : body;
    source.on('data', (c: Buffer) => (bytes += c.length));
    try {
      await pipeline(source, createWriteStream(partial));
    } catch (err) {
      await rm(partial, { force: true });
      throw err;
    }
    await rename(partial, file);
    return bytes;
  }

  async get(key: string): Promise<Readable> {
    const file = join(this.root, checkKey(key));
    const stream = createReadStream(file);
    // Surface a missing file as a rejection here rather than as a stream error later.
    await new Promise<void>((resolve, reject) => {
      stream.once('open', () => resolve());
      stream.once('error', (err: NodeJS.ErrnoException) =>
        reject(err.code === 'ENOENT' ? new BackupNotFoundError(key, this.description) : err),
      );
    });
    return stream;
  }

  async list(prefix: string): Promise<string[]> {
    const dir = join(this.root, checkKey(prefix));
    const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(
      (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return [];
        throw err;
      },
    );
    return entries
      .filter((e) => e.isFile() && !e.name.endsWith('.partial'))
      .map((e) => relative(this.root, join(e.parentPath, e.name)).split(sep).join('/'));
  }

  async removeAll(prefix: string): Promise<void> {
    await rm(join(this.root, checkKey(prefix)), { recursive: true, force: true });
  }
}
