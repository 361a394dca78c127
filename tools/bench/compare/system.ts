/** What the comparison asks of each system it measures. */

/** Messages handed to a group, as the client library returns them. */
export type Delivered = readonly (string | Buffer | Uint8Array)[];

/** One topic/stream/queue set: fresh for each phase, so every phase starts empty. */
export interface Session {
  /**
   * Publishes this system takes outstanding at full load at most, when fewer than `--window`
   * serve it better (its best number, said in its setup).
   */
  window?: number;
  /** Publishes one message (ASCII text); resolves once the system acknowledged it. */
  publish(value: string): Promise<void>;
  /**
   * Starts one consumer per group, each reading every message of the session from the beginning
   * and acknowledging (committing) what it read; resolves once they are subscribed.
   */
  startConsumers(groups: number, deliver: (group: number, values: Delivered) => void): Promise<void>;
  /** Stops the consumers; resolves once none reads any more. */
  stopConsumers(): Promise<void>;
  /** Deletes what the session created, where the system allows it. */
  close(): Promise<void>;
}

export interface BenchSystem {
  /** Key in results: mysqlmq, ceiling, rabbitmq, nats, redis. */
  readonly name: string;
  readonly title: string;
  /** Durability of an acknowledged message, said plainly. */
  readonly durability: string;
  /** How the benchmark drives it: connections, batching, acknowledgements. */
  readonly setup: string;
  /** Starts or connects; throws SkipSystem when the system cannot be had on this machine. */
  start(log: (line: string) => void): Promise<void>;
  /** Server version, known after start. */
  version(): string;
  /** A fresh session; `label` is 'load' (full-load produce, then consume) or 'paced'. */
  session(sizeBytes: number, label: 'load' | 'paced', groups: number): Promise<Session>;
  /** The processes whose resident memory counts as this system's server memory. */
  serverPids(): number[];
  /** Storage processes behind the servers, reported apart (mysqlmq and the ceiling: mariadbd). */
  storagePids?(): number[];
  stop(): Promise<void>;
}

/** Thrown by `start` when a system is not available; the run goes on without it. */
export class SkipSystem extends Error {
  override name = 'SkipSystem';
}
