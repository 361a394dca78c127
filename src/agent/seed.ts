import { existsSync } from 'node:fs';
import { type IncomingMessage, request } from 'node:http';
import { join } from 'node:path';
import { SEED_INCOMPLETE_FILE, type SeedMarker, readSeedMarker, seedDataDir } from '../shard/clone.js';
import { CLONE_GTID_PATH, CLONE_PATH } from './contract.js';

/**
 * The init step of a MariaDB pod: before mariadbd starts, fill the data directory with a physical
 * copy pulled from the shard's primary when the operator asked for it (a rebuild) or when the
 * volume is empty in a shard that already holds data (a lost or new volume). Otherwise it does
 * nothing, so an ordinary restart keeps its data.
 */

export interface SeedRequest {
  /** `host:port` of the source's agent; empty: this pod is not to be seeded (a new shard). */
  source: string;
  /** A rebuild request id; empty: seed only an empty data directory. */
  id: string;
}

export interface DataDirState {
  /** mariadbd has run on it (it holds the `mysql` schema). */
  initialised: boolean;
  /** The id of the last completed seed, if any. */
  seededId?: string;
  /** A seed started and did not finish: the directory holds a partial copy. */
  incomplete?: boolean;
}

/** Whether to seed, and why. Pure. */
export function planSeed(state: DataDirState, req: SeedRequest): { seed: boolean; reason: string } {
  // Whatever the request, mariadbd must never start on a partial copy.
  if (state.incomplete) return { seed: true, reason: 'an earlier seed did not finish' };
  if (!req.source) return { seed: false, reason: 'no seed source: the data directory is used as it is' };
  if (req.id && state.seededId !== req.id)
    return { seed: true, reason: `rebuild ${req.id} requested: the data directory is replaced` };
  if (!state.initialised) return { seed: true, reason: 'the data directory is empty' };
  return { seed: false, reason: req.id ? `rebuild ${req.id} already done` : 'the data directory holds data' };
}

export async function dataDirState(dataDir: string): Promise<DataDirState> {
  const marker = await readSeedMarker(dataDir);
  return {
    initialised: existsSync(join(dataDir, 'mysql')),
    seededId: marker?.id,
    incomplete: existsSync(join(dataDir, SEED_INCOMPLETE_FILE)),
  };
}

/** A GET to the agent at `source` (`host:port`): the response when 200, else its error message. */
export function agentGet(
  source: string,
  path: string,
  token: string,
  idleTimeoutMs: number,
): Promise<IncomingMessage> {
  const m = /^(.+):(\d+)$/.exec(source);
  if (!m) return Promise.reject(new Error(`seed source "${source}" is not host:port`));
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: m[1],
        port: Number(m[2]),
        path,
        method: 'GET',
        headers: { authorization: `Bearer ${token}` },
        timeout: idleTimeoutMs,
      },
      (res) => {
        if (res.statusCode === 200) return resolve(res);
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => {
          let message = body;
          try {
            message = (JSON.parse(body) as { message?: string }).message ?? body;
          } catch {
            // not JSON: keep the text
          }
          reject(new Error(`agent at ${source} answered ${res.statusCode}: ${message}`));
        });
      },
    );
    req.on('timeout', () =>
      req.destroy(new Error(`agent at ${source} sent nothing for ${idleTimeoutMs} ms`)),
    );
    req.on('error', reject);
    req.end();
  });
}

export interface PullOptions extends SeedRequest {
  token: string;
  dataDir: string;
  workDir: string;
  idleTimeoutMs?: number;
}

/** Pulls a copy from the source's agent into `dataDir` (replacing what is there). */
export async function pullAndSeed(options: PullOptions): Promise<SeedMarker> {
  if (!options.source) throw new Error('the data directory holds a partial copy and no seed source is given');
  const timeout = options.idleTimeoutMs ?? 120_000;
  const stream = await agentGet(options.source, CLONE_PATH, options.token, timeout);
  return seedDataDir(stream, options.dataDir, {
    id: options.id,
    source: options.source,
    workDir: options.workDir,
    gtidAt: async (at) => {
      const query = new URLSearchParams({ file: at.file, position: String(at.position) });
      const res = await agentGet(options.source, `${CLONE_GTID_PATH}?${query}`, options.token, timeout);
      let body = '';
      res.setEncoding('utf8');
      for await (const chunk of res) body += chunk as string;
      return (JSON.parse(body) as { gtid: string }).gtid;
    },
  });
}
