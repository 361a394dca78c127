import { spawn } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AckPolicy,
  DeliverPolicy,
  type JsMsg,
  type NatsConnection,
  RetentionPolicy,
  StorageType,
  connect,
} from 'nats';
import { waitFor } from '../../../local/wait.js';
import { findPids, freePort, portOpen } from '../procs.js';
import { type OwnServer, stopOwnServer } from './own-server.js';
import { type BenchSystem, type Delivered, type Session, SkipSystem } from '../system.js';

export interface NatsOptions {
  host: string;
  port: number;
  /** Connections publishing at full load; the paced phase uses one. */
  publishers: number;
  /** Messages a pull consumer keeps buffered. */
  pullBatch: number;
  /** A consumer acknowledges (AckAll) every this many messages, and when idle. */
  ackEvery: number;
  /**
   * Publishes outstanding at full load. 256-byte messages, 6 s each, quiet machine, 2026-12-06:
   * 50: 17,099/s; 100: 16,950/s; 250: 19,464 and 18,961/s; 500: 18,700/s; 1000: 16,997/s; 4000:
   * 17,273/s; 16000: 15,910/s. The client (nats.js, this process) spends the most CPU per message,
   * so fewer promises outstanding leave it more; 250 gives the best rate.
   */
  window: number;
}

export const NATS_DEFAULTS: NatsOptions = {
  host: '127.0.0.1',
  port: 4222,
  publishers: 4,
  pullBatch: 2000,
  ackEvery: 200,
  window: 250,
};

/** NATS JetStream: a file-storage stream, acknowledged publishes, one durable pull consumer per group. */
export class NatsSystem implements BenchSystem {
  readonly name = 'nats';
  readonly title = 'NATS JetStream';
  readonly durability =
    'publish acknowledged once the message is in the file store, NOT fsynced: the file store syncs ' +
    'every 2 minutes by default (sync_interval), so an OS crash or power loss can lose acknowledged ' +
    'messages; one server, no replica (R1)';
  readonly setup: string;
  private nc?: NatsConnection;
  private own?: OwnServer;
  private port: number;
  private serverVersion = 'unknown';
  private sessions = 0;

  constructor(private readonly options: NatsOptions = NATS_DEFAULTS) {
    this.port = options.port;
    this.setup =
      `file storage stream, R1, limits retention; ${options.publishers} connections publishing with ` +
      `js.publish (acknowledged, at most ${options.window} outstanding); one durable pull consumer per group (consume(), ` +
      `${options.pullBatch} messages buffered), AckAll every ${options.ackEvery} messages`;
  }

  private get servers(): string {
    return `${this.options.host}:${this.port}`;
  }

  async start(log: (line: string) => void): Promise<void> {
    const machine = await this.tryConnect();
    if (machine) {
      this.nc = machine;
    } else {
      log(`no NATS with JetStream on ${this.servers}; starting nats-server -js on a free loopback port`);
      try {
        const dir = await mkdtemp(join(tmpdir(), 'mysqlmq-compare-nats-'));
        this.port = await freePort(this.options.host);
        const child = spawn(
          'nats-server',
          ['-a', this.options.host, '-p', String(this.port), '-js', '-sd', dir],
          {
            stdio: 'ignore',
          },
        );
        this.own = { child, dir };
        const failed = new Promise<never>((_, reject) => child.once('error', reject));
        this.nc = await Promise.race([failed, waitFor('nats-server', () => this.tryConnect(), 20_000, 200)]);
      } catch (err) {
        await this.stop();
        throw new SkipSystem(`nats-server could not be started: ${(err as Error).message}`);
      }
    }
    this.serverVersion = this.nc.info?.version ?? 'unknown';
  }

  /** A connection to a server with JetStream, or undefined. */
  private async tryConnect(): Promise<NatsConnection | undefined> {
    if (!(await portOpen(this.options.host, this.port))) return undefined;
    const nc = await connect({ servers: this.servers, timeout: 2000 });
    try {
      await (await nc.jetstreamManager()).getAccountInfo();
      return nc;
    } catch {
      await nc.close();
      return undefined;
    }
  }

  version(): string {
    return `nats-server ${this.serverVersion}`;
  }

  serverPids(): number[] {
    if (this.own?.child.pid) return [this.own.child.pid];
    const all = findPids('nats-server');
    const onPort = findPids('nats-server', (cmd) => cmd.includes(String(this.port)));
    return onPort.length ? onPort : all.slice(0, 1);
  }

  async session(sizeBytes: number, label: string, groups: number): Promise<Session> {
    const nc = this.nc!;
    const stream = `MQCOMPARE_${sizeBytes}_${label}_${process.pid}_${++this.sessions}`;
    const subject = `mqcompare.${sizeBytes}.${label}.${process.pid}.${this.sessions}`;
    const jsm = await nc.jetstreamManager();
    await jsm.streams.add({
      name: stream,
      subjects: [subject],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      num_replicas: 1,
    });
    for (let g = 0; g < groups; g++) {
      await jsm.consumers.add(stream, {
        durable_name: `g${g}`,
        ack_policy: AckPolicy.All,
        deliver_policy: DeliverPolicy.All,
        max_ack_pending: 4 * this.options.pullBatch,
      });
    }
    const publishers = await Promise.all(
      Array.from({ length: label === 'paced' ? 1 : this.options.publishers }, async () => {
        const conn = await connect({ servers: this.servers });
        return { conn, js: conn.jetstream() };
      }),
    );
    let next = 0;
    let stopConsumers: (() => Promise<void>) | undefined;
    const o = this.options;
    return {
      window: this.options.window,
      publish: async (value: string) => {
        await publishers[next++ % publishers.length].js.publish(subject, Buffer.from(value, 'latin1'));
      },
      startConsumers: async (count: number, deliver: (group: number, values: Delivered) => void) => {
        const consumerConn = await connect({ servers: this.servers });
        const js = consumerConn.jetstream();
        const running = await Promise.all(
          Array.from({ length: count }, async (_, g) => {
            const consumer = await js.consumers.get(stream, `g${g}`);
            const messages = await consumer.consume({ max_messages: o.pullBatch });
            let unacked = 0;
            let last: JsMsg | undefined;
            const flush = () => {
              if (last && unacked > 0) last.ack();
              unacked = 0;
              last = undefined;
            };
            const timer = setInterval(flush, 5);
            const loop = (async () => {
              for await (const m of messages) {
                deliver(g, [m.data]);
                last = m;
                if (++unacked >= o.ackEvery) flush();
              }
            })();
            return { messages, timer, loop, flush };
          }),
        );
        stopConsumers = async () => {
          for (const r of running) {
            clearInterval(r.timer);
            r.flush();
            r.messages.stop();
          }
          await Promise.allSettled(running.map((r) => r.loop));
          await consumerConn.drain().catch(() => undefined);
          stopConsumers = undefined;
        };
      },
      stopConsumers: async () => {
        await stopConsumers?.();
      },
      close: async () => {
        await stopConsumers?.();
        await Promise.all(publishers.map((p) => p.conn.drain().catch(() => undefined)));
        await jsm.streams.delete(stream).catch(() => undefined);
      },
    };
  }

  async stop(): Promise<void> {
    await this.nc?.close().catch(() => undefined);
    this.nc = undefined;
    const own = this.own;
    this.own = undefined;
    if (own) await stopOwnServer(own);
  }
}
