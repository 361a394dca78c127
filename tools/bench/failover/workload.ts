/**
 * The failover benchmark's continuous load: paced producers and one consumer per group, all
 * through the SDK. Every message is `<tag>-<producer>-<seq>`; bitmaps record what was acknowledged
 * and what each group received, so a run of hours counts loss exactly in little memory.
 */
import { Consumer, Producer } from '../../../src/client/index.js';
import { Samples } from '../compare/stats.js';
import { sleep } from '../../../src/common/deadline.js';

/** A growable set of non-negative integers. */
export class BitSet {
  private bits = new Uint8Array(1 << 12);
  private n = 0;

  get size(): number {
    return this.n;
  }

  /** Adds `i`; true when it was not there yet. */
  add(i: number): boolean {
    const byte = i >>> 3;
    if (byte >= this.bits.length) {
      const bigger = new Uint8Array(Math.max(this.bits.length * 2, byte + 1));
      bigger.set(this.bits);
      this.bits = bigger;
    }
    const mask = 1 << (i & 7);
    if (this.bits[byte] & mask) return false;
    this.bits[byte] |= mask;
    this.n++;
    return true;
  }

  has(i: number): boolean {
    const byte = i >>> 3;
    return byte < this.bits.length && (this.bits[byte] & (1 << (i & 7))) !== 0;
  }

  /** Members of this set that `other` lacks, up to `limit` (a count of all of them is returned too). */
  missingFrom(other: BitSet, limit = 20): { count: number; sample: number[] } {
    let count = 0;
    const sample: number[] = [];
    for (let byte = 0; byte < this.bits.length; byte++) {
      const mine = this.bits[byte];
      if (mine === 0) continue;
      const theirs = byte < other.bits.length ? other.bits[byte] : 0;
      let lacking = mine & ~theirs;
      while (lacking) {
        const bit = 31 - Math.clz32(lacking & -lacking);
        lacking &= lacking - 1;
        count++;
        if (sample.length < limit) sample.push(byte * 8 + bit);
      }
    }
    return { count, sample };
  }
}

export interface WorkloadOptions {
  brokers: string[];
  /** The cluster's admin token (Secret NAME-user-admin): its brokers authenticate every client. */
  token: string;
  topic: string;
  groups: string[];
  producers: number;
  /** Publishes per second offered over all producers. */
  rate: number;
  tag: string;
}

export interface PublishFailure {
  at: number;
  value: string;
  error: string;
}

export interface WorkloadResult {
  acked: number;
  /** Publishes that resolved with an error at the producer (after the SDK's own retries). */
  failedPublishes: number;
  failures: PublishFailure[];
  /** Acknowledged messages at least one group never received. */
  lost: number;
  lostSample: string[];
  /** Per group: acknowledged messages it never received. */
  missing: Record<string, number>;
  /** Per group: deliveries beyond the first of a message (at-least-once redeliveries). */
  duplicates: Record<string, number>;
  /** Fetch or commit calls that threw (the loop retries them). */
  consumerErrors: Record<string, number>;
  /** Per group: the longest time between two deliveries, the drain included (ms). */
  longestGapMs: Record<string, number>;
  /** Publish-acknowledgement latency from `send` to its resolution, ms. */
  ackLatencyMs: { p50: number; p99: number; max: number };
  /** Messages due by the pacing that could not be sent because 2000 were already outstanding. */
  pacingShortfall: number;
  drainedMs: number;
  offeredPerSecond: number;
  durationSeconds: number;
}

const MAX_OUTSTANDING = 2000;

export class Workload {
  private readonly acked: BitSet[] = [];
  private readonly seen = new Map<string, BitSet[]>();
  private readonly duplicates = new Map<string, number>();
  private readonly consumerErrors = new Map<string, number>();
  /** Per group: when it last received a message, the longest gap, what it holds uncommitted. */
  private readonly lastDelivery = new Map<string, number>();
  private readonly longestGap = new Map<string, number>();
  private readonly uncommitted = new Map<string, number>();
  /** Per group: the most it held uncommitted since `watchInFlight`. */
  private readonly inFlightMax = new Map<string, number>();
  /** Groups whose consumer is to die after its next batch, before committing it. */
  private readonly doomed = new Set<string>();
  private readonly failures: PublishFailure[] = [];
  private failed = 0;
  private shortfall = 0;
  private readonly latency = new Samples();
  /** The slowest acknowledgement since `takeMaxLatency` was last called (ms). */
  private maxLatencySince = 0;
  private producing = true;
  private consuming = true;
  private readonly producerLoops: Promise<void>[] = [];
  private readonly consumerLoops: Promise<void>[] = [];
  private readonly started = Date.now();

