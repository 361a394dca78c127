import { encodeJsonLines } from '../common/json-lines.js';
import { ReusableBuffers } from '../common/reusable-buffers.js';
import { FRAMES_CONTENT_TYPE, encodeFrames } from '../common/message-frames.js';
import { EncodedBody, MqClientError, Transport, type TransportOptions, topicPath } from './transport.js';
import type { TopicSettings } from '../api/topic-settings.js';

export interface ProducerOptions extends TransportOptions {
  /**
   * How long `send` waits for more messages before a batch goes out while a request slot is free
   * (0: only for the messages sent in the same turn of the event loop). While every slot is busy,
   * messages wait for a slot instead, and go out together as soon as one frees.
   */
  lingerMs?: number;
  batchMessages?: number;
  batchBytes?: number;
  /** Publish requests in flight at once (back-pressure: further messages wait for a slot). */
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
  /** Topics lingering before their batch goes out, and how to stop the wait. */
  private readonly lingering = new Map<string, () => void>();
  /** Topics with messages due that wait for a request slot, longest waiting first. */
  private readonly due = new Set<string>();
  private inflight = 0;
  private readonly lingerMs: number;
  private readonly batchMessages: number;
  private readonly batchBytes: number;
  private readonly maxInflight: number;
  private readonly sending = new Set<Promise<void>>();
  /** Publish bodies are written into these (see ReusableBuffers). */
  private readonly bodies = new ReusableBuffers();
  /** Publishes go framed (message-frames.ts) unless a broker turned out not to read them. */
  private framed = true;

  constructor(options: ProducerOptions) {
    this.transport = new Transport(options);
    this.lingerMs = options.lingerMs ?? 5;
    this.batchMessages = options.batchMessages ?? 1000;
    this.batchBytes = options.batchBytes ?? 1 << 20;
    this.maxInflight = options.maxInflight ?? 8;
  }

  /** Creates the topic; `settings` (e.g. `{ maxDeliveries: 5 }`) apply only if this creates it. */
  async createTopic(name: string, settings?: TopicSettings): Promise<{ name: string; created: boolean }> {
    return this.transport.call('POST', '/v1/topics', { name, settings });
  }

  /** Queues one message; resolves with where it was stored. */
  send(topic: string, value: Buffer | string): Promise<PublishAck> {
    return new Promise((resolve, reject) => {
      let queue = this.queues.get(topic);
      if (!queue) this.queues.set(topic, (queue = []));
      queue.push({ value, resolve, reject });
      if (this.due.has(topic)) return;
      if (queue.length >= this.batchMessages) this.dispatch(topic);
      else if (!this.lingering.has(topic)) this.linger(topic);
    });
  }

  /** Publishes the given messages in one request, bypassing the batching. */
  async sendBatch(topic: string, values: (Buffer | string)[]): Promise<PublishAck[]> {
    const framed = this.framed;
    const alloc = (size: number) => this.bodies.take(size);
    const body = framed
      ? new EncodedBody(encodeFrames(values, alloc), FRAMES_CONTENT_TYPE)
      : new EncodedBody(encodeJson(values, alloc), 'application/json');
    let res: PublishResponse;
    try {
      res = await this.transport.call<PublishResponse>('POST', `${topicPath(topic)}/messages`, body);
    } catch (err) {
      if (framed && err instanceof MqClientError && err.code === 'malformed_json') {
        // A broker from before framed publishes read the frames as JSON: JSON from now on.
        this.framed = false;
        return this.sendBatch(topic, values);
      }
      throw err;
    }
    // Answered: the broker has read all of it. After an error the socket may still refer to it.
    this.bodies.give(body.bytes);
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

  private linger(topic: string): void {
    const go = () => this.dispatch(topic);
    if (this.lingerMs > 0) {
      const timer = setTimeout(go, this.lingerMs);
      this.lingering.set(topic, () => clearTimeout(timer));
    } else {
      const immediate = setImmediate(go);
      this.lingering.set(topic, () => clearImmediate(immediate));
    }
  }

  /** Sends the topic's queued messages while request slots are free; the rest is due. */
  private dispatch(topic: string): void {
    this.lingering.get(topic)?.();
    this.lingering.delete(topic);
    const queue = this.queues.get(topic);
    while (queue && queue.length > 0 && this.inflight < this.maxInflight) {
      let bytes = 0;
      let count = 0;
      while (count < queue.length && count < this.batchMessages) {
        bytes += Buffer.byteLength(queue[count].value);
        count++;
        if (bytes >= this.batchBytes) break;
      }
      this.inflight++;
      const sending = this.sendQueued(topic, queue.splice(0, count)).finally(() => {
        this.sending.delete(sending);
        this.inflight--;
        this.slotFreed();
      });
      this.sending.add(sending);
    }
    if (queue && queue.length > 0) this.due.add(topic);
    else {
      this.due.delete(topic);
      this.queues.delete(topic);
    }
  }

  /** Messages that waited for a slot have waited long enough: they go at once. */
  private slotFreed(): void {
    for (const topic of this.due) {
      if (this.inflight >= this.maxInflight) return;
      this.dispatch(topic);
    }
  }

  private async sendQueued(topic: string, batch: Queued[]): Promise<void> {
    try {
      const acks = await this.sendBatch(
        topic,
        batch.map((q) => q.value),
      );
      batch.forEach((q, i) => q.resolve(acks[i]));
    } catch (err) {
      for (const q of batch) q.reject(err);
    }
  }
}

/** The JSON publish body, one message per line (json-lines.ts): never one large string. */
function encodeJson(values: (Buffer | string)[], alloc: (size: number) => Buffer): Buffer {
  if (values.every((v) => typeof v === 'string')) {
    return encodeJsonLines(
      'messages',
      values.map((value) => `{"value":${JSON.stringify(value)}}`),
      {},
      alloc,
    );
  }
  return encodeJsonLines(
    'messages',
    values.map((v) => `{"value":"${(typeof v === 'string' ? Buffer.from(v) : v).toString('base64')}"}`),
    { encoding: 'base64' },
    alloc,
  );
}
