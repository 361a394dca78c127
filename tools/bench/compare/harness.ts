import { nextSends, pacingPlan, scheduledAt } from './pacing.js';
import { readStamp, stampedPayload } from './payload.js';
import { sleep } from '../../../src/common/deadline.js';
import { CpuMeter, RssSampler } from './procs.js';
import type { PhaseCpu, RunResult } from './results.js';
import { Samples, perSecond } from './stats.js';
import type { BenchSystem, Session } from './system.js';
import { fmtInt } from './table.js';

/** The three phases every system goes through at each message size, bounded in time and count. */
export interface PhaseOptions {
  groups: number;
  /** Full-load produce: stop after this many acknowledged messages... */
  maxMessages: number;
  /** ...or after this long, whichever comes first. */
  produceMs: number;
  /** Unacknowledged publishes the full-load producer keeps outstanding. */
  window: number;
  /** Time allowed for the groups to read the produced backlog. */
  consumeMs: number;
  /** Offered load of the paced phase, messages per second. */
  rate: number;
  pacedMs: number;
  /** After the paced producer stops: time allowed for the last acks and deliveries. */
  drainMs: number;
}

/** One updating line on a terminal; a line every few seconds in a log. */
export class Progress {
  private lastLog = 0;
  private width = 0;
  private readonly tty: boolean;

  constructor(private readonly out: NodeJS.WriteStream = process.stderr) {
    this.tty = Boolean(out.isTTY);
  }

  update(line: string): void {
    if (this.tty) {
      this.out.write(`\r${line.padEnd(this.width)}`);
      this.width = line.length;
    } else if (Date.now() - this.lastLog >= 2000) {
      this.lastLog = Date.now();
      this.out.write(`${line}\n`);
    }
  }

  done(line: string): void {
    if (this.tty) this.out.write(`\r${line.padEnd(this.width)}\n`);
    else this.out.write(`${line}\n`);
    this.width = 0;
    this.lastLog = 0;
  }
}

const secs = (ms: number) => `${(ms / 1000).toFixed(1)}s`;

function ticker(fn: () => void, ms = 250): () => void {
  const timer = setInterval(fn, ms);
  return () => clearInterval(timer);
}

export async function measure(
  system: BenchSystem,
  sizeBytes: number,
  options: PhaseOptions,
  progress: Progress,
): Promise<RunResult> {
  const tag = `[${system.name} ${sizeBytes} B]`;
  const errors: string[] = [];
  const noteError = (err: unknown) => {
    if (errors.length < 5) errors.push(String((err as Error)?.message ?? err));
  };
  const rss = new RssSampler(() => system.serverPids()).start();
  const storagePids = system.storagePids?.bind(system);
  const storageRss = storagePids ? new RssSampler(storagePids, 1000).start() : undefined;
  const metered = async <T>(phase: () => Promise<T>): Promise<[T, PhaseCpu]> => {
    const server = new CpuMeter(() => system.serverPids()).start();
    const storage = storagePids ? new CpuMeter(storagePids).start() : undefined;
    const client = process.cpuUsage();
    const result = await phase();
    const { user, system: sys } = process.cpuUsage(client);
    const cpu = {
      serverMs: server.stopMs(),
      storageMs: storage?.stopMs(),
      clientMs: Math.round((user + sys) / 1000),
    };
    return [result, cpu];
  };
  try {
    const session = await system.session(sizeBytes, 'load', options.groups);
    let produced: RunResult['produced'];
    let consumed: RunResult['consumed'];
    let produceCpu: PhaseCpu;
    let consumeCpu: PhaseCpu;
    try {
      [produced, produceCpu] = await metered(() =>
        producePhase(session, sizeBytes, options, progress, tag, noteError),
      );
      [consumed, consumeCpu] = await metered(() =>
        consumePhase(session, produced.messages, options, progress, tag),
      );
    } finally {
      await session.close().catch(noteError);
    }
    const [paced, pacedCpu] = await metered(() =>
      pacedPhase(system, sizeBytes, options, progress, tag, noteError),
    );
    const storage = storageRss?.stop();
    return {
      system: system.name,
      sizeBytes,
      produced,
      consumed,
      paced,
      cpu: { produce: produceCpu, consume: consumeCpu, paced: pacedCpu },
      rss: { ...rss.stop(), storagePeakTotalMiB: storage?.peakTotalMiB },
      errors,
    };
  } finally {
    rss.stop();
    storageRss?.stop();
  }
}