  private constructor(private readonly opts: WorkloadOptions) {}

  static async start(opts: WorkloadOptions): Promise<Workload> {
    const w = new Workload(opts);
    await new Producer({ brokers: opts.brokers, token: opts.token }).createTopic(opts.topic);
    for (const group of opts.groups) {
      w.seen.set(
        group,
        Array.from({ length: opts.producers }, () => new BitSet()),
      );
      w.duplicates.set(group, 0);
      w.consumerErrors.set(group, 0);
      w.longestGap.set(group, 0);
      w.uncommitted.set(group, 0);
      w.consumerLoops.push(w.consume(group));
    }
    for (let p = 0; p < opts.producers; p++) {
      w.acked.push(new BitSet());
      w.producerLoops.push(w.produce(p));
    }
    return w;
  }

  get ackedCount(): number {
    return this.acked.reduce((n, b) => n + b.size, 0);
  }

  get failedCount(): number {
    return this.failed;
  }

  /**
   * Starts recording, per group, the most messages delivered and not yet committed (what a fault
   * may deliver again; commits that fail during a fault let it grow).
   */
  watchInFlight(): void {
    for (const [group, n] of this.uncommitted) this.inFlightMax.set(group, n);
  }

  /** Per group: the most it held uncommitted since `watchInFlight`. */
  inFlight(): Record<string, number> {
    return Object.fromEntries(this.inFlightMax);
  }

  /**
   * The group's consumer dies after its next batch, before committing it (no commit, no release of
   * its shards, as a killed process); a new consumer of the group starts at once. Resolves when the
   * old one is gone, with the size of the batch it took down.
   */
  killConsumerMidBatch(group: string): Promise<number> {
    this.doomed.add(group);
    return new Promise((resolve) => this.onKilled.set(group, resolve));
  }

  private readonly onKilled = new Map<string, (batch: number) => void>();

  /** The largest ack latency since the last call (ms). */
  takeMaxLatency(): number {
    const v = this.maxLatencySince;
    this.maxLatencySince = 0;
    return v;
  }

  private async produce(index: number): Promise<void> {
    // The SDK's defaults apart from a short linger: a call is retried across brokers for 30 s.
    const producer = new Producer({ brokers: this.opts.brokers, token: this.opts.token, lingerMs: 2 });
    const perSecond = this.opts.rate / this.opts.producers;
    const start = performance.now();
    let seq = 0;
    let outstanding = 0;
    const pending = new Set<Promise<void>>();
    while (this.producing) {
      const due = Math.floor(((performance.now() - start) / 1000) * perSecond);
      while (seq < due && this.producing) {
        if (outstanding >= MAX_OUTSTANDING) {
          this.shortfall += due - seq;
          seq = due; // skip what could not be offered rather than burst later
          break;
        }
        const n = seq++;
        const value = `${this.opts.tag}-${index}-${n}`;
        const sentAt = performance.now();
        outstanding++;
        const p = producer.send(this.opts.topic, value).then(
          () => {
            this.acked[index].add(n);
            const ms = performance.now() - sentAt;
            this.latency.push(ms);
            if (ms > this.maxLatencySince) this.maxLatencySince = ms;
          },
          (err: unknown) => {
            this.failed++;
            if (this.failures.length < 50) this.failures.push({ at: Date.now(), value, error: String(err) });
          },
        );
        const tracked = p.finally(() => {
          outstanding--;
          pending.delete(tracked);
        });
        pending.add(tracked);
      }
      await sleep(5);
    }
    await Promise.allSettled([...pending]);
    await producer.close();
  }

