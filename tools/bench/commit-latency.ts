/**
 * `npm run bench -- --commit-latency`: the shards alone, nothing else running. Paced multi-row
 * INSERTs straight into 2 durable shards (primary + semi-sync standby each, as the comparison's),
 * at the comparison's offered load: how long a commit takes on this machine, the floor under any
 * publish-acknowledge latency measured here. Run as deployed and, to see where the time goes, with
 * asynchronous replication and without fsync.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import mysql from 'mysql2/promise';
import { insertStatement } from '../../src/broker/queue-store.js';
import { queryBytes } from '../../src/shard/statement-bytes.js';
import { LocalShards } from '../local/cluster.js';
import { createMessageTableSql, messageTable } from '../../src/shard/schema.js';
import { dueBy } from './compare/pacing.js';
import { MIN_PAYLOAD_BYTES, stampedPayload } from './compare/payload.js';
import { sleep } from '../../src/common/deadline.js';
import { type LatencySummary, Samples } from './compare/stats.js';
import { fmtInt, fmtMs, markdownTable } from './compare/table.js';
import { describeMachine, writeBenchmarkJson, writeBenchmarkSection } from './machine.js';

/** Apart from the tests (127.0.2x), the demo (127.0.30/31) and the other benchmarks (127.0.40/45/50). */
const PREFIX = '127.0.52';
const RESULTS_JSON = 'docs/bench-results/commit-latency.json';
const MAX_ROWS = 2000;

/** How the shard primaries are set for one measurement, and how to put them back. */
export interface Variant {
  name: string;
  title: string;
  set: string[];
  reset: string[];
}

export const VARIANTS: Variant[] = [
  {
    name: 'deployed',
    title: 'as deployed: fsync (sync_binlog=1, innodb_flush_log_at_trx_commit=1) + semi-sync',
    set: [],
    reset: [],
  },
  {
    name: 'async',
    title: 'fsync, asynchronous replication (rpl_semi_sync_master_enabled=OFF)',
    set: ['SET GLOBAL rpl_semi_sync_master_enabled = OFF'],
    reset: ['SET GLOBAL rpl_semi_sync_master_enabled = ON'],
  },
  {
    name: 'no-fsync',
    title: 'semi-sync, no fsync (sync_binlog=0, innodb_flush_log_at_trx_commit=2)',
    set: ['SET GLOBAL sync_binlog = 0', 'SET GLOBAL innodb_flush_log_at_trx_commit = 2'],
    reset: ['SET GLOBAL sync_binlog = 1', 'SET GLOBAL innodb_flush_log_at_trx_commit = 1'],
  },
];

export interface VariantResult {
  variant: string;
  inserts: number;
  rows: number;
  /** One INSERT, sent to answered. */
  commitMs: LatencySummary;
  /** Each row, from its scheduled time to its INSERT's answer (waiting for a free connection included). */
  ackMs: LatencySummary;
  /** This process's event-loop delay beyond the 1 ms timer it is sampled with. */
  loopDelayP99Ms: number;
}

/**
 * Row `i` is due at `start + i / rate` and goes to shard `i % shards`; whenever a shard has a free
 * connection, its due rows go out as one INSERT (up to MAX_ROWS), as the broker's writer does.
 */
async function pacedInserts(
  pools: mysql.Pool[],
  table: string,
  rate: number,
  seconds: number,
  size: number,
  connections: number,
): Promise<Omit<VariantResult, 'variant'>> {
  const total = Math.floor(rate * seconds);
  const queues: number[][] = pools.map(() => []);
  const inflight = pools.map(() => 0);
  const commits = new Samples();
  const acks = new Samples();
  const payload = stampedPayload(size, 0);
  const loop = monitorEventLoopDelay({ resolution: 1 });
  let queued = 0;
  let outstanding = 0;
  let failed: unknown;
  const send = (shard: number) => {
    while (queues[shard].length > 0 && inflight[shard] < connections) {
      const scheduled = queues[shard].splice(0, MAX_ROWS);
      inflight[shard]++;
      outstanding++;
      const sent = performance.now();
      queryBytes(pools[shard], insertStatement(table, new Array<string>(scheduled.length).fill(payload)))
        .then(
          () => {
            const now = performance.now();
            commits.push(now - sent);
            for (const at of scheduled) acks.push(now - at);
          },
          (err: unknown) => (failed ??= err),
        )
        .finally(() => {
          inflight[shard]--;
          outstanding--;
          send(shard);
        });
    }
  };
  loop.enable();
  const start = performance.now();
  while (queued < total && failed === undefined) {
    const due = dueBy(performance.now() - start, rate, total);
    for (; queued < due; queued++) queues[queued % pools.length].push(start + (queued * 1000) / rate);
    pools.forEach((_, shard) => send(shard));
    await sleep(1);
  }
  while (outstanding > 0) await sleep(5);
  loop.disable();
  if (failed !== undefined) throw failed;
  return {
    inserts: commits.length,
    rows: acks.length,
    commitMs: commits.summary(),
    ackMs: acks.summary(),
    loopDelayP99Ms: Math.max(0, loop.percentile(99) / 1e6 - 1),
  };
}

