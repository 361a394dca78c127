import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalShards } from '../../../local/cluster.js';
import { findPids } from '../procs.js';

/** 127.0.50.x: apart from the tests (127.0.2x), the demo (127.0.30) and `npm run bench` (127.0.40). */
export const COMPARE_PREFIX = '127.0.50';

/**
 * The 2 durable shards (primary + semi-sync standby each) that mysqlmq and the INSERT ceiling both
 * use, started once for the run.
 */
export class SharedShards {
  private started?: Promise<LocalShards>;
  private dir?: string;

  constructor(private readonly shardCount = 2) {}

  /** The run's directory (instances' data, the routing file); known once `get` was called. */
  get directory(): string {
    if (!this.dir) throw new Error('shards not started');
    return this.dir;
  }

  get(): Promise<LocalShards> {
    this.started ??= (async () => {
      this.dir = await mkdtemp(join(tmpdir(), 'mysqlmq-compare-'));
      return LocalShards.start({ dir: this.dir, shards: this.shardCount, addressPrefix: COMPARE_PREFIX });
    })();
    return this.started;
  }

  /** The mariadbd processes of these shards (found by their data directory on the command line). */
  mariadbPids(): number[] {
    const dir = this.dir;
    if (!dir) return [];
    return findPids('mariadbd', (cmd) => cmd.some((a) => a.includes(dir)));
  }

  async stop(): Promise<void> {
    if (!this.started) return;
    const shards = await this.started.catch(() => undefined);
    this.started = undefined;
    await shards?.stop();
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }
}
