/**
 * `npm run bench -- --retention-soak`: two identical stacks side by side in one run, each one
 * durable shard (primary + semi-sync standby) and a broker process, under the same paced produce +
 * consume load. Stack "retention" runs the operator's retention job (src/operator/retention/job.ts,
 * the code the operator runs every spec.retention.intervalSeconds) with a retention of a few
 * minutes; stack "none" never deletes. Every window: publish latency and throughput of both, disk
 * of every instance (data directory, binlogs included), whether a purge ran. Running both at once
 * means whatever else runs on the machine slows both alike.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BROKER_NODE_OPTIONS } from '../../src/api/node-options.js';
import { Consumer, Producer } from '../../src/client/index.js';
import { createLogger } from '../../src/common/logger.js';
import { BrokerProcess } from '../local/broker-process.js';
import { LocalShards } from '../local/cluster.js';
import { RetentionJob } from '../../src/operator/retention/job.js';
import { withAdmin } from '../../src/shard/connection.js';
import { probeInstance } from '../../src/shard/probe.js';
import { sleep } from '../../src/common/deadline.js';
import { type LatencySummary, Samples } from './compare/stats.js';
import { fmtInt, fmtMs, markdownTable } from './compare/table.js';
import {
  describeLoad,
  describeMachine,
  loadNow,
  writeBenchmarkJson,
  writeBenchmarkSection,
} from './machine.js';

const RESULTS_JSON = 'docs/bench-results/retention-soak.json';
/** Apart from the tests (127.0.2x), the demo (127.0.30/31) and the other benchmarks (127.0.40-54). */
const PREFIXES = { retention: '127.0.56', none: '127.0.57' } as const;
type StackName = keyof typeof PREFIXES;

interface Options {
  minutes: number;
  retentionMinutes: number;
  binlogMinutes: number;
  rate: number;
  size: number;
  windowSeconds: number;
  intervalSeconds: number;
}

interface Stack {
  name: StackName;
  dir: string;
  shards: LocalShards;
  broker: BrokerProcess;
  latencies: Samples;
  produced: number;
  consumed: number;
  errors: number;
}

export interface WindowSample {
  t: number;
  stack: StackName;
  producedPerSecond: number;
  publish: LatencySummary;
  primaryDiskBytes: number;
  standbyDiskBytes: number;
  primaryBinlogBytes: number;
  standbyBinlogBytes: number;
  messageTableBytes: number;
  consumerLag: number;
  deletedInWindow: number;
}

function diskBytes(dir: string): number {
  return Number(execFileSync('du', ['-sb', dir], { encoding: 'utf8' }).split('\t')[0]);
}

async function bytesOf(dir: string, match: (name: string) => boolean): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (match(name)) total += (await stat(join(dir, name)).catch(() => ({ size: 0 }))).size;
  }
  return total;
}

async function startStack(name: StackName, root: string): Promise<Stack> {
  const dir = join(root, name);
  const shards = await LocalShards.start({ dir, shards: 1, addressPrefix: PREFIXES[name] });
  // Small binlog files, so purging (whole files only) shows within minutes.
  for (const db of [shards.shards[0].primary, shards.shards[0].standby]) {
    await withAdmin(db.endpoint, shards.secrets.admin, (c) =>
      c.query('SET GLOBAL max_binlog_size = 8388608'),
    );
  }
  const routingFile = join(dir, 'routing.json');
  await BrokerProcess.writeRouting(routingFile, shards.routing());
  const broker = await BrokerProcess.start({
    host: `${PREFIXES[name]}.101`,
    port: 8080,
    routingFile,
    db: shards.secrets.broker,
    nodeArgs: [...BROKER_NODE_OPTIONS],
  });
  return { name, dir, shards, broker, latencies: new Samples(), produced: 0, consumed: 0, errors: 0 };
}

