import amqp from 'amqplib';
import type { Channel, ChannelModel, ConfirmChannel } from 'amqplib';
import { type BenchSystem, type Delivered, type Session } from '../system.js';
import { RABBIT_DEFAULTS, type RabbitOptions, RabbitMqSystem, consumeAcking } from './rabbitmq.js';

export interface RabbitStreamOptions extends RabbitOptions {
  /**
   * Publishes outstanding at full load. Unbounded, confirms queue up behind each other and the ack
   * p50 grows without more throughput. 256-byte messages, 6 s each, 2026-12-06: 250: 40,868/s
   * (p50 5 ms); 500: 45,652/s (10 ms); 1000: 46,008/s (21 ms); 2000: 46,644/s (41 ms); 4000:
   * 41,841/s (88 ms); 16000: 40,946/s (358 ms). 1000 is within 1.4 % of the best rate at half its
   * latency.
   */
  window: number;
}

export const RABBIT_STREAM_DEFAULTS: RabbitStreamOptions = { ...RABBIT_DEFAULTS, window: 1000 };

/**
 * RabbitMQ as a user with one log read by many groups would run it: one stream
 * (`x-queue-type: stream`), written once, each group a consumer reading it from the first offset
 * (`x-stream-offset`), over AMQP 0.9.1. Starting and stopping the server is `RabbitMqSystem`'s.
 */
export class RabbitMqStreamSystem implements BenchSystem {
  readonly name = 'rabbitmq-stream';
  readonly title = 'RabbitMQ stream';
  readonly durability =
    'publisher confirm once the message is in the stream’s log file, which RabbitMQ does not fsync ' +
    '(streams rely on replicas for durability); one node, no replica: an OS crash can lose confirmed messages';
  readonly setup: string;
  private readonly server: RabbitMqSystem;
  private sessions = 0;
  private admin?: ChannelModel;
  private adminChannel?: Channel;

  constructor(private readonly options: RabbitStreamOptions = RABBIT_STREAM_DEFAULTS) {
    this.server = new RabbitMqSystem(options);
    this.setup =
      'one durable stream (x-queue-type stream) per session, written once; ' +
      `${options.publishers} connections with a confirm channel each, at most ${options.window} publishes outstanding; ` +
      `one consumer per group from x-stream-offset "first", prefetch ${options.prefetch}, acks with multiple=true every ${options.ackEvery} messages`;
  }

  async start(log: (line: string) => void): Promise<void> {
    await this.server.start(log);
    this.admin = await amqp.connect(this.options.url);
    this.adminChannel = await this.admin.createChannel();
  }

  version(): string {
    return this.server.version();
  }

  serverPids(): number[] {
    return this.server.serverPids();
  }

  async session(sizeBytes: number, label: string): Promise<Session> {
    const name = `mysqlmq-compare-stream.${sizeBytes}.${label}.${process.pid}.${++this.sessions}`;
    const admin = this.adminChannel!;
    await admin.assertQueue(name, {
      durable: true,
      autoDelete: false,
      arguments: { 'x-queue-type': 'stream' },
    });
    const publishers: { conn: ChannelModel; channel: ConfirmChannel }[] = [];
    for (let i = 0; i < (label === 'paced' ? 1 : this.options.publishers); i++) {
      const conn = await amqp.connect(this.options.url);
      publishers.push({ conn, channel: await conn.createConfirmChannel() });
    }
    const consumers: { conn: ChannelModel; ch: Channel; tag: string; timer: NodeJS.Timeout }[] = [];
    const stopConsumers = async () => {
      for (const c of consumers.splice(0)) {
        clearInterval(c.timer);
        await c.ch.cancel(c.tag).catch(() => undefined);
        await c.conn.close().catch(() => undefined);
      }
    };
    let next = 0;
    return {
      window: this.options.window,
      publish: (value: string) =>
        new Promise<void>((resolve, reject) => {
          const { channel } = publishers[next++ % publishers.length];
          channel.sendToQueue(name, Buffer.from(value, 'latin1'), { persistent: true }, (err) =>
            err ? reject(err instanceof Error ? err : new Error('nacked')) : resolve(),
          );
        }),
      startConsumers: async (groups: number, deliver: (group: number, values: Delivered) => void) => {
        // A connection per group: a stream consumer's deliveries share their connection's socket.
        for (let g = 0; g < groups; g++) {
          const conn = await amqp.connect(this.options.url);
          const ch = await conn.createChannel();
          // A stream consumer must set a prefetch; acks only move its credit, they delete nothing.
          const consumer = await consumeAcking(ch, name, this.options, (m) => deliver(g, [m]), {
            'x-stream-offset': 'first',
          });
          consumers.push({ conn, ch, ...consumer });
        }
      },
      stopConsumers,
      close: async () => {
        await stopConsumers();
        for (const p of publishers) await p.conn.close().catch(() => undefined);
        await admin.deleteQueue(name).catch(() => undefined);
      },
    };
  }

  async stop(): Promise<void> {
    await this.admin?.close().catch(() => undefined);
    this.admin = undefined;
    await this.server.stop();
  }
}