  private async consume(group: string): Promise<void> {
    const seen = this.seen.get(group)!;
    const prefix = `${this.opts.tag}-`;
    let consumer = this.newConsumer(group);
    while (this.consuming) {
      try {
        const messages = await consumer.poll(1000);
        let mine = 0;
        for (const m of messages) {
          const value = String(m.value);
          if (!value.startsWith(prefix)) continue;
          const [p, n] = value.slice(prefix.length).split('-').map(Number);
          const set = seen[p];
          if (!set || !Number.isInteger(n)) continue;
          mine++;
          if (!set.add(n)) this.duplicates.set(group, this.duplicates.get(group)! + 1);
        }
        if (mine > 0) this.delivered(group);
        const held = this.uncommitted.get(group)! + messages.length;
        this.uncommitted.set(group, held);
        if (this.inFlightMax.has(group))
          this.inFlightMax.set(group, Math.max(this.inFlightMax.get(group)!, held));
        if (messages.length > 0 && this.doomed.delete(group)) {
          // Gone mid-batch: nothing committed or released; a replacement starts right away.
          consumer.stop();
          consumer = this.newConsumer(group);
          this.onKilled.get(group)?.(messages.length);
          this.uncommitted.set(group, 0);
          continue;
        }
        await consumer.commit();
        this.uncommitted.set(group, 0);
      } catch {
        // A fetch or commit that failed during a fault is retried; at-least-once covers the gap.
        this.consumerErrors.set(group, this.consumerErrors.get(group)! + 1);
        await sleep(200);
      }
    }
    await consumer.close().catch(() => undefined);
  }

  private newConsumer(group: string): Consumer {
    return new Consumer({
      brokers: this.opts.brokers,
      token: this.opts.token,
      topic: this.opts.topic,
      group,
      waitMs: 200,
    });
  }

  /**
   * Measures the gap since the group's last delivery. The drain counts too: a group stalled by a
   * fault may only resume after the producers stopped.
   */
  private delivered(group: string): void {
    const now = Date.now();
    const last = this.lastDelivery.get(group);
    if (last !== undefined) {
      this.longestGap.set(group, Math.max(this.longestGap.get(group)!, now - last));
    }
    this.lastDelivery.set(group, now);
  }

  private missing(): { lost: number; sample: string[]; perGroup: Record<string, number> } {
    const perGroup: Record<string, number> = {};
    for (const [group, sets] of this.seen) {
      perGroup[group] = sets.reduce((n, s, p) => n + this.acked[p].missingFrom(s, 0).count, 0);
    }
    // A message counts as lost once, however many groups lack it.
    let lost = 0;
    const sample: string[] = [];
    for (let p = 0; p < this.acked.length; p++) {
      const union = new BitSet();
      for (const sets of this.seen.values()) {
        for (const n of this.acked[p].missingFrom(sets[p], Number.MAX_SAFE_INTEGER).sample) union.add(n);
      }
      lost += union.size;
      for (const n of union.missingFrom(new BitSet(), 20 - sample.length).sample)
        sample.push(`${this.opts.tag}-${p}-${n}`);
    }
    return { lost, sample, perGroup };
  }

  /** Acknowledged messages some group has not received yet (cheap enough for a progress check). */
  outstandingDeliveries(): number {
    let n = 0;
    for (const sets of this.seen.values())
      for (let p = 0; p < this.acked.length; p++) n += this.acked[p].missingFrom(sets[p], 0).count;
    return n;
  }

  /**
   * Stops producing, waits until every group has received every acknowledged message (or the
   * timeout passes), stops consuming and counts.
   */
  async stop(timeoutMs = 120_000): Promise<WorkloadResult> {
    this.producing = false;
    await Promise.all(this.producerLoops);
    const durationSeconds = (Date.now() - this.started) / 1000;
    const drainStart = Date.now();
    while (Date.now() - drainStart < timeoutMs && this.outstandingDeliveries() > 0) await sleep(250);
    const drainedMs = Date.now() - drainStart;
    this.consuming = false;
    await Promise.all(this.consumerLoops);
    const { lost, sample, perGroup } = this.missing();
    const s = this.latency.summary();
    return {
      acked: this.ackedCount,
      failedPublishes: this.failed,
      failures: this.failures,
      lost,
      lostSample: sample,
      missing: perGroup,
      duplicates: Object.fromEntries(this.duplicates),
      consumerErrors: Object.fromEntries(this.consumerErrors),
      longestGapMs: Object.fromEntries(this.longestGap),
      ackLatencyMs: { p50: s.p50, p99: s.p99, max: s.max },
      pacingShortfall: this.shortfall,
      drainedMs,
      offeredPerSecond: this.opts.rate,
      durationSeconds,
    };
  }
}
