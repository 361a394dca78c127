import type { LatencySummary } from './stats.js';

export interface PhaseCpu {
  serverMs: number;
  storageMs?: number;
  clientMs: number;
}

/** What one system measured at one message size. */
export interface RunResult {
  system: string;
  sizeBytes: number;
  produced: {
    /** Acknowledged publishes. */
    messages: number;
    failed: number;
    seconds: number;
    perSecond: number;
    /** Publish-to-acknowledge at full load (includes waiting behind the client's window). */
    ackMs: LatencySummary;
  };
  consumed: {
    /** Messages delivered to the groups, summed over groups. */
    reads: number;
    expected: number;
    seconds: number;
    perSecond: number;
  };
  paced: {
    ratePerSecond: number;
    seconds: number;
    offered: number;
    /** Due but not sent because too many were unacknowledged (the system fell behind). */
    skipped: number;
    acked: number;
    failed: number;
    /** From each message's scheduled time to its acknowledgement. */
    ackMs: LatencySummary;
    /** From each message's scheduled time to its delivery, over every group. */
    e2eMs: LatencySummary;
    delivered: number;
    expected: number;
  };
  /**
   * CPU time used in each phase, ms: the server processes (mysqlmq: brokers), the storage
   * processes (mariadbd, when reported apart) and the benchmark client process.
   */
  cpu?: Record<'produce' | 'consume' | 'paced', PhaseCpu>;
  rss: {
    /** Peak of the summed resident memory of the system's server processes. */
    peakTotalMiB: number;
    /** Peak resident memory of the largest single server process. */
    peakProcessMiB: number;
    processes: number;
    /** Peak summed resident memory of the storage processes (mariadbd), when reported apart. */
    storagePeakTotalMiB?: number;
  };
  errors: string[];
}

export interface SystemInfo {
  name: string;
  title: string;
  version: string;
  durability: string;
  setup: string;
  /** Why the system was not measured, when it was not. */
  skipped?: string;
}

export interface TargetCheck {
  target: string;
  measured: string;
  met: boolean | undefined;
}

export interface CompareReport {
  date: string;
  machine: string;
  command: string;
  options: Record<string, unknown>;
  systems: SystemInfo[];
  results: RunResult[];
  targets: TargetCheck[];
  durationSeconds: number;
  /** os.loadavg() when the run started and ended: how busy the shared machine was. */
  loadAverage?: { start: number[]; end: number[] };
  /** The benchmark process's node options (every system's clients run in it). */
  clientNodeArgs?: string[];
}
