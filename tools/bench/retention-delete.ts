/**
 * `npm run bench -- --retention-delete`: how to delete old messages without stalling producers.
 * One durable shard (primary + semi-sync standby). A paced producer commits multi-row INSERTs, as
 * the broker does, while the oldest rows of a full message table are removed by each strategy in
 * turn: DELETE in primary-key ranges of a few sizes (row image FULL and MINIMAL) and, on a table
 * range-partitioned by id, DROP PARTITION. For each: producer commit p50/p99/max while deleting
 * (against a quiet window just before), how long the deletion took, binlog bytes it wrote and how
 * long the standby took to apply it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import mysql from 'mysql2/promise';
import { insertStatement } from '../../src/broker/queue-store.js';
import { queryBytes } from '../../src/shard/statement-bytes.js';
import { LocalShards } from '../local/cluster.js';
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

/** Apart from the tests (127.0.2x), the demo (127.0.30/31) and the other benchmarks (127.0.40-52). */
const PREFIX = '127.0.54';
const RESULTS_JSON = 'docs/bench-results/retention-delete.json';

interface Strategy {
  name: string;
  title: string;
  partitioned: boolean;
  /** Rows per DELETE statement (one transaction each). */
  chunkRows?: number;
  rowImage?: 'FULL' | 'MINIMAL';
}

const STRATEGIES: Strategy[] = [
  {
    name: 'delete-1k-full',
    title: 'DELETE 1,000-id ranges, row image FULL',
    partitioned: false,
    chunkRows: 1000,
    rowImage: 'FULL',
  },
  {
    name: 'delete-1k',
    title: 'DELETE 1,000-id ranges, row image MINIMAL',
    partitioned: false,
    chunkRows: 1000,
    rowImage: 'MINIMAL',
  },
  {
    name: 'delete-10k',
    title: 'DELETE 10,000-id ranges, row image MINIMAL',
    partitioned: false,
    chunkRows: 10_000,
    rowImage: 'MINIMAL',
  },
  { name: 'drop-partition', title: 'DROP PARTITION (tables RANGE-partitioned by id)', partitioned: true },
];

export interface StrategyResult {
  strategy: string;
  title: string;
  rowsDeleted: number;
  deleteSeconds: number;
  rowsPerSecond: number;
  binlogBytes: number;
  standbyApplySeconds: number;
  quiet: LatencySummary;
  during: LatencySummary;
  producerRowsPerSecondQuiet: number;
  producerRowsPerSecondDuring: number;
}

