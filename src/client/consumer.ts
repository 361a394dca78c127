import { randomUUID } from 'node:crypto';
import { MqClientError, Transport, type TransportOptions, groupPath } from './transport.js';

export interface ConsumerOptions extends TransportOptions {
  topic: string;
  group: string;
  /** Names this consumer process; random by default. */
  consumerId?: string;
  maxMessages?: number;
  maxBytes?: number;
  /** Long-poll: how long a fetch waits for new messages. */
  waitMs?: number;
  /** Deliver values as Buffers instead of UTF-8 strings. */
  binary?: boolean;
}

export interface Message<V = string | Buffer> {
  shard: string;
  id: number;
  publishedAt: number;
  value: V;
}

interface FetchResponse {
  messages: { shard: string; id: number; publishedAt: number; value: string }[];
  positions: Record<string, number>;
  heldElsewhere: string[];
  /** Present when the offsets sent along (`commit`) could not be committed. */
  commitError?: { status: number; code: string; message: string };
}

/**
 * Reads a topic for a consumer group from every shard, through any broker. Positions are kept
 * here; `commit` records them in the shards, so a restarted or replacement consumer resumes after
 * the last commit. At-least-once: what was fetched but not committed is delivered again.
 */
export class Consumer {
  readonly consumerId: string;
  private readonly transport: Transport;
  private positions: Record<string, number> = {};
  /** Delivered by `poll`, not committed yet. */
  private uncommitted: Record<string, number> = {};
  /** What `run`'s handler finished: committed along with the next fetch, saving a round trip. */
  private processed: Record<string, number> = {};
  private stopped = false;

  constructor(private readonly options: ConsumerOptions) {
    this.transport = new Transport(options);
    this.consumerId = options.consumerId ?? `c-${randomUUID()}`;
  }

  /** One fetch of at most `maxMessages`; the messages count as delivered (committed by the next `commit`). */
  async poll(maxMessages = this.options.maxMessages ?? 1000): Promise<Message[]> {
    const waitMs = this.options.waitMs ?? 1000;
    const commit = Object.keys(this.processed).length > 0 ? { ...this.processed } : undefined;
    const res = await this.transport.call<FetchResponse>(
      'POST',
      `${groupPath(this.options.topic, this.options.group)}/fetch`,
      {
        consumer: this.consumerId,
        positions: this.positions,
        commit,
        maxMessages,
        maxBytes: this.options.maxBytes,
        waitMs,
        encoding: this.options.binary ? 'base64' : undefined,
      },
      waitMs + 10_000,
    );
    // Committed: forget those offsets. Refused for good (4xx): forget them too; unavailable: retry.
    if (commit && (!res.commitError || res.commitError.status < 500)) this.committed(commit);
    for (const shard of res.heldElsewhere) {
      delete this.positions[shard];
      delete this.uncommitted[shard];
      delete this.processed[shard];
    }
    for (const m of res.messages) this.uncommitted[m.shard] = m.id;
    Object.assign(this.positions, res.positions);
    if (!this.options.binary) return res.messages;
    // Decoded in place: the parsed objects are ours.
    const messages = res.messages as Message[];
    for (const m of messages) m.value = Buffer.from(m.value as string, 'base64');
    return messages;
  }

  /**
   * Records everything polled so far as processed, or only up to the given id per shard (ids this
   * consumer was delivered). A shard whose primary is down is retried later.
   */
  async commit(upTo?: Record<string, number>): Promise<void> {
    const offsets = upTo ?? this.uncommitted;
    if (Object.keys(offsets).length === 0) return;
    if (!upTo) this.uncommitted = {};
    try {
      await this.transport.call('POST', `${groupPath(this.options.topic, this.options.group)}/offsets`, {
        offsets,
      });
    } catch (err) {
      // Keep what failed unless a newer delivery replaced it meanwhile.
      if (!upTo) this.uncommitted = { ...offsets, ...this.uncommitted };
      throw err;
    }
    this.committed(offsets);
  }

  /**
   * Polls, hands each non-empty batch to `handler`, and commits it once the handler returned
   * (along with the next fetch, and at the end), until `stop`. A handler that throws stops the
   * loop without committing that batch.
   */
  async run(handler: (messages: Message[]) => Promise<void> | void): Promise<void> {
    while (!this.stopped) {
      const messages = await this.poll();
      if (messages.length === 0) continue;
      try {
        await handler(messages);
      } catch (err) {
        // Only what earlier batches finished may still be committed (by close()).
        this.uncommitted = { ...this.processed };
        throw err;
      }
      for (const m of messages) this.processed[m.shard] = m.id;
    }
    try {
      await this.commit();
    } catch (err) {
      if (!(err instanceof MqClientError && err.code === 'offsets_unavailable')) throw err;
    }
  }

  /** Forgets offsets the group has now committed (unless newer ones replaced them meanwhile). */
  private committed(offsets: Record<string, number>): void {
    for (const [shard, id] of Object.entries(offsets)) {
      if (this.processed[shard] !== undefined && this.processed[shard] <= id) delete this.processed[shard];
      if (this.uncommitted[shard] !== undefined && this.uncommitted[shard] <= id)
        delete this.uncommitted[shard];
    }
  }

  stop(): void {
    this.stopped = true;
  }

  /**
   * Commits (unless `commit: false`: what was polled and not committed is then delivered again),
   * then hands this consumer's shards to the rest of the group at once.
   */
  async close({ commit = true }: { commit?: boolean } = {}): Promise<void> {
    this.stop();
    if (commit) await this.commit().catch(() => undefined);
    await this.transport
      .call(
        'DELETE',
        `${groupPath(this.options.topic, this.options.group)}/consumers/${encodeURIComponent(this.consumerId)}`,
      )
      .catch(() => undefined);
  }
}
