/**
 * Continuous publishing and consuming through the SDK, counting what was acknowledged and what
 * every consumer group received, so a fault-injection test can prove that nothing acknowledged
 * was lost and that no producer saw a failed publish.
 */
import { Consumer, Producer } from '../../src/client/index.js';
import { type BrokerClient, waitFor } from './operator.js';

/** One acknowledged publish: where it went, when it was handed to the SDK and when acknowledged. */
export interface Ack {
  shard: string;
  sentAt: number;
  ackedAt: number;
}

export interface WorkloadResult {
  acked: number;
  failedPublishes: string[];
  /** Per group: acknowledged messages it never received (should be empty). */
  missing: Record<string, string[]>;
  /** Per group: deliveries beyond the first of a message (at-least-once redeliveries). */
  duplicates: Record<string, number>;
  /** Every acknowledged publish, in the order the acknowledgements came. */
  acks: Ack[];
}

export interface WorkloadOptions {
  /** The brokers and token to use (`env.brokerClient`), read once at start. */
  client: () => Promise<BrokerClient>;
  topic: string;
  groups: string[];
  producers?: number;
  /** Messages each producer keeps in flight. */
  inflight?: number;
  /** Prefix of message values, so several workloads on one topic never mix. */
  tag: string;
}

export class Workload {
  private readonly acked = new Set<string>();
  private readonly acks: Ack[] = [];
  private readonly failed: string[] = [];
  private readonly seen = new Map<string, Set<string>>();
  private readonly duplicates = new Map<string, number>();
  private producing = true;
  private consuming = true;
  private readonly loops: Promise<void>[] = [];
  private readonly consumerLoops: Promise<void>[] = [];

  private constructor(private readonly opts: WorkloadOptions) {}

  static async start(opts: WorkloadOptions): Promise<Workload> {
    const w = new Workload(opts);
    const client = await opts.client();
    await new Producer(client).createTopic(opts.topic);
    for (let p = 0; p < (opts.producers ?? 2); p++) w.loops.push(w.produce(p, client));
    for (const group of opts.groups) {
      w.seen.set(group, new Set());
      w.duplicates.set(group, 0);
      w.consumerLoops.push(w.consume(group, client));
    }
    return w;
  }

  get ackedCount(): number {
    return this.acked.size;
  }

  private async produce(index: number, client: BrokerClient): Promise<void> {
    // Retries across every broker for up to 30 s: a broker killed mid-request must not surface.
    const producer = new Producer({ ...client, timeoutMs: 30_000, lingerMs: 2 });
    let seq = 0;
    const inflight = new Set<Promise<void>>();
    while (this.producing) {
      const value = `${this.opts.tag}-p${index}-${seq++}`;
      const sentAt = Date.now();
      const send = producer
        .send(this.opts.topic, value)
        .then(
          (ack) => {
            this.acked.add(value);
            this.acks.push({ shard: ack.shard, sentAt, ackedAt: Date.now() });
          },
          (err: unknown) => void this.failed.push(`${value}: ${String(err)}`),
        )
        .finally(() => inflight.delete(send));
      inflight.add(send);
      if (inflight.size >= (this.opts.inflight ?? 20)) await Promise.race(inflight);
    }
    await Promise.allSettled(inflight);
    await producer.close();
  }

  private async consume(group: string, client: BrokerClient): Promise<void> {
    const consumer = new Consumer({
      ...client,
      topic: this.opts.topic,
      group,
      waitMs: 200,
      timeoutMs: 30_000,
    });
    const seen = this.seen.get(group)!;
    while (this.consuming) {
      try {
        for (const m of await consumer.poll(500)) {
          const value = String(m.value);
          if (!value.startsWith(`${this.opts.tag}-`)) continue;
          if (seen.has(value)) this.duplicates.set(group, this.duplicates.get(group)! + 1);
          seen.add(value);
        }
        await consumer.commit();
      } catch {
        // A fetch or commit that failed during a fault is retried; at-least-once covers the gap.
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    await consumer.close().catch(() => undefined);
  }

  /**
   * Stops producing, then waits until every group has received every acknowledged message (or the
   * timeout passes) and reports what is missing.
   */
  async stop(timeoutMs = 120_000): Promise<WorkloadResult> {
    this.producing = false;
    await Promise.all(this.loops);
    await waitFor(
      'every group to receive every acknowledged message',
      () => [...this.seen.values()].every((s) => [...this.acked].every((v) => s.has(v))),
      timeoutMs,
      500,
    ).catch(() => undefined);
    this.consuming = false;
    await Promise.all(this.consumerLoops);
    const missing: Record<string, string[]> = {};
    for (const [group, seen] of this.seen)
      missing[group] = [...this.acked].filter((v) => !seen.has(v)).slice(0, 20);
    return {
      acked: this.acked.size,
      failedPublishes: this.failed.slice(0, 20),
      missing,
      duplicates: Object.fromEntries(this.duplicates),
      acks: this.acks,
    };
  }
}
