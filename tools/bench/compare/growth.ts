import mysql from 'mysql2/promise';
import { createTopic, insertMessages } from '../../../src/broker/queue-store.js';
import { connectionOptions } from '../../../src/shard/connection.js';
import {
  describeLoad,
  describeMachine,
  loadNow,
  writeBenchmarkJson,
  writeBenchmarkSection,
} from '../machine.js';
import { Progress, measure } from './harness.js';
import type { CompareOptions } from './main.js';
import type { RunResult } from './results.js';
import { SharedShards } from './systems/cluster.js';
import { MYSQLMQ_DEFAULTS, MysqlmqSystem } from './systems/mysqlmq.js';
import { fmtInt, fmtMs, markdownTable } from './table.js';

/**
 * `npm run bench -- --compare --growth`: mysqlmq alone, the comparison's three phases at each
 * case below, each on fresh shards: how throughput and the tail grow with shards, consumer groups
 * and data already stored. Writes docs/benchmarks.md (section "growth") and its JSON.
 */

interface GrowthCase {
  label: string;
  shards: number;
  groups: number;
  /** Messages inserted into another topic of every shard before the phases. */
  storedPerShard: number;
}

const growthCases = (stored: number): GrowthCase[] => [
  { label: '1 shard, 10 groups', shards: 1, groups: 10, storedPerShard: 0 },
  { label: '2 shards, 10 groups', shards: 2, groups: 10, storedPerShard: 0 },
  { label: '4 shards, 10 groups', shards: 4, groups: 10, storedPerShard: 0 },
  { label: '2 shards, 100 groups', shards: 2, groups: 100, storedPerShard: 0 },
  {
    label: `2 shards, 10 groups, ${fmtInt(stored)} stored per shard`,
    shards: 2,
    groups: 10,
    storedPerShard: stored,
  },
];

const RESULTS_JSON = 'docs/bench-results/growth.json';
const STORED_TOPIC = 'stored';
const STORE_BATCH = 2000;

/** `perShard` messages of `size` bytes in topic "stored" on every shard's primary, as the broker writes them. */
async function store(shards: SharedShards, perShard: number, size: number): Promise<void> {
  const local = await shards.get();
  const payloads = Array.from({ length: STORE_BATCH }, () => 's'.repeat(size));
  await Promise.all(
    local.shards.map(async (shard) => {
      const db = mysql.createPool({
        ...connectionOptions(shard.primary.endpoint, local.secrets.broker),
        connectionLimit: 1,
      });
      try {
        const topicId = await createTopic(db, STORED_TOPIC);
        for (let n = 0; n < perShard; n += STORE_BATCH)
          await insertMessages(db, topicId, payloads.slice(0, Math.min(STORE_BATCH, perShard - n)));
      } finally {
        await db.end();
      }
    }),
  );
}

export async function runGrowth(o: CompareOptions): Promise<number> {
  const loadAtStart = loadNow();
  const started = new Date().toISOString();
  const progress = new Progress();
  const runs: { case: GrowthCase; result: RunResult }[] = [];
  for (const c of growthCases(o.storedPerShard)) {
    for (const size of o.sizes) {
      console.log(`==> ${c.label}, ${size} B`);
      const shards = new SharedShards(c.shards);
      const system = new MysqlmqSystem(shards, { ...MYSQLMQ_DEFAULTS, brokerNodeArgs: o.brokerNodeArgs });
      try {
        if (c.storedPerShard > 0) {
          console.log(`    storing ${fmtInt(c.storedPerShard)} messages per shard`);
          await store(shards, c.storedPerShard, size);
        }
        await system.start((line) => console.log(`    ${line}`));
        runs.push({ case: c, result: await measure(system, size, { ...o, groups: c.groups }, progress) });
      } finally {
        await system.stop().catch(() => undefined);
        await shards.stop();
      }
    }
  }
  const report = {
    date: started,
    machine: describeMachine(),
    load: describeLoad(loadAtStart, loadNow()),
    command: `npm run bench -- --compare --growth --sizes ${o.sizes.join(',')} --stored ${o.storedPerShard}`,
    runs,
  };
  if (o.write) {
    await writeBenchmarkJson(RESULTS_JSON, report);
    await writeBenchmarkSection('growth', growthSection(report, o));
    console.log('==> wrote docs/benchmarks.md (section "growth")');
  }
  return 0;
}

function growthSection(
  r: {
    date: string;
    machine: string;
    load: string;
    command: string;
    runs: { case: GrowthCase; result: RunResult }[];
  },
  o: CompareOptions,
): string {
  const rows = r.runs.map(({ case: c, result: x }) => [
    c.label,
    `${x.sizeBytes} B`,
    fmtInt(x.produced.perSecond),
    `${fmtInt(x.consumed.perSecond)}${x.consumed.reads < x.consumed.expected ? '*' : ''}`,
    `${fmtMs(x.paced.ackMs.p50)} / ${fmtMs(x.paced.ackMs.p99)}`,
    `${fmtMs(x.paced.e2eMs.p50)} / ${fmtMs(x.paced.e2eMs.p99)}`,
    fmtInt(x.rss.peakProcessMiB),
    fmtInt(x.rss.storagePeakTotalMiB),
  ]);
  return `## Growth: shards, consumer groups, stored messages (issue 12)

- Date: ${r.date}; machine: ${r.machine}; ${r.load}.
- Command: \`${r.command}\`
- Each case on fresh shards (primary + semi-sync standby \`mariadbd\` each), 2 broker processes, the
  comparison's phases (section "Side by side" above): full-load produce (${fmtInt(o.window)} outstanding, until
  ${fmtInt(o.maxMessages)} messages or ${o.produceMs / 1000} s), every group reading that backlog (limit ${o.consumeMs / 1000} s; * = hit it),
  then ${fmtInt(o.rate)} msg/s offered for ${o.pacedMs / 1000} s while the groups consume. "Stored": messages
  inserted into another topic of every shard first, so the shards' buffer pool and disk hold them.
  Everything runs on this one machine, so more shards also means more \`mariadbd\` processes on the
  same cores.

${markdownTable(
  [
    'case',
    'size',
    'produced msg/s',
    'consumed reads/s',
    'paced ack p50 / p99 ms',
    'paced e2e p50 / p99 ms',
    'largest broker RSS MiB',
    'mariadbd RSS MiB (all)',
  ],
  rows,
)}

Raw results: \`${RESULTS_JSON}\`.`;
}
