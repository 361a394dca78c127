import { spawn } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { sleep } from '../../../../src/common/deadline.js';
import { waitFor } from '../../../local/wait.js';
import { freePort } from '../procs.js';
import { type OwnServer, stopOwnServer } from './own-server.js';
import { type BenchSystem, type Delivered, type Session, SkipSystem } from '../system.js';

export interface RedisOptions {
  host: string;
  /** Connections sending XADD at full load (pipelined); the paced phase uses one. */
  publishers: number;
  /** Entries per XREADGROUP. */
  readCount: number;
}

export const REDIS_DEFAULTS: RedisOptions = { host: '127.0.0.1', publishers: 2, readCount: 1000 };

type StreamReply = [key: string, entries: [id: string, fields: string[]][]][] | null;

/**
 * Redis Streams on a redis-server of the benchmark's own (never the machine's 6379), with
 * `appendonly yes` and `appendfsync always`.
 */
export class RedisSystem implements BenchSystem {
  readonly name = 'redis';
  readonly title = 'Redis Streams';
  readonly durability =
    'appendonly yes, appendfsync always: the AOF is written and fsynced before replies leave ' +
    '(one fsync per event-loop turn, a group commit); one server, no replica';
  readonly setup: string;
  private own?: OwnServer & { port: number };
  private admin?: Redis;
  private serverVersion = 'unknown';
  private sessions = 0;

  constructor(private readonly options: RedisOptions = REDIS_DEFAULTS) {
    this.setup =
      `own redis-server on a free loopback port, temp dir; ${options.publishers} connections sending XADD ` +
      `(auto-pipelined, one reply per message); one consumer group per group, each reading with ` +
      `XREADGROUP COUNT ${options.readCount} BLOCK on a connection of its own and XACKing each batch`;
  }

  async start(log: (line: string) => void): Promise<void> {
    try {
      const dir = await mkdtemp(join(tmpdir(), 'mysqlmq-compare-redis-'));
      const port = await freePort(this.options.host);
      const child = spawn(
        'redis-server',
        [
          '--bind',
          this.options.host,
          '--port',
          String(port),
          '--dir',
          dir,
          '--appendonly',
          'yes',
          '--appendfsync',
          'always',
          '--save',
          '',
          '--daemonize',
          'no',
          '--logfile',
          join(dir, 'redis.log'),
        ],
        { stdio: 'ignore' },
      );
      this.own = { child, dir, port };
      const failed = new Promise<never>((_, reject) => child.once('error', reject));
      this.admin = await Promise.race([
        failed,
        waitFor(
          'redis-server',
          async () => {
            const r = new Redis({
              host: this.options.host,
              port,
              lazyConnect: true,
              maxRetriesPerRequest: 0,
            });
            r.on('error', () => undefined);
            try {
              await r.connect();
              await r.ping();
              return r;
            } catch (err) {
              r.disconnect();
              throw err;
            }
          },
          20_000,
          200,
        ),
      ]);
      const info = String(await this.admin.info('server'));
      this.serverVersion = /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown';
      log(`own redis-server ${this.serverVersion} on ${this.options.host}:${port} (appendfsync always)`);
    } catch (err) {
      await this.stop();
      throw new SkipSystem(`redis-server could not be started: ${(err as Error).message}`);
    }
  }

  version(): string {
    return `Redis ${this.serverVersion}`;
  }

  serverPids(): number[] {
    return this.own?.child.pid ? [this.own.child.pid] : [];
  }

  private client(): Redis {
    const r = new Redis({
      host: this.options.host,
      port: this.own!.port,
      enableAutoPipelining: true,
      // RESP2: XREADGROUP answers [[key, [[id, [field, value]], ...]]].
      protocol: 2,
    });
    r.on('error', () => undefined);
    return r;
  }

  async session(sizeBytes: number, label: string, groups: number): Promise<Session> {
    const key = `mqcompare:${sizeBytes}:${label}:${++this.sessions}`;
    const admin = this.admin!;
    for (let g = 0; g < groups; g++) await admin.xgroup('CREATE', key, `g${g}`, '0', 'MKSTREAM');
    const publishers = Array.from({ length: label === 'paced' ? 1 : this.options.publishers }, () =>
      this.client(),
    );
    let next = 0;
    let stopped = false;
    let readers: { conn: Redis; loop: Promise<void> }[] = [];
    const readCount = this.options.readCount;
    return {
      publish: async (value: string) => {
        await publishers[next++ % publishers.length].xadd(key, '*', 'v', value);
      },
      startConsumers: async (count: number, deliver: (group: number, values: Delivered) => void) => {
        stopped = false;
        readers = Array.from({ length: count }, (_, g) => {
          const conn = this.client();
          const loop = (async () => {
            while (!stopped) {
              try {
                const reply = (await conn.call(
                  'XREADGROUP',
                  'GROUP',
                  `g${g}`,
                  'c',
                  'COUNT',
                  readCount,
                  'BLOCK',
                  100,
                  'STREAMS',
                  key,
                  '>',
                )) as StreamReply;
                const entries = reply?.[0]?.[1] ?? [];
                if (entries.length === 0) continue;
                deliver(
                  g,
                  entries.map(([, fields]) => fields[1]),
                );
                await conn.xack(key, `g${g}`, ...entries.map(([id]) => id));
              } catch (err) {
                if (stopped) break;
                console.error(`redis consumer g${g}: ${(err as Error).message}`);
                await sleep(100);
              }
            }
          })();
          return { conn, loop };
        });
      },
      stopConsumers: async () => {
        stopped = true;
        await Promise.all(readers.map((r) => r.loop));
        for (const r of readers) r.conn.disconnect();
        readers = [];
      },
      close: async () => {
        stopped = true;
        await Promise.all(readers.map((r) => r.loop));
        for (const p of publishers) p.disconnect();
        await admin.del(key);
      },
    };
  }

  async stop(): Promise<void> {
    this.admin?.disconnect();
    this.admin = undefined;
    const own = this.own;
    this.own = undefined;
    if (own) await stopOwnServer(own);
  }
}
