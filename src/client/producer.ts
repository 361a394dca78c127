import { Transport, type TransportOptions, topicPath } from './transport.js';

export interface ProducerOptions extends TransportOptions {
  /** How long `send` waits for more messages before a batch goes out. */
  lingerMs?: number;
  batchMessages?: number;
  batchBytes?: number;
  /** Publish requests in flight at once; further batches wait (back-pressure). */
  maxInflight?: number;
}

export interface PublishAck {
  shard: string;
  id: number;
}

interface PublishResponse {
  shard: string;
  firstId: number;
  count: number;
}

interface Queued {
  value: Buffer | string;
  resolve(ack: PublishAck): void;
  reject(err: unknown): void;
}

/**
 * Publishes through the brokers. `send` batches messages per topic; its promise resolves once the
 * message is committed on a shard's primary and its semi-sync standby.
 *
 * Delivery is at-least-once: a publish whose answer was lost is retried on the next broker and may
 * be stored twice, so consumers must tolerate a repeated message.
 */
export class Producer {
  private readonly transport: Transport;
  private readonly queues = new Map<string, Queued[]>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private inflight = 0;
  private readonly waitingForSlot: (() => void)[] = [];
  private readonly lingerMs: number;
  private readonly batchMessages: number;
  private readonly batchBytes: number;
  private readonly maxInflight: number;
  private readonly sending = new Set<Promise<void>>();

  constructor(options: ProducerOptions) {
    this.transport = new Transport(options);
    this.lingerMs = options.lingerMs ?? 5;
    this.batchMessages = options.batchMessages ?? 1000;
    this.batchBytes = options.batchBytes ?? 1 << 20;
    this.maxInflight = options.maxInflight ?? 8;
  }

  async createTopic(name: string): Promise<{ name: string; created: boolean }> {
    return this.transport.call('POST', '/v1/topics', { name });
  }

  /** Queues one message; resolves with where it was stored. */
  send(topic: string, value: Buffer | string): Promise<PublishAck> {
    return new Promise((resolve, reject) => {
      let queue = this.queues.get(topic);
      if (!queue) this.queues.set(topic, (queue = []));
      queue.push({ value, resolve, reject });
      if (queue.length >= this.batchMessages) this.dispatch(topic);
      else if (!this.timers.has(topic)) {
        this.timers.set(
          topic,
          setTimeout(() => this.dispatch(topic), this.lingerMs),
        );
      }
    });
  }

  /** Publishes the given messages in one request, bypassing the batching. */
  async sendBatch(topic: string, values: (Buffer | string)[]): Promise<PublishAck[]> {
    const res = await this.transport.call<PublishResponse>(
      'POST',
      `${topicPath(topic)}/messages`,
      encode(values),
    );
    return values.map((_, i) => ({ shard: res.shard, id: res.firstId + i }));
  }

  /** Sends whatever is queued and waits for every outstanding publish. */
  async flush(): Promise<void> {
    for (const topic of [...this.queues.keys()]) this.dispatch(topic);
    while (this.sending.size > 0) await Promise.allSettled([...this.sending]);
  }

  async close(): Promise<void> {
    await this.flush();
  }

  private dispatch(topic: string): void {
    clearTimeout(this.timers.get(topic));
    this.timers.delete(topic);
    const queue = this.queues.get(topic);
    if (!queue || queue.length === 0) return;
    let bytes = 0;
    let count = 0;
    while (count < queue.length && count < this.batchMessages) {
      bytes += Buffer.byteLength(queue[count].value);
      count++;
      if (bytes >= this.batchBytes) break;
    }
    const batch = queue.splice(0, count);
    if (queue.length === 0) this.queues.delete(topic);
    else this.dispatch(topic);
    const sending = this.sendQueued(topic, batch).finally(() => this.sending.delete(sending));
    this.sending.add(sending);
  }

  private async sendQueued(topic: string, batch: Queued[]): Promise<void> {
    while (this.inflight >= this.maxInflight) await new Promise<void>((r) => this.waitingForSlot.push(r));
    this.inflight++;
    try {
      const acks = await this.sendBatch(
        topic,
        batch.map((q) => q.value),
      );
      batch.forEach((q, i) => q.resolve(acks[i]));
    } catch (err) {
      for (const q of batch) q.reject(err);
    } finally {
      this.inflight--;
      this.waitingForSlot.shift()?.();
    }
  }
}

function encode(values: (Buffer | string)[]): { messages: { value: string }[]; encoding?: 'base64' } {
  if (values.every((v) => typeof v === 'string')) return { messages: values.map((value) => ({ value })) };
  return {
    encoding: 'base64',
    messages: values.map((v) => ({ value: (typeof v === 'string' ? Buffer.from(v) : v).toString('base64') })),
  };
}
