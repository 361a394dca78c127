import type { Readable } from 'node:stream';

/**
 * Where backups are kept: a directory (the embedded default, a PVC in Kubernetes) or an
 * S3-compatible object store. Keys are `/`-separated paths relative to the target's root (for S3,
 * its prefix); a backup is a key prefix `<cluster>/<shard>/<timestamp>/` holding the stream and a
 * manifest written last.
 */
export interface BackupTarget {
  /** Where it writes, for messages and status: never holds a credential. */
  readonly description: string;
  /** Stores `body` under `key` (streamed, any size); returns the bytes written. */
  put(key: string, body: Readable | string): Promise<number>;
  /** The object at `key`; rejects with `BackupNotFoundError` when there is none. */
  get(key: string): Promise<Readable>;
  /** Every key under `prefix` (which ends in `/`), in no particular order. */
  list(prefix: string): Promise<string[]>;
  /** Deletes every key under `prefix`. */
  removeAll(prefix: string): Promise<void>;
  /** Releases connections (S3); a directory has none. */
  close?(): void;
}

export class BackupNotFoundError extends Error {
  constructor(
    readonly key: string,
    where: string,
  ) {
    super(`no ${key} in ${where}`);
    this.name = 'BackupNotFoundError';
  }
}

/** A key must stay inside its target: no `..`, no absolute path, no empty segment. Pure. */
export function checkKey(key: string): string {
  const parts = key.split('/');
  const last = parts.length - 1;
  if (
    !key ||
    key.startsWith('/') ||
    parts.some((p, i) => p === '..' || p === '.' || (p === '' && i !== last))
  )
    throw new Error(`"${key}" is not a backup key (relative, no "." or ".." segments)`);
  return key;
}