/** Paced publishes: a batch every 50 ms, open loop (a slow publish does not delay the next). */
async function produce(stack: Stack, opts: Options, until: number): Promise<void> {
  const producer = new Producer({ brokers: [stack.broker.url], maxInflight: 16 });
  const periodMs = 50;
  const perBatch = Math.max(1, Math.round((opts.rate * periodMs) / 1000));
  const value = 'x'.repeat(opts.size);
  const batch = Array.from({ length: perBatch }, () => value);
  const inflight = new Set<Promise<void>>();
  const start = performance.now();
  for (let i = 0; Date.now() < until; i++) {
    const wait = start + i * periodMs - performance.now();
    if (wait > 0) await sleep(wait);
    const t = performance.now();
    const p = producer
      .sendBatch('soak', batch)
      .then(() => {
        stack.latencies.push(performance.now() - t);
        stack.produced += perBatch;
      })
      .catch(() => void stack.errors++)
      .finally(() => inflight.delete(p));
    inflight.add(p);
    if (inflight.size >= 64) await Promise.race(inflight);
  }
  await Promise.all(inflight);
  await producer.close();
}

async function consume(stack: Stack, until: number): Promise<void> {
  const consumer = new Consumer({
    brokers: [stack.broker.url],
    topic: 'soak',
    group: 'soak',
    maxMessages: 5000,
    waitMs: 500,
  });
  while (Date.now() < until) {
    try {
      stack.consumed += (await consumer.poll()).length;
      await consumer.commit();
    } catch {
      stack.errors++;
      await sleep(200);
    }
  }
  await consumer.close();
}

export async function runRetentionSoak(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      'retention-soak': { type: 'boolean' },
      minutes: { type: 'string', default: '12' },
      'retention-minutes': { type: 'string', default: '3' },
      'binlog-minutes': { type: 'string', default: '1' },
      rate: { type: 'string', default: '2000' },
      size: { type: 'string', default: '512' },
      'window-seconds': { type: 'string', default: '30' },
      'interval-seconds': { type: 'string', default: '15' },
    },
  });
  const opts: Options = {
    minutes: Number(values.minutes),
    retentionMinutes: Number(values['retention-minutes']),
    binlogMinutes: Number(values['binlog-minutes']),
    rate: Number(values.rate),
    size: Number(values.size),
    windowSeconds: Number(values['window-seconds']),
    intervalSeconds: Number(values['interval-seconds']),
  };
  const loadAtStart = loadNow();
  const root = await mkdtemp(join(tmpdir(), 'mysqlmq-retention-soak-'));
  console.log(
    `==> two stacks (retention on / off), 1 durable shard + 1 broker each; ${opts.minutes} min at ${opts.rate} msg/s of ${opts.size} B each`,
  );
  const stacks = await Promise.all((['retention', 'none'] as const).map((n) => startStack(n, root)));
  const samples: WindowSample[] = [];
  const passes: { start: number; end: number; deleted: number; purged: string[] }[] = [];
  try {
    for (const s of stacks) {
      // The broker takes writes once its own probe saw the primary writable with its standby.
      for (let i = 0; i < 100; i++) {
        const ready = (await fetch(`${s.broker.url}/readyz`).then((r) => r.json())) as {
          writableShards?: number;
        };
        if (ready.writableShards) break;
        await sleep(100);
      }
      await new Producer({ brokers: [s.broker.url] }).createTopic('soak');
    }
    const started = Date.now();
    const until = started + opts.minutes * 60_000;
    const load = stacks.flatMap((s) => [produce(s, opts, until), consume(s, until)]);

    // The retention stack: the operator's job, on its interval.
    const withRetention = stacks[0];
    const shard = withRetention.shards.shards[0];
    const job = new RetentionJob(withRetention.shards.secrets.admin, createLogger('retention-soak', 'warn'));
    let deletedSinceWindow = 0;
    const retention = (async () => {
      while (Date.now() < until) {
        const passStart = Date.now();
        const [p, s] = await Promise.all(
          [shard.primary, shard.standby].map((db) =>
            probeInstance(db.endpoint, withRetention.shards.secrets.admin),
          ),
        );
        const report = await job.run(
          {
            shard: 'shard-0',
            writablePrimary: shard.primary.endpoint,
            instances: [
              { name: 'primary', endpoint: shard.primary.endpoint, position: p.gtidCurrentPos },
              { name: 'standby', endpoint: shard.standby.endpoint, position: s.gtidCurrentPos },
            ],
          },
          { maxAgeMs: opts.retentionMinutes * 60_000, binlogMinAgeMs: opts.binlogMinutes * 60_000 },
        );
        const deleted = report.topics.reduce((n, t) => n + t.deleted, 0);
        deletedSinceWindow += deleted;
        passes.push({
          start: passStart - started,
          end: Date.now() - started,
          deleted,
          purged: report.binlogs.filter((b) => b.purgedTo).map((b) => `${b.instance}: to ${b.purgedTo}`),
        });
        await sleep(Math.max(0, passStart + opts.intervalSeconds * 1000 - Date.now()));
      }
    })();

    const monitor = (async () => {
      let last = Date.now();
      while (Date.now() < until) {
        await sleep(Math.min(opts.windowSeconds * 1000, until - Date.now()));
        const now = Date.now();
        const secs = (now - last) / 1000;
        last = now;
        const deleted = deletedSinceWindow;
        deletedSinceWindow = 0;
        for (const s of stacks) {
          const data = (role: string) => join(s.dir, `shard-0-${role}`, 'data');
          const binlog = (name: string) => name.startsWith('mysql-bin.') && name !== 'mysql-bin.index';
          const sample: WindowSample = {
            t: Math.round((now - started) / 1000),
            stack: s.name,
            producedPerSecond: s.produced / secs,
            publish: s.latencies.summary(),
            primaryDiskBytes: diskBytes(data('primary')),
            standbyDiskBytes: diskBytes(data('standby')),
            primaryBinlogBytes: await bytesOf(data('primary'), binlog),
            standbyBinlogBytes: await bytesOf(data('standby'), binlog),
            messageTableBytes: await bytesOf(join(data('primary'), 'mq'), (n) => /^m_\d+\.ibd$/.test(n)),
            consumerLag: s.produced - s.consumed,
            deletedInWindow: s.name === 'retention' ? deleted : 0,
          };
          s.produced = 0;
          s.consumed = 0;
          s.latencies = new Samples();
          samples.push(sample);
          console.log(
            `    t=${sample.t}s ${s.name.padEnd(9)} ${fmtInt(sample.producedPerSecond)} msg/s, publish p99 ${fmtMs(sample.publish.p99)} ms, primary ${mib(sample.primaryDiskBytes)} (binlog ${mib(sample.primaryBinlogBytes)}), standby ${mib(sample.standbyDiskBytes)}, deleted ${fmtInt(sample.deletedInWindow)}`,
          );
        }
      }
    })();
    await Promise.all([...load, retention, monitor]);
  } finally {
    await Promise.all(stacks.map((s) => s.broker.stop()));
    await Promise.all(stacks.map((s) => s.shards.destroy()));
    await rm(root, { recursive: true, force: true });
  }
  await record(
    opts,
    samples,
    passes,
    stacks.map((s) => ({ stack: s.name, errors: s.errors })),
    describeLoad(loadAtStart, loadNow()),
  );
  return 0;
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;

