import { spawn } from 'node:child_process';
import amqp from 'amqplib';
import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage } from 'amqplib';
import { waitFor } from '../../../local/wait.js';
import { findPids, portOpen } from '../procs.js';
import { type BenchSystem, type Delivered, type Session, SkipSystem } from '../system.js';

export interface RabbitOptions {
  url: string;
  host: string;
  port: number;
  /** Connections with one confirm channel each at full load; the paced phase uses one. */
  publishers: number;
  prefetch: number;
  /** A consumer acknowledges with `multiple` every this many messages (and when idle). */
  ackEvery: number;
}

export const RABBIT_DEFAULTS: RabbitOptions = {
  url: 'amqp://guest:guest@127.0.0.1:5672',
  host: '127.0.0.1',
  port: 5672,
  publishers: 4,
  prefetch: 2000,
  ackEvery: 200,
};

/** RabbitMQ: a durable fanout exchange to one durable classic queue per group, persistent messages. */
export class RabbitMqSystem implements BenchSystem {
  readonly name = 'rabbitmq';
  readonly title = 'RabbitMQ classic fanout';
  readonly durability =
    'publisher confirm after the persistent message is written and fsynced to each durable queue ' +
    '(RabbitMQ batches the fsyncs); one node, no replica';
  readonly setup: string;
  private admin?: ChannelModel;
  private adminChannel?: Channel;
  private serverVersion = 'unknown';
  private sessions = 0;

  constructor(private readonly options: RabbitOptions = RABBIT_DEFAULTS) {
    this.setup =
      'durable fanout exchange to one durable classic queue (x-queue-version 2) per group; ' +
      `${options.publishers} connections with a confirm channel each, persistent messages, confirms awaited per message ` +
      `(many outstanding); one consumer per queue, prefetch ${options.prefetch}, manual acks with multiple=true every ${options.ackEvery} messages`;
  }

  async start(log: (line: string) => void): Promise<void> {
    const { host, port } = this.options;
    if (!(await portOpen(host, port))) {
      log(`RabbitMQ not listening on ${host}:${port}; starting it with rabbitmq-server -detached`);
      try {
        await new Promise<void>((resolve, reject) => {
          const child = spawn('rabbitmq-server', ['-detached'], { stdio: 'ignore' });
          child.once('error', reject);
          child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`exit code ${code}`))));
        });
        await waitFor('RabbitMQ', () => portOpen(host, port), 90_000, 200);
      } catch (err) {
        throw new SkipSystem(`RabbitMQ could not be started: ${(err as Error).message}`);
      }
    }
    try {
      this.admin = await waitFor('RabbitMQ', () => amqp.connect(this.options.url), 30_000, 200);
    } catch (err) {
      throw new SkipSystem(`cannot connect to RabbitMQ at ${this.options.url}: ${(err as Error).message}`);
    }
    this.serverVersion = String(this.admin.connection.serverProperties.version ?? 'unknown');
    this.adminChannel = await this.admin.createChannel();
  }

  version(): string {
    return `RabbitMQ ${this.serverVersion}`;
  }

  serverPids(): number[] {
    return findPids('beam.smp', (cmd) => cmd.some((a) => a.includes('rabbit')));
  }

  async session(sizeBytes: number, label: string, groups: number): Promise<Session> {
    const name = `mysqlmq-compare.${sizeBytes}.${label}.${process.pid}.${++this.sessions}`;
    const admin = this.adminChannel!;
    await admin.assertExchange(name, 'fanout', { durable: true, autoDelete: false });
    // One queue per group, bound before anything is published (a fanout drops what no queue takes).
    const queues: string[] = [];
    for (let g = 0; g < groups; g++) {
      const q = `${name}.g${g}`;
      // Classic queue version 2: the faster durable classic queue store of 3.10 (about 15 %
      // more confirmed fanout publishes than v1 here).
      await admin.assertQueue(q, { durable: true, autoDelete: false, arguments: { 'x-queue-version': 2 } });
      await admin.bindQueue(q, name, '');
      queues.push(q);
    }
    const publishers: { conn: ChannelModel; channel: ConfirmChannel }[] = [];
    for (let i = 0; i < (label === 'paced' ? 1 : this.options.publishers); i++) {
      const conn = await amqp.connect(this.options.url);
      publishers.push({ conn, channel: await conn.createConfirmChannel() });
    }
    let consumerConn: ChannelModel | undefined;
    let stopConsumers: (() => Promise<void>) | undefined;
    let next = 0;
    return {
      publish: (value: string) =>
        new Promise<void>((resolve, reject) => {
          const { channel } = publishers[next++ % publishers.length];
          channel.publish(name, '', Buffer.from(value, 'latin1'), { persistent: true }, (err) =>
            err ? reject(err instanceof Error ? err : new Error('nacked')) : resolve(),
          );
        }),
      startConsumers: async (_groups: number, deliver: (group: number, values: Delivered) => void) => {
        consumerConn = await amqp.connect(this.options.url);
        const channels: { ch: Channel; tag: string; timer: NodeJS.Timeout }[] = [];
        for (let g = 0; g < queues.length; g++) {
          const ch = await consumerConn.createChannel();
          channels.push({
            ch,
            ...(await consumeAcking(ch, queues[g], this.options, (m) => deliver(g, [m]))),
          });
        }
        stopConsumers = async () => {
          for (const c of channels) {
            clearInterval(c.timer);
            await c.ch.cancel(c.tag).catch(() => undefined);
          }
          await consumerConn?.close().catch(() => undefined);
          consumerConn = undefined;
        };
      },
      stopConsumers: async () => {
        await stopConsumers?.();
      },
      close: async () => {
        await stopConsumers?.();
        for (const p of publishers) await p.conn.close().catch(() => undefined);
        for (const q of queues) await admin.deleteQueue(q).catch(() => undefined);
        await admin.deleteExchange(name).catch(() => undefined);
      },
    };
  }

  async stop(): Promise<void> {
    await this.admin?.close().catch(() => undefined);
    this.admin = undefined;
  }
}

/**
 * One consumer on `queue` with `prefetch`, acknowledging with multiple=true every `ackEvery`
 * messages and every 5 ms when fewer came. `args`: consume arguments (a stream's offset).
 */
export async function consumeAcking(
  ch: Channel,
  queue: string,
  o: Pick<RabbitOptions, 'prefetch' | 'ackEvery'>,
  onMessage: (content: Buffer) => void,
  args?: Record<string, unknown>,
): Promise<{ tag: string; timer: NodeJS.Timeout }> {
  await ch.prefetch(o.prefetch);
  let unacked = 0;
  let last: ConsumeMessage | undefined;
  const flush = () => {
    if (last && unacked > 0) ch.ack(last, true);
    unacked = 0;
    last = undefined;
  };
  const { consumerTag } = await ch.consume(
    queue,
    (msg) => {
      if (!msg) return;
      onMessage(msg.content);
      last = msg;
      if (++unacked >= o.ackEvery) flush();
    },
    { noAck: false, ...(args ? { arguments: args } : {}) },
  );
  return { tag: consumerTag, timer: setInterval(flush, 5) };
}
