import { randomUUID } from 'node:crypto';
import { MqClientError, Transport, type TransportOptions, groupPath } from './transport.js';
import { decodeFramedAnswer } from '../common/message-frames.js';

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
  /** Called with each error `run`'s handler throws (the messages come again; see `run`). */
  onError?: (error: unknown, messages: Message[]) => void;
  /**
   * How often the consumer tells a broker it is alive while it polls (also while `run`'s handler
   * works): its shards' leases, which run out 2 s after the last fetch or heartbeat, are renewed.
   * Default 500 ms.
   */
  heartbeatIntervalMs?: number;
  /**
   * A consumer that has not polled for this long (a handler that never returns) stops
   * heartbeating, so the rest of the group takes its shards; the next poll takes them back if
   * nobody did. Default 60 s.
   */
  maxPollIntervalMs?: number;
  /**
   * How often, at most, `run` commits what its handler finished. Default 0: along with the first
   * fetch after each batch (the fetch's answer waits for the commit). Each commit is a durable,
   * replicated transaction on every shard read, and a consumer reading at full speed fetches many
   * times a second. With an interval, `run` commits in a request of its own, beside the fetches,
   * which never wait for it; a consumer that dies without `stop` or `close` has up to its last
   * interval's messages delivered again (at least once, as always); `stop` and `close` commit
   * everything handled.
   */
  commitIntervalMs?: number;
}

const DEFAULT_HEARTBEAT_INTERVAL_MS = 500;
const DEFAULT_MAX_POLL_INTERVAL_MS = 60_000;
/**
 * How long a commit is retried across brokers. Shorter than other calls: an offset not committed
 * is kept and sent again with the next commit, while a caller waiting here reads nothing.
 */
const COMMIT_RETRY_MS = 3000;

/** The broker's answer to a commit: what it recorded and the shards to commit again later. */
interface CommitAnswer {
  committed: Record<string, number>;
  unavailable?: Record<string, { code: string; message: string }>;
}

export interface Message<V = string | Buffer> {
  shard: string;
  id: number;
  publishedAt: number;
  value: V;
}

interface FetchResponse {
  messages: Message[];
  /** Values are what the consumer asked for (a framed answer); else strings, base64 when binary. */
  decoded?: boolean;
  positions: Record<string, number>;
  heldElsewhere: string[];
  /** The group's generation per shard read (absent from brokers older than group resets). */
  generations?: Record<string, number>;
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
  /** The group's generation per shard that positions and offsets belong to; a reset changes it. */
  private generations: Record<string, number> = {};
  /** Delivered by `poll`, not committed yet. */
  private uncommitted: Record<string, number> = {};
  /** What `run`'s handler finished: committed along with the next fetch, saving a round trip. */
  private processed: Record<string, number> = {};
  /** Messages the handler threw for alone, reported with the next fetch (for maxDeliveries). */
  private failed: { shard: string; id: number; error: string }[] = [];
  /** Per shard, the message the handler last threw for alone: handed to it alone again. */
  private readonly suspects = new Map<string, number>();
  private stopped = false;
  /** Whether `run` is active (its loop or its handler). */
  private running = false;
  private heartbeatTimer?: NodeJS.Timeout;
  private heartbeatInFlight = false;
  /**
   * When the fetch in flight was sent. A fetch renews the leases itself while it waits, so no
   * heartbeat is needed meanwhile, unless it overran its wait (a broker that does not answer).
   */
  private fetchSentAt: number | undefined;
  /** The broker said this consumer holds no shard: no heartbeats until a fetch may have taken one. */
  private holdsNoShard = false;
  private lastPollAt = 0;
  /** With commitIntervalMs: when `run` last committed, and that commit while under way. */
  private lastCommitAt = 0;
  private commitUnderWay?: Promise<void>;

  constructor(private readonly options: ConsumerOptions) {
    this.transport = new Transport(options);
    this.consumerId = options.consumerId ?? `c-${randomUUID()}`;
  }