/** Publish latencies of the windows after the first retention period, merged per stack. */
function steadyState(samples: WindowSample[], stack: StackName, fromSeconds: number) {
  const w = samples.filter((s) => s.stack === stack && s.t > fromSeconds);
  const mean = (f: (s: WindowSample) => number) => w.reduce((n, s) => n + f(s), 0) / Math.max(1, w.length);
  return {
    windows: w.length,
    producedPerSecond: mean((s) => s.producedPerSecond),
    // Windows are equal in length and count, so the mean of their p99s compares the stacks fairly.
    publishP99: mean((s) => s.publish.p99),
    publishP50: mean((s) => s.publish.p50),
    first: w[0],
    last: w.at(-1),
  };
}

async function record(
  opts: Options,
  samples: WindowSample[],
  passes: { start: number; end: number; deleted: number; purged: string[] }[],
  errors: { stack: StackName; errors: number }[],
  load: string,
): Promise<void> {
  const machine = describeMachine();
  // Flat from the end of the first retention period plus one pass and the binlog age.
  const steadyFrom = (opts.retentionMinutes + opts.binlogMinutes) * 60 + opts.intervalSeconds;
  const a = steadyState(samples, 'retention', steadyFrom);
  const b = steadyState(samples, 'none', steadyFrom);
  const growth = (x: ReturnType<typeof steadyState>, f: (s: WindowSample) => number) =>
    x.first && x.last ? f(x.last) - f(x.first) : NaN;
  const summary = {
    steadyFromSeconds: steadyFrom,
    retention: a,
    none: b,
    throughputRatio: a.producedPerSecond / b.producedPerSecond,
    p99Ratio: a.publishP99 / b.publishP99,
    primaryDiskGrowthBytes: {
      retention: growth(a, (s) => s.primaryDiskBytes),
      none: growth(b, (s) => s.primaryDiskBytes),
    },
    standbyDiskGrowthBytes: {
      retention: growth(a, (s) => s.standbyDiskBytes),
      none: growth(b, (s) => s.standbyDiskBytes),
    },
  };
  await writeBenchmarkJson(RESULTS_JSON, {
    machine,
    load,
    date: new Date().toISOString(),
    opts,
    summary,
    passes,
    errors,
    samples,
  });
  const rows = samples
    .filter((s) => s.stack === 'retention')
    .map((s) => {
      const o = samples.find((x) => x.stack === 'none' && x.t === s.t)!;
      return [
        String(s.t),
        `${fmtInt(s.producedPerSecond)} / ${fmtInt(o.producedPerSecond)}`,
        `${fmtMs(s.publish.p99)} / ${fmtMs(o.publish.p99)}`,
        `${mib(s.primaryDiskBytes)} / ${mib(o.primaryDiskBytes)}`,
        `${mib(s.primaryBinlogBytes)} / ${mib(o.primaryBinlogBytes)}`,
        `${mib(s.standbyDiskBytes)} / ${mib(o.standbyDiskBytes)}`,
        fmtInt(s.deletedInWindow),
      ];
    });
  const pct = (r: number) => `${r >= 1 ? '+' : ''}${((r - 1) * 100).toFixed(1)} %`;
  await writeBenchmarkSection(
    'retention-soak',
    `## Retention soak: disk stays flat, producers unaffected (issue 10)

\`npm run bench -- --retention-soak\` (${machine}; ${new Date().toISOString().slice(0, 16)}Z; ${load}; both
stacks ran at the same time, so whatever else ran on the machine slowed both alike). Two identical stacks, each one durable shard (primary +
semi-sync standby, sync_binlog=1, \`max_binlog_size\` 8 MiB) and one broker process, each under
${fmtInt(opts.rate)} messages/s of ${opts.size} B (a 50 ms paced batch) and one consumer group for
${opts.minutes} minutes. Stack **retention** runs the operator's retention job every ${opts.intervalSeconds} s with
messages kept ${opts.retentionMinutes} min and binlogs at least ${opts.binlogMinutes} min; stack **none** keeps
everything. Steady state: from t=${steadyFrom} s (first retention period, binlog age and one pass).

| after t=${steadyFrom} s | retention | none | retention vs none |
| --- | --- | --- | --- |
| produced msg/s (mean of windows) | ${fmtInt(a.producedPerSecond)} | ${fmtInt(b.producedPerSecond)} | ${pct(summary.throughputRatio)} |
| publish p99, ms (mean of ${opts.windowSeconds} s windows) | ${fmtMs(a.publishP99)} | ${fmtMs(b.publishP99)} | ${pct(summary.p99Ratio)} |
| publish p50, ms | ${fmtMs(a.publishP50)} | ${fmtMs(b.publishP50)} | |
| primary disk growth (data dir incl. binlogs) | ${mib(summary.primaryDiskGrowthBytes.retention)} | ${mib(summary.primaryDiskGrowthBytes.none)} | |
| standby disk growth | ${mib(summary.standbyDiskGrowthBytes.retention)} | ${mib(summary.standbyDiskGrowthBytes.none)} | |

Every window (retention / none): t (s), produced msg/s, publish p99 (ms), primary disk, primary binlogs,
standby disk, messages deleted by retention in the window. Raw samples and every pass (deleted rows,
binlogs purged): \`${RESULTS_JSON}\`.

${markdownTable(['t', 'msg/s', 'p99', 'primary', 'binlogs', 'standby', 'deleted'], rows)}
`,
  );
}