/** As many acknowledged publishes as the system takes, `window` outstanding at a time. */
export async function producePhase(
  session: Session,
  size: number,
  o: PhaseOptions,
  progress: Progress,
  tag: string,
  noteError: (err: unknown) => void,
): Promise<RunResult['produced']> {
  const latencies = new Samples();
  let issued = 0;
  let acked = 0;
  let failed = 0;
  let inflight = 0;
  // One payload for the whole phase, as `npm run bench` does: the client's work per message stays
  // small, and every system gets the same bytes (latency here counts from each send call).
  const payload = stampedPayload(size, 0);
  const window = Math.min(o.window, session.window ?? o.window);
  const start = performance.now();
  let end = start;
  const stopTicker = ticker(() =>
    progress.update(
      `${tag} produce: ${fmtInt(acked)} acknowledged (${fmtInt(perSecond(acked, performance.now() - start))}/s) ${secs(performance.now() - start)}`,
    ),
  );
  await new Promise<void>((resolve) => {
    const more = () => issued < o.maxMessages && performance.now() - start < o.produceMs;
    const pump = () => {
      while (inflight < window && more()) {
        issued++;
        inflight++;
        const sentAt = performance.now();
        let p: Promise<void>;
        try {
          p = session.publish(payload);
        } catch (err) {
          p = Promise.reject(err);
        }
        p.then(
          () => {
            const now = performance.now();
            latencies.push(now - sentAt);
            acked++;
            end = now;
          },
          (err) => {
            failed++;
            noteError(err);
          },
        ).finally(() => {
          inflight--;
          if (more()) pump();
          else if (inflight === 0) resolve();
        });
      }
    };
    pump();
  });
  stopTicker();
  const ms = end - start;
  progress.done(
    `${tag} produce: ${fmtInt(acked)} acknowledged in ${secs(ms)}: ${fmtInt(perSecond(acked, ms))} msg/s${failed ? `, ${failed} failed` : ''}`,
  );
  return {
    messages: acked,
    failed,
    seconds: ms / 1000,
    perSecond: perSecond(acked, ms),
    ackMs: latencies.summary(),
  };
}

/** Every group reads the whole backlog; reads per second over all groups. */
export async function consumePhase(
  session: Session,
  perGroup: number,
  o: PhaseOptions,
  progress: Progress,
  tag: string,
): Promise<RunResult['consumed']> {
  const counts = new Array<number>(o.groups).fill(0);
  let reads = 0;
  let complete = 0;
  const expected = perGroup * o.groups;
  let allRead!: () => void;
  const finished = new Promise<void>((resolve) => (allRead = resolve));
  if (perGroup === 0) allRead();
  const start = performance.now();
  let end = start;
  const stopTicker = ticker(() =>
    progress.update(
      `${tag} consume: ${fmtInt(reads)}/${fmtInt(expected)} reads (${fmtInt(perSecond(reads, performance.now() - start))}/s) ${secs(performance.now() - start)}`,
    ),
  );
  await session.startConsumers(o.groups, (group, values) => {
    const before = counts[group];
    counts[group] += values.length;
    reads += values.length;
    end = performance.now();
    if (before < perGroup && counts[group] >= perGroup && ++complete === o.groups) allRead();
  });
  const timedOut = await Promise.race([finished.then(() => false), sleep(o.consumeMs).then(() => true)]);
  if (timedOut) end = performance.now();
  stopTicker();
  await session.stopConsumers();
  const ms = end - start;
  progress.done(
    `${tag} consume: ${fmtInt(reads)} reads by ${o.groups} groups in ${secs(ms)}: ${fmtInt(perSecond(reads, ms))} reads/s${timedOut ? ` (time limit; ${fmtInt(expected)} expected)` : ''}`,
  );
  return { reads, expected, seconds: ms / 1000, perSecond: perSecond(reads, ms) };
}