export function commitLatencySection(o: {
  date: string;
  machine: string;
  load: [number[], number[]];
  command: string;
  rate: number;
  seconds: number;
  size: number;
  connections: number;
  results: VariantResult[];
}): string {
  const titles = new Map(VARIANTS.map((v) => [v.name, v.title]));
  const load = (l: number[]) => l.map((x) => x.toFixed(1)).join(' / ');
  const ms = (s: LatencySummary) => `${fmtMs(s.p50)} / ${fmtMs(s.p99)} / ${fmtMs(s.max)}`;
  const rows = o.results.map((r) => [
    titles.get(r.variant) ?? r.variant,
    fmtInt(r.inserts),
    (r.rows / Math.max(1, r.inserts)).toFixed(1),
    ms(r.commitMs),
    ms(r.ackMs),
    fmtMs(r.loopDelayP99Ms),
  ]);
  return `## The shards alone: commit latency at the paced load

What the storage gives on this machine with nothing else running: no broker, no readers, no
other client. The floor under the publish-acknowledge latency of the comparison's paced phase.

- Date: ${o.date}
- Machine: ${o.machine}; load average (1 / 5 / 15 min) ${load(o.load[0])} at the start, ${load(o.load[1])} at the end.
- Command: \`${o.command}\`
- Method: 2 shards (primary + semi-sync standby each, the comparison's settings); ${fmtInt(o.rate)} rows/s of
  ${o.size} B offered for ${o.seconds} s, row i due at i / rate and sent to shard i mod 2; whenever one of a
  shard's ${o.connections} connections is free, its due rows go out as one multi-row INSERT (up to ${MAX_ROWS}), as
  the broker's writer sends them. "ack" counts from each row's scheduled time, so waiting for a free
  connection counts. Each configuration below is set on the primaries for its run and put back after.

${markdownTable(
  [
    'shard primaries',
    'INSERTs',
    'rows per INSERT',
    'commit p50 / p99 / max ms',
    'ack p50 / p99 / max ms',
    'benchmark event-loop delay p99 ms',
  ],
  rows,
)}

Raw results: \`${RESULTS_JSON}\`.`;
}

export async function runCommitLatency(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      'commit-latency': { type: 'boolean' },
      rate: { type: 'string', default: '10000' },
      seconds: { type: 'string', default: '8' },
      size: { type: 'string', default: '256' },
      connections: { type: 'string', default: '4' },
      'no-write': { type: 'boolean' },
    },
  });
  const rate = Number(values.rate);
  const seconds = Number(values.seconds);
  const size = Number(values.size);
  const connections = Number(values.connections);
  if (
    !(rate > 0) ||
    !(seconds > 0) ||
    !Number.isInteger(size) ||
    size < MIN_PAYLOAD_BYTES ||
    !(connections >= 1)
  ) {
    console.error(
      'usage: npm run bench -- --commit-latency [--rate 10000] [--seconds 8] [--size 256] [--connections 4] [--no-write]',
    );
    return 2;
  }
  const loadBefore = loadavg();
  const dir = await mkdtemp(join(tmpdir(), 'mysqlmq-commit-'));
  console.log(`==> starting 2 durable shards (primary + semi-sync standby each) on ${PREFIX}.1-4`);
  const shards = await LocalShards.start({ dir, shards: 2, addressPrefix: PREFIX });
  const pools = shards.shards.map((s) =>
    mysql.createPool({
      ...s.primary.endpoint,
      ...shards.secrets.broker,
      database: 'mq',
      connectionLimit: connections,
    }),
  );
  const onPrimaries = (statements: string[]) =>
    Promise.all(
      shards.shards.map((s) =>
        // Root: innodb_flush_log_at_trx_commit is beyond the operator's admin rights (SUPER).
        s.primary.asRoot(async (c) => {
          for (const sql of statements) await c.query(sql);
        }),
      ),
    );
  const results: VariantResult[] = [];
  try {
    for (const [i, variant] of VARIANTS.entries()) {
      const table = messageTable(900_000 + i);
      await onPrimaries([createMessageTableSql(900_000 + i), ...variant.set]);
      try {
        const result = {
          variant: variant.name,
          ...(await pacedInserts(pools, table, rate, seconds, size, connections)),
        };
        results.push(result);
        const { commitMs: c, ackMs: a } = result;
        console.log(
          `${variant.title}: ${fmtInt(result.inserts)} INSERTs; commit p50/p99/max ${fmtMs(c.p50)}/${fmtMs(c.p99)}/${fmtMs(c.max)} ms; ` +
            `ack p50/p99/max ${fmtMs(a.p50)}/${fmtMs(a.p99)}/${fmtMs(a.max)} ms; event-loop delay p99 ${fmtMs(result.loopDelayP99Ms)} ms`,
        );
      } finally {
        await onPrimaries([...variant.reset, `DROP TABLE IF EXISTS ${table}`]);
      }
    }
  } finally {
    await Promise.all(pools.map((p) => p.end()));
    await shards.stop();
    await rm(dir, { recursive: true, force: true });
  }
  if (values['no-write']) return 0;
  const report = {
    date: new Date().toISOString(),
    machine: describeMachine(),
    load: [loadBefore, loadavg()] as [number[], number[]],
    command: `npm run bench -- ${argv.join(' ')}`,
    rate,
    seconds,
    size,
    connections,
    results,
  };
  await writeBenchmarkJson(RESULTS_JSON, report);
  await writeBenchmarkSection('commit-latency', commitLatencySection(report));
  console.log(`wrote docs/benchmarks.md (section commit-latency) and ${RESULTS_JSON}`);
  return 0;
}
