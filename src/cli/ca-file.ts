import { readFileSync } from 'node:fs';

/** The CA certificate file of `--ca` or MQ_CA, read once; a clear error when it cannot be read. */
export function readCaFile(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new Error(`cannot read the CA file ${file} (--ca, MQ_CA): ${(err as Error).message}`);
  }
}