/** A fixed offered load while the groups consume: acknowledgement and end-to-end latency. */
export async function pacedPhase(
  system: BenchSystem,
  size: number,
  o: PhaseOptions,
  progress: Progress,
  tag: string,
  noteError: (err: unknown) => void,
): Promise<RunResult['paced']> {
  const plan = pacingPlan(o.rate, o.pacedMs);
  const session = await system.session(size, 'paced', o.groups);
  const acks = new Samples();
  const e2e = new Samples();
  let delivered = 0;
  let sent = 0;
  let skipped = 0;
  let acked = 0;
  let failed = 0;
  let outstanding = 0;
  try {
    await session.startConsumers(o.groups, (_group, values) => {
      const now = performance.now();
      for (const v of values) {
        const stamp = readStamp(v);
        if (Number.isFinite(stamp)) e2e.push(now - stamp);
      }
      delivered += values.length;
    });
    const start = performance.now();
    const stopTicker = ticker(() =>
      progress.update(
        `${tag} paced ${fmtInt(o.rate)}/s: ${fmtInt(sent)} sent, ${fmtInt(acked)} acknowledged, ${fmtInt(delivered)} delivered ${secs(performance.now() - start)}`,
      ),
    );
    const maxOutstanding = Math.max(1, o.rate);
    for (;;) {
      const elapsed = performance.now() - start;
      if (sent + skipped >= plan.total || elapsed >= o.pacedMs + 1000) break;
      // Messages position .. due-1 are due: send what the outstanding limit allows, skip the rest.
      const position = sent + skipped;
      const { send, skip } = nextSends(plan, elapsed, position, outstanding, maxOutstanding);
      skipped += skip;
      for (let i = 0; i < send; i++) {
        const at = scheduledAt(start, position + i, o.rate);
        sent++;
        outstanding++;
        let p: Promise<void>;
        try {
          p = session.publish(stampedPayload(size, at));
        } catch (err) {
          p = Promise.reject(err);
        }
        p.then(
          () => {
            acks.push(performance.now() - at);
            acked++;
          },
          (err) => {
            failed++;
            noteError(err);
          },
        ).finally(() => outstanding--);
      }
      await sleep(1);
    }
    const drainUntil = performance.now() + o.drainMs;
    while ((outstanding > 0 || delivered < acked * o.groups) && performance.now() < drainUntil) {
      await sleep(10);
    }
    stopTicker();
    await session.stopConsumers();
  } finally {
    await session.close().catch(noteError);
  }
  const ackMs = acks.summary();
  const e2eMs = e2e.summary();
  progress.done(
    `${tag} paced ${fmtInt(o.rate)}/s for ${secs(o.pacedMs)}: ack p50 ${ackMs.p50.toFixed(2)} ms, p99 ${ackMs.p99.toFixed(2)} ms; end-to-end p50 ${e2eMs.p50.toFixed(2)} ms, p99 ${e2eMs.p99.toFixed(2)} ms; ${fmtInt(delivered)}/${fmtInt(acked * o.groups)} delivered${skipped ? `; ${fmtInt(skipped)} skipped (fell behind)` : ''}`,
  );
  return {
    ratePerSecond: o.rate,
    seconds: o.pacedMs / 1000,
    offered: sent,
    skipped,
    acked,
    failed,
    ackMs,
    e2eMs,
    delivered,
    expected: acked * o.groups,
  };
}