  /** One fetch of at most `maxMessages`; the messages count as delivered (committed by the next `commit`). */
  async poll(maxMessages = this.options.maxMessages ?? 1000): Promise<Message[]> {
    const waitMs = this.options.waitMs ?? 1000;
    this.lastPollAt = Date.now();
    const ridesAlong = !this.options.commitIntervalMs && Object.keys(this.processed).length > 0;
    const commit = ridesAlong ? { ...this.processed } : undefined;
    const failed = this.failed.length > 0 ? this.failed : undefined;
    this.fetchSentAt = Date.now();
    const res = await this.transport
      .call<FetchResponse>(
        'POST',
        `${groupPath(this.options.topic, this.options.group)}/fetch`,
        {
          consumer: this.consumerId,
          positions: this.positions,
          generations: this.generations,
          commit,
          failed,
          maxMessages,
          maxBytes: this.options.maxBytes,
          waitMs,
          encoding: this.options.binary ? 'base64' : undefined,
        },
        waitMs + 10_000,
        undefined,
        (body) => framedFetchResponse(body, this.options.binary === true),
      )
      .finally(() => (this.fetchSentAt = undefined));
    // Committed: forget those offsets. Refused for good (4xx): forget them too; unavailable: retry.
    if (commit && (!res.commitError || res.commitError.status < 500)) this.committed(commit);
    if (failed) this.failed = this.failed.filter((f) => !failed.includes(f));
    for (const shard of res.heldElsewhere) this.forget(shard);
    for (const [shard, generation] of Object.entries(res.generations ?? {})) {
      // The group was reset: what this consumer read before is void (the broker ignores it too).
      if (this.generations[shard] !== generation) this.forget(shard);
      this.generations[shard] = generation;
    }
    for (const m of res.messages) this.uncommitted[m.shard] = m.id;
    Object.assign(this.positions, res.positions);
    this.holdsNoShard = false;
    this.startHeartbeat();
    // Framed answers carry values as asked for; JSON ones (older brokers) base64 when binary.
    if (res.decoded || !this.options.binary) return res.messages;
    // Decoded in place: the parsed objects are ours.
    const messages = res.messages;
    for (const m of messages) m.value = Buffer.from(m.value as string, 'base64');
    return messages;
  }

  /**
   * Records everything polled so far as processed, or only up to the given id per shard (ids this
   * consumer was delivered). The shards that cannot take it now (a primary down before the routing
   * says so) are kept for the next commit, and this one then throws a 503 `offsets_unavailable`
   * after committing the others.
   */
  async commit(upTo?: Record<string, number>): Promise<void> {
    const offsets = upTo ?? this.uncommitted;
    if (Object.keys(offsets).length === 0) return;
    if (!upTo) this.uncommitted = {};
    let answer: CommitAnswer;
    try {
      answer = await this.transport.call<CommitAnswer>(
        'POST',
        `${groupPath(this.options.topic, this.options.group)}/offsets`,
        { consumer: this.consumerId, offsets, generations: this.generations },
        undefined,
        COMMIT_RETRY_MS,
      );
    } catch (err) {
      // Keep what failed unless a newer delivery replaced it meanwhile; a refusal (4xx) is final.
      if (!upTo && !(err instanceof MqClientError && err.status < 500)) this.keepUncommitted(offsets);
      throw err;
    }
    this.committed(answer.committed);
    const unavailable = Object.entries(answer.unavailable ?? {});
    if (unavailable.length === 0) return;
    if (!upTo)
      this.keepUncommitted(Object.fromEntries(unavailable.map(([shard]) => [shard, offsets[shard]])));
    throw new MqClientError(
      503,
      'offsets_unavailable',
      `not committed now, kept for the next commit: ${unavailable.map(([, u]) => u.message).join('; ')}`,
    );
  }

  /** Offsets to commit again, unless a newer delivery replaced them meanwhile. */
  private keepUncommitted(offsets: Record<string, number>): void {
    this.uncommitted = { ...offsets, ...this.uncommitted };
  }

