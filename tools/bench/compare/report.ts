import { writeBenchmarkJson, writeBenchmarkSection } from '../machine.js';
import type { CompareReport } from './results.js';
import {
  CPU_HEADERS,
  RATIO_HEADERS,
  RESULT_HEADERS,
  durabilityRows,
  fmtInt,
  markdownTable,
  cpuRows,
  ratioRows,
  resultRows,
  targetRows,
  textTable,
} from './table.js';

export const RESULTS_JSON = 'docs/bench-results/compare.json';

function titles(report: CompareReport): Map<string, string> {
  return new Map(report.systems.map((s) => [s.name, s.title]));
}

/** The tables printed at the end of a run. */
/** The client process's node options, where the run recorded any. */
function clientArgs(report: CompareReport): string {
  const args = report.clientNodeArgs ?? [];
  return args.length > 0 ? ` (\`node ${args.join(' ')}\`: the clients of every system run in it)` : '';
}

export function consoleSummary(report: CompareReport): string {
  const t = titles(report);
  const skipped = report.systems.filter((s) => s.skipped);
  return [
    `Results (${report.options.rate} msg/s offered for the latency columns; RSS peak of the server processes):`,
    textTable(RESULT_HEADERS, resultRows(report.results, t)),
    '',
    'CPU ms per 1,000 messages:',
    textTable(CPU_HEADERS, cpuRows(report.results, t)),
    '',
    textTable(RATIO_HEADERS, ratioRows(report.results, t)),
    '',
    textTable(['target (issue 5)', 'measured', ''], targetRows(report.targets)),
    ...skipped.map((s) => `skipped ${s.title}: ${s.skipped}`),
  ].join('\n');
}

function loadText(report: CompareReport): string {
  if (!report.loadAverage) return 'not recorded';
  const fmt = (l: number[]) => l.map((x) => x.toFixed(1)).join(' / ');
  return `(1 / 5 / 15 min) ${fmt(report.loadAverage.start)} when the run started, ${fmt(report.loadAverage.end)} when it ended`;
}

/** The docs/benchmarks.md section. */
export function markdownSection(report: CompareReport): string {
  const t = titles(report);
  const o = report.options;
  const ours = report.results.filter((r) => r.system === 'mysqlmq' || r.system === 'ceiling');
  const storage = ours
    .filter((r) => r.rss.storagePeakTotalMiB !== undefined)
    .map((r) => `${t.get(r.system)} ${r.sizeBytes} B: ${fmtInt(r.rss.storagePeakTotalMiB)} MiB`)
    .join('; ');
  const incomplete = report.results.filter((r) => r.consumed.reads < r.consumed.expected);
  const short = report.results.filter((r) => r.paced.delivered < r.paced.expected);
  const errors = report.results.filter((r) => r.errors.length > 0);
  return `## Side by side: mysqlmq, the INSERT ceiling, RabbitMQ, NATS JetStream, Redis Streams

- Date: ${report.date} (the run took ${Math.round(report.durationSeconds)} s)
- Machine: ${report.machine}; everything below ran on it at once: the benchmark client process${clientArgs(report)},
  the servers, and (for mysqlmq) 4 \`mariadbd\`. The machine is shared with other work: load average
  ${loadText(report)}. Repeated runs of the same code on this machine have differed by up to 2-3x in
  throughput and latency when other work ran, much less in CPU time per message.
- Command: \`${report.command}\`
- Method, the same for every system, one system after another, at each message size:
  1. **produced**: acknowledged publishes per second at full load, ${fmtInt(Number(o.window))} publishes outstanding,
     until ${fmtInt(Number(o.messages))} messages or ${o.produceSeconds} s;
  2. **consumed**: then ${o.groups} groups (consumer groups, fanout queues, durable consumers) each
     read that whole backlog; message reads per second summed over the groups (limit ${o.consumeSeconds} s;
     a * marks a run that hit it);
  3. **paced**: on a fresh topic, ${fmtInt(Number(o.rate))} msg/s offered for ${o.pacedSeconds} s while the ${o.groups} groups
     consume. Latencies count from each message's *scheduled* send time (so a stall is not hidden):
     ack = until the publish is acknowledged, e2e = until a group received it (the time stamp rides
     in the payload), over every group's deliveries.
  4. **RSS**: peak resident memory of the server processes (/proc, every 250 ms over all three
     phases): the largest single process and the sum. mysqlmq: its broker processes only (the
     shards' \`mariadbd\` peaked at: ${storage || 'n/a'}); RabbitMQ: \`beam.smp\`; NATS:
     \`nats-server\`; Redis: \`redis-server\`. The ceiling has no broker.
- On 2 cores every system here is bound by CPU shared with the client process (the CPU table
  below shows where it goes; for mysqlmq and the ceiling, the shards' \`mariadbd\` take the most
  per message produced), so each number moves with the machine's load; compare ratios within one
  run only.

### Durability of an acknowledged message

${markdownTable(['system', 'version', 'an acknowledgement means'], durabilityRows(report.systems))}

How each was driven:

${report.systems.map((s) => `- ${s.title}: ${s.setup}.`).join('\n')}

### Results

${markdownTable(RESULT_HEADERS, resultRows(report.results, t))}
${incomplete.length ? `\n\\* the groups did not finish the backlog within ${o.consumeSeconds} s: the rate is what they read in that time.\n` : ''}
${
  short.length
    ? `Paced phase, deliveries short of acknowledged messages x groups when the groups stopped (${o.drainSeconds} s after the
last publish): ${short
        .map(
          (r) =>
            `${t.get(r.system)} ${r.sizeBytes} B: ${fmtInt(r.paced.delivered)} of ${fmtInt(r.paced.expected)}`,
        )
        .join(
          '; ',
        )}. Every reader here, mysqlmq's broker and the ceiling's, stops at a gap in the ids until the lower
transaction commits (see \`src/broker/gaps.ts\`), so a shortfall means the groups had not caught up yet.
`
    : ''
}
CPU time per 1,000 messages, ms (per acknowledged message at full load; per message read in the consume
phase; per acknowledged message in the paced phase, with its deliveries to every group): the server
processes (mysqlmq: both brokers), the storage processes (\`mariadbd\`) and the benchmark client
process. It moves less than throughput with what else the machine runs.

${markdownTable(CPU_HEADERS, cpuRows(report.results, t))}

### mysqlmq compared

Above 1.00x mysqlmq is faster (throughput) or answers sooner (ack p99).

${markdownTable(RATIO_HEADERS, ratioRows(report.results, t))}

### Issue 5's targets

${markdownTable(['target', 'measured', 'result'], targetRows(report.targets))}
${errors.length ? `\nErrors seen: ${errors.map((r) => `${t.get(r.system)} ${r.sizeBytes} B: ${r.errors.join('; ')}`).join(' / ')}\n` : ''}
Raw results: \`${RESULTS_JSON}\`.`.replace(/\n{3,}/g, '\n\n');
}

export async function writeReport(report: CompareReport): Promise<void> {
  await writeBenchmarkJson(RESULTS_JSON, report);
  await writeBenchmarkSection('compare', markdownSection(report));
}
