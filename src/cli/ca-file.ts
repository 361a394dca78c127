import { readFileSync } from 'node:fs';

/** The CA certificate file of `--ca` or MQ_CA, read once; a clear error when it cannot be read. */
export function readCaFile(file: string): Buffer {
  return readPemFile(file, 'CA file', '--ca, MQ_CA');
}

/** A PEM file a flag names (`what` and `where` say which), read once; a clear error when unreadable. */
export function readPemFile(file: string, what: string, where: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new Error(`cannot read the ${what} ${file} (${where}): ${(err as Error).message}`);
  }
}