  /**
   * Polls, hands each non-empty batch to `handler`, and commits it once the handler returned
   * (along with the next fetch, and at the end), until `stop`. A handler that throws does not stop
   * the loop: the batch is handed over again one message at a time, to find the message it fails
   * on; each shard goes back to just before that message, which comes again (after a pause that
   * grows with repeated failures) until the topic's maxDeliveries sets it aside in `<topic>.dlq`.
   * Nothing the handler did not finish is committed, and a `run` after `stop` starts there too
   * (`stop` ends the current `run`; a later one runs again).
   */
  async run(handler: (messages: Message[]) => Promise<void> | void): Promise<void> {
    this.stopped = false;
    this.running = true;
    try {
      await this.runLoop(handler);
    } finally {
      this.running = false;
      this.stopHeartbeat();
    }
  }

  private async runLoop(handler: (messages: Message[]) => Promise<void> | void): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      const before = { ...this.positions };
      const generations = { ...this.generations };
      const messages = await this.poll();
      // A shard whose group was reset meanwhile is never set back to a position from before.
      for (const shard of Object.keys(before))
        if (this.generations[shard] !== generations[shard]) delete before[shard];
      if (messages.length === 0) continue;
      const handled = await this.handle(handler, messages, before);
      this.commitWhenDue();
      if (handled > 0) failures = 0;
      // Nothing went through: pause before the failed message comes again.
      else if (!this.stopped) await new Promise((r) => setTimeout(r, Math.min(5000, 100 * 2 ** failures++)));
    }
    await this.commitUnderWay;
    try {
      await this.commit();
    } catch (err) {
      if (!(err instanceof MqClientError && err.code === 'offsets_unavailable')) throw err;
    }
  }

  /**
   * With commitIntervalMs: commits what the handler finished once the interval has passed, beside
   * the fetches. Offsets a broker could not take now wait for the next commit; refused ones (4xx,
   * e.g. another consumer holds the shard now) are dropped, as when they ride along with a fetch.
   */
  private commitWhenDue(): void {
    const interval = this.options.commitIntervalMs;
    if (!interval || this.commitUnderWay || Date.now() - this.lastCommitAt < interval) return;
    const offsets = { ...this.processed };
    if (Object.keys(offsets).length === 0) return;
    this.lastCommitAt = Date.now();
    this.commitUnderWay = this.commit(offsets)
      .catch((err: unknown) => {
        if (err instanceof MqClientError && err.status < 500) this.committed(offsets);
      })
      .finally(() => (this.commitUnderWay = undefined));
  }

  private forget(shard: string): void {
    delete this.positions[shard];
    delete this.uncommitted[shard];
    delete this.processed[shard];
  }

  /**
   * Runs the handler on a batch; returns how many of its messages went through. A shard whose
   * message the handler threw for is set back to just before it.
   */
  private async handle(
    handler: (messages: Message[]) => Promise<void> | void,
    messages: Message[],
    before: Record<string, number>,
  ): Promise<number> {
    const suspect = messages.some((m) => this.suspects.get(m.shard) === m.id);
    if (!suspect) {
      try {
        await handler(messages);
        for (const m of messages) this.processed[m.shard] = m.id;
        return messages.length;
      } catch (err) {
        this.options.onError?.(err, messages);
        // Stopping, or a batch of one: no search for the culprit, the batch comes again.
        if (this.stopped || messages.length === 1) {
          if (messages.length === 1) this.reportFailure(messages[0], err);
          for (const m of messages) this.setBack(m.shard, before[m.shard]);
          return 0;
        }
      }
    }
    // One at a time: each shard stops at its first failure and goes back to just before it.
    const done = { ...before };
    const failedShards = new Set<string>();
    let handled = 0;
    for (const m of messages) {
      if (failedShards.has(m.shard)) continue;
      try {
        await handler([m]);
        this.processed[m.shard] = done[m.shard] = m.id;
        this.suspects.delete(m.shard);
        handled++;
      } catch (err) {
        if (suspect) this.options.onError?.(err, [m]);
        failedShards.add(m.shard);
        this.reportFailure(m, err);
        this.setBack(m.shard, done[m.shard]);
      }
    }
    return handled;
  }

  /** The handler threw for `m` alone: told to the broker with the next fetch, and `m` comes alone. */
  private reportFailure(m: Message, err: unknown): void {
    this.failed.push({ shard: m.shard, id: m.id, error: err instanceof Error ? err.message : String(err) });
    this.suspects.set(m.shard, m.id);
  }

  /** Reads `shard` again after `position` (from the committed offset when undefined). */
  private setBack(shard: string, position: number | undefined): void {
    if (position === undefined) delete this.positions[shard];
    else this.positions[shard] = position;
    // Only what the handler finished may be committed.
    if (this.processed[shard] !== undefined) this.uncommitted[shard] = this.processed[shard];
    else delete this.uncommitted[shard];
  }

  /** Forgets offsets the group has now committed (unless newer ones replaced them meanwhile). */
  private committed(offsets: Record<string, number>): void {
    for (const [shard, id] of Object.entries(offsets)) {
      if (this.processed[shard] !== undefined && this.processed[shard] <= id) delete this.processed[shard];
      if (this.uncommitted[shard] !== undefined && this.uncommitted[shard] <= id)
        delete this.uncommitted[shard];
    }
  }

  /**
   * Ends `run` once its handler returned (heartbeats go on until then, so the batch can still be
   * committed). Without `run`, stops the heartbeats at once: a consumer stopped without `close`
   * keeps its shards for one lease term (2 s), then the rest of the group takes them.
   */
  stop(): void {
    this.stopped = true;
    if (!this.running) this.stopHeartbeat();
  }

  /**
   * Heartbeats every `heartbeatIntervalMs` from the first poll on (one at a time), so a live
   * consumer keeps its leases between fetches however long its handler takes, up to
   * `maxPollIntervalMs` since the last poll. A killed process sends none: its leases run out.
   */
  private startHeartbeat(): void {
    if (this.heartbeatTimer) return;
    const interval = this.options.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS;
    this.heartbeatTimer = setInterval(() => this.beat(interval), interval);
    // A consumer nobody closed does not keep its process alive.
    this.heartbeatTimer.unref();
  }

  private stopHeartbeat(): void {
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
  }

  private beat(interval: number): void {
    if (this.heartbeatInFlight || this.holdsNoShard) return;
    const waitMs = this.options.waitMs ?? 1000;
    if (this.fetchSentAt !== undefined && Date.now() - this.fetchSentAt < waitMs + interval) return;
    if (Date.now() - this.lastPollAt > (this.options.maxPollIntervalMs ?? DEFAULT_MAX_POLL_INTERVAL_MS)) {
      // The handler has not returned for too long: its shards go to the rest of the group.
      this.stopHeartbeat();
      return;
    }
    this.heartbeatInFlight = true;
    const path = `${groupPath(this.options.topic, this.options.group)}/consumers/${encodeURIComponent(this.consumerId)}/heartbeat`;
    // Given up within about a lease term (a later one is pointless): the next tick tries again.
    const requestTimeoutMs = Math.max(1000, 2 * interval);
    this.transport
      .call('POST', path, undefined, requestTimeoutMs, 2 * requestTimeoutMs)
      .catch((err: unknown) => {
        // 409 no_lease_held (or the topic is gone): nothing to renew until the next fetch.
        if (err instanceof MqClientError && err.status < 500) this.holdsNoShard = true;
      })
      .finally(() => (this.heartbeatInFlight = false));
  }

  /**
   * Commits (unless `commit: false`: what was polled and not committed is then delivered again),
   * then hands this consumer's shards to the rest of the group at once.
   */
  async close({ commit = true }: { commit?: boolean } = {}): Promise<void> {
    this.stop();
    this.stopHeartbeat();
    if (commit) await this.commit().catch(() => undefined);
    await this.transport
      .call(
        'DELETE',
        `${groupPath(this.options.topic, this.options.group)}/consumers/${encodeURIComponent(this.consumerId)}`,
      )
      .catch(() => undefined);
  }
}

/** A fetch answer the broker sent framed (message-frames.ts). */
function framedFetchResponse(body: Buffer, binary: boolean): FetchResponse {
  const { header, messages } = decodeFramedAnswer(body, binary);
  return { ...(header as Omit<FetchResponse, 'messages'>), messages, decoded: true };
}