function ms(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

async function binlogBytes(db: mysql.Pool): Promise<number> {
  const [rows] = await db.query('SHOW BINARY LOGS');
  return (rows as { File_size: number }[]).reduce((n, r) => n + Number(r.File_size), 0);
}

async function gtid(db: mysql.Pool, variable: string): Promise<string> {
  const [rows] = await db.query(`SELECT @@${variable} AS g`);
  return String((rows as { g: string }[])[0].g);
}

/** Paced producer: `batch` rows every `periodMs`; latency of each commit. */
class Producer {
  private stopped = false;
  private samples = new Samples();
  private rows = 0;
  private windowStart = performance.now();
  private done: Promise<void>;

  constructor(db: mysql.Pool, table: string, payload: string, batch: number, periodMs: number) {
    const payloads = Array.from({ length: batch }, () => payload);
    this.done = (async () => {
      let next = performance.now();
      while (!this.stopped) {
        const t = process.hrtime.bigint();
        await queryBytes(db, insertStatement(table, payloads));
        this.samples.push(ms(t));
        this.rows += batch;
        next += periodMs;
        const wait = next - performance.now();
        if (wait > 0) await sleep(wait);
        else next = performance.now();
      }
    })();
  }

  /** Latency and throughput since the last call. */
  window(): { latency: LatencySummary; rowsPerSecond: number } {
    const latency = this.samples.summary();
    const secs = (performance.now() - this.windowStart) / 1000;
    const rowsPerSecond = this.rows / secs;
    this.samples = new Samples();
    this.rows = 0;
    this.windowStart = performance.now();
    return { latency, rowsPerSecond };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}

async function fill(db: mysql.Pool, table: string, rows: number, payload: string): Promise<void> {
  const batch = Array.from({ length: 2000 }, () => payload);
  for (let n = 0; n < rows; n += batch.length) await queryBytes(db, insertStatement(table, batch));
}

async function runStrategy(
  primary: mysql.Pool,
  standby: mysql.Pool,
  s: Strategy,
  opts: {
    rows: number;
    deleteRows: number;
    size: number;
    partitionRows: number;
    quietMs: number;
    windowMs: number;
  },
): Promise<StrategyResult> {
  const table = `mq.bench_${s.name.replace(/-/g, '_')}`;
  await primary.query(`DROP TABLE IF EXISTS ${table}`);
  const partitions = Math.ceil((opts.rows * 2) / opts.partitionRows);
  const partitioning = s.partitioned
    ? ` PARTITION BY RANGE (id) (${Array.from(
        { length: partitions },
        (_, i) => `PARTITION p${i} VALUES LESS THAN (${(i + 1) * opts.partitionRows + 1})`,
      ).join(', ')}, PARTITION pmax VALUES LESS THAN MAXVALUE)`
    : '';
  await primary.query(
    `CREATE TABLE ${table} (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
       published_at BIGINT NOT NULL, payload MEDIUMBLOB NOT NULL) ENGINE=InnoDB${partitioning}`,
  );
  const payload = 'x'.repeat(opts.size);
  await fill(primary, table, opts.rows, payload);

  const producer = new Producer(primary, table, payload, 100, 10);
  await sleep(opts.quietMs);
  const quiet = producer.window();

  const conn = await primary.getConnection();
  const started = process.hrtime.bigint();
  // The deletion's units (statements) spread evenly over the window, as a retention job that keeps
  // up with the produce rate spreads them; the window is as long as the quiet one before it.
  const units = s.partitioned
    ? Math.floor(opts.deleteRows / opts.partitionRows)
    : opts.deleteRows / s.chunkRows!;
  const slotMs = opts.windowMs / units;
  let deleted = 0;
  let busyMs = 0;
  try {
    if (!s.partitioned) await conn.query(`SET SESSION binlog_row_image = '${s.rowImage}'`);
    for (let i = 0; i < units; i++) {
      const wait = i * slotMs - ms(started);
      if (wait > 0) await sleep(wait);
      const t = process.hrtime.bigint();
      if (s.partitioned) {
        await conn.query(`ALTER TABLE ${table} DROP PARTITION p${i}`);
        deleted += opts.partitionRows;
      } else {
        const [res] = await conn.query(`DELETE FROM ${table} WHERE id <= ?`, [(i + 1) * s.chunkRows!]);
        deleted += (res as mysql.ResultSetHeader).affectedRows;
      }
      busyMs += ms(t);
    }
  } finally {
    conn.release();
  }
  const left = opts.windowMs - ms(started);
  if (left > 0) await sleep(left);
  const during = producer.window();
  await producer.stop();
  // What the standby applies after the primary is done: wait for it to reach the primary's position.
  const target = await gtid(primary, 'gtid_binlog_pos');
  const applyStart = process.hrtime.bigint();
  await standby.query('SELECT MASTER_GTID_WAIT(?, 600) AS r', [target]);
  const applyMs = ms(applyStart);
  // Binlog bytes per deleted row, measured on one more unit with nothing else writing.
  const binlogBefore = await binlogBytes(primary);
  const extra = await primary.getConnection();
  let extraRows = 0;
  try {
    if (s.partitioned) {
      await extra.query(`ALTER TABLE ${table} DROP PARTITION p${units}`);
      extraRows = opts.partitionRows;
    } else {
      await extra.query(`SET SESSION binlog_row_image = '${s.rowImage}'`);
      for (let i = 0; i < opts.partitionRows / s.chunkRows!; i++) {
        const through = opts.deleteRows + (i + 1) * s.chunkRows!;
        const [res] = await extra.query(`DELETE FROM ${table} WHERE id <= ?`, [through]);
        extraRows += (res as mysql.ResultSetHeader).affectedRows;
      }
    }
  } finally {
    extra.release();
  }
  const binlogPerRow = ((await binlogBytes(primary)) - binlogBefore) / extraRows;
  await primary.query(`DROP TABLE ${table}`);
  return {
    strategy: s.name,
    title: s.title,
    rowsDeleted: deleted,
    deleteSeconds: busyMs / 1000,
    rowsPerSecond: (deleted * 1000) / busyMs,
    binlogBytes: Math.round(binlogPerRow * deleted),
    standbyApplySeconds: applyMs / 1000,
    quiet: quiet.latency,
    during: during.latency,
    producerRowsPerSecondQuiet: quiet.rowsPerSecond,
    producerRowsPerSecondDuring: during.rowsPerSecond,
  };
}

export async function runRetentionDelete(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      'retention-delete': { type: 'boolean' },
      rows: { type: 'string', default: '400000' },
      delete: { type: 'string', default: '200000' },
      size: { type: 'string', default: '256' },
      'partition-rows': { type: 'string', default: '50000' },
      'window-seconds': { type: 'string', default: '10' },
    },
  });
  const opts = {
    rows: Number(values.rows),
    deleteRows: Number(values.delete),
    size: Number(values.size),
    partitionRows: Number(values['partition-rows']),
    quietMs: Number(values['window-seconds']) * 1000,
    windowMs: Number(values['window-seconds']) * 1000,
  };
  const loadAtStart = loadNow();
  const dir = await mkdtemp(join(tmpdir(), 'mysqlmq-retention-delete-'));
  console.log('==> starting 1 durable shard (primary + semi-sync standby)');
  const shards = await LocalShards.start({ dir, shards: 1, addressPrefix: PREFIX });
  const pool = (e: { host: string; port: number }) =>
    mysql.createPool({ ...e, ...shards.secrets.admin, connectionLimit: 4 });
  const primary = pool(shards.shards[0].primary.endpoint);
  const standby = pool(shards.shards[0].standby.endpoint);
  const results: StrategyResult[] = [];
  try {
    for (const s of STRATEGIES) {
      console.log(`==> ${s.title}`);
      const r = await runStrategy(primary, standby, s, opts);
      console.log(
        `    ${fmtInt(r.rowsDeleted)} rows in ${r.deleteSeconds.toFixed(1)} s; producer p99 ${fmtMs(r.quiet.p99)} -> ${fmtMs(r.during.p99)} ms; binlog ${fmtInt(r.binlogBytes)} B; standby ${r.standbyApplySeconds.toFixed(1)} s`,
      );
      results.push(r);
    }
  } finally {
    await primary.end();
    await standby.end();
    await shards.destroy();
    await rm(dir, { recursive: true, force: true });
  }
  const machine = describeMachine();
  const load = describeLoad(loadAtStart, loadNow());
  await writeBenchmarkJson(RESULTS_JSON, { machine, load, date: new Date().toISOString(), opts, results });
  const table = markdownTable(
    [
      'strategy',
      'rows deleted',
      'time in DELETE/ALTER',
      'rows/s',
      'binlog written',
      'standby apply after',
      'producer commit p50 / p99 / max quiet (ms)',
      'same while deleting (ms)',
    ],
    results.map((r) => [
      r.title,
      fmtInt(r.rowsDeleted),
      `${r.deleteSeconds.toFixed(2)} s`,
      fmtInt(r.rowsPerSecond),
      `${(r.binlogBytes / 2 ** 20).toFixed(1)} MiB`,
      `${r.standbyApplySeconds.toFixed(2)} s`,
      `${fmtMs(r.quiet.p50)} / ${fmtMs(r.quiet.p99)} / ${fmtMs(r.quiet.max)}`,
      `${fmtMs(r.during.p50)} / ${fmtMs(r.during.p99)} / ${fmtMs(r.during.max)}`,
    ]),
  );
  await writeBenchmarkSection(
    'retention-delete',
    `## Retention: deleting old messages (issue 10)

\`npm run bench -- --retention-delete\` (${machine}; ${new Date().toISOString().slice(0, 10)}; ${load}). One durable shard (primary + semi-sync
standby, sync_binlog=1). A message table of ${fmtInt(opts.rows)} rows of ${opts.size} B; the oldest
${fmtInt(opts.deleteRows)} are removed, their statements spread evenly over ${opts.windowMs / 1000} s (as a retention
job keeping up with the producers spreads them), while a paced producer commits 100-row INSERTs every
10 ms (as the broker batches); its commit latency over those ${opts.windowMs / 1000} s is compared with the
${opts.windowMs / 1000} s just before. "binlog written" is what the deletion added to the primary's binlog (the
measured on one more partition's worth of rows deleted with nothing else writing); "standby apply after" is how long the standby still needed once the
primary was done. Raw results: \`${RESULTS_JSON}\`.

${table}
`,
  );
  return 0;
}
