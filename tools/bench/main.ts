#!/usr/bin/env node
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BROKER_NODE_OPTIONS } from '../../src/api/node-options.js';
import { Consumer, Producer } from '../../src/client/index.js';
import { BrokerProcess } from '../local/broker-process.js';
import { LocalShards } from '../local/cluster.js';
import {
  BENCHMARKS_MD,
  describeMachine,
  residentMiB,
  writeBenchmarkJson,
  writeBenchmarkSection,
} from './machine.js';

// `npm run bench -- --compare`: mysqlmq beside the INSERT ceiling, RabbitMQ, NATS and Redis.
if (process.argv.includes('--compare')) {
  const { runCompare } = await import('./compare/main.js');
  process.exit(await runCompare(process.argv.slice(2)));
}

// `npm run bench -- --retention-delete`: DELETE in id ranges against DROP PARTITION, under load.
if (process.argv.includes('--retention-delete')) {
  const { runRetentionDelete } = await import('./retention-delete.js');
  process.exit(await runRetentionDelete(process.argv.slice(2)));
}

// `npm run bench -- --retention-soak`: disk and producer latency with and without retention, side by side.
if (process.argv.includes('--retention-soak')) {
  const { runRetentionSoak } = await import('./retention-soak.js');
  process.exit(await runRetentionSoak(process.argv.slice(2)));
}

// `npm run bench -- --tls [--mysql]`: publish throughput with TLS off and on (brokers, or MariaDB), side by side.
if (process.argv.includes('--tls')) {
  const { runTlsCompare } = await import('./tls.js');
  process.exit(await runTlsCompare(process.argv.slice(2)));
}

// `npm run bench -- --commit-latency`: the shards alone, paced INSERTs at the comparison's load.
if (process.argv.includes('--commit-latency')) {
  const { runCommitLatency } = await import('./commit-latency.js');
  process.exit(await runCommitLatency(process.argv.slice(2)));
}

/**
 * `npm run bench`: produce and consume through the brokers of a local 2-shard cluster with durable
 * settings (sync_binlog=1, innodb_flush_log_at_trx_commit=1, lossless semi-sync to a standby), then
 * record the numbers in docs/benchmarks.md.
 */
const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '300000' },
    size: { type: 'string', default: '256' },
    groups: { type: 'string', default: '10' },
    producers: { type: 'string', default: '4' },
    'no-write': { type: 'boolean' },
  },
});
const MESSAGES = Number(values.messages);
const SIZE = Number(values.size);
const GROUPS = Number(values.groups);
const PRODUCERS = Number(values.producers);
const PREFIX = '127.0.40';

function progress(label: string, done: number, total: number, started: number): void {
  const secs = (performance.now() - started) / 1000;
  const line = `    ${label}: ${done}/${total} (${Math.round(done / secs)}/s)`;
  // A terminal gets one updating line; a log gets one line per tick.
  process.stderr.write(process.stderr.isTTY ? `\r${line}      ` : `${line}\n`);
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mysqlmq-bench-'));
  console.log(`==> starting 2 durable shards (primary + semi-sync standby) and 2 brokers`);
  const shards = await LocalShards.start({ dir, shards: 2, addressPrefix: PREFIX });
  const routingFile = join(dir, 'routing.json');
  await BrokerProcess.writeRouting(routingFile, shards.routing());
  const brokers = await Promise.all(
    [0, 1].map((i) =>
      BrokerProcess.start({
        host: `${PREFIX}.${101 + i}`,
        port: 8080,
        routingFile,
        db: shards.secrets.broker,
        nodeArgs: [...BROKER_NODE_OPTIONS],
      }),
    ),
  );
  const urls = brokers.map((b) => b.url);
  try {
    const topic = 'bench';
    const admin = new Producer({ brokers: urls });
    await admin.createTopic(topic);
    const value = 'x'.repeat(SIZE);

    console.log(`==> producing ${MESSAGES} messages of ${SIZE} bytes with ${PRODUCERS} SDK producers`);
    let produced = 0;
    let peakRss = 0;
    const produceStart = performance.now();
    const ticker = setInterval(() => {
      progress('acknowledged', produced, MESSAGES, produceStart);
      peakRss = Math.max(peakRss, ...brokers.map((b) => residentMiB(b.pid!)));
    }, 500);
    await Promise.all(
      Array.from({ length: PRODUCERS }, async (_, p) => {
        const producer = new Producer({ brokers: urls, batchMessages: 1000, maxInflight: 4, lingerMs: 2 });
        const share = Math.floor(MESSAGES / PRODUCERS) + (p < MESSAGES % PRODUCERS ? 1 : 0);
        const window: Promise<unknown>[] = [];
        for (let i = 0; i < share; i++) {
          window.push(producer.send(topic, value).then(() => produced++));
          if (window.length >= 4000) await Promise.all(window.splice(0));
        }
        await Promise.all(window);
      }),
    );
    clearInterval(ticker);
    const produceSecs = (performance.now() - produceStart) / 1000;
    progress('acknowledged', produced, MESSAGES, produceStart);
    if (process.stderr.isTTY) process.stderr.write('\n');

    console.log(`==> consuming with ${GROUPS} consumer groups (every group reads every message)`);
    let consumed = 0;
    const total = MESSAGES * GROUPS;
    const consumeStart = performance.now();
    const ticker2 = setInterval(() => {
      progress('delivered', consumed, total, consumeStart);
      peakRss = Math.max(peakRss, ...brokers.map((b) => residentMiB(b.pid!)));
    }, 500);
    await Promise.all(
      Array.from({ length: GROUPS }, async (_, g) => {
        const consumer = new Consumer({
          brokers: urls,
          topic,
          group: `group-${g}`,
          maxMessages: 5000,
          waitMs: 1000,
        });
        let mine = 0;
        while (mine < MESSAGES) {
          const batch = await consumer.poll();
          mine += batch.length;
          consumed += batch.length;
          await consumer.commit();
        }
        await consumer.close();
      }),
    );
    clearInterval(ticker2);
    const consumeSecs = (performance.now() - consumeStart) / 1000;
    progress('delivered', consumed, total, consumeStart);
    if (process.stderr.isTTY) process.stderr.write('\n');

    const result = {
      date: new Date().toISOString(),
      machine: describeMachine(),
      command: `npm run bench -- --messages ${MESSAGES} --size ${SIZE} --groups ${GROUPS} --producers ${PRODUCERS}`,
      messages: MESSAGES,
      sizeBytes: SIZE,
      groups: GROUPS,
      producedPerSecond: Math.round(produced / produceSecs),
      consumedPerSecond: Math.round(consumed / consumeSecs),
      brokerPeakRssMiB: peakRss,
    };
    console.log(JSON.stringify(result, null, 2));
    if (!values['no-write']) await record(result);
  } finally {
    await Promise.all(brokers.map((b) => b.stop()));
    await shards.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

async function record(r: {
  date: string;
  machine: string;
  command: string;
  producedPerSecond: number;
  consumedPerSecond: number;
  brokerPeakRssMiB: number;
  sizeBytes: number;
  groups: number;
  messages: number;
}): Promise<void> {
  await writeBenchmarkJson('docs/bench-results/dataplane.json', r);
  const body = `## Data plane: produce and consume through the brokers

- Date: ${r.date}
- Machine: ${r.machine}
- Command: \`${r.command}\`
- Setup: 2 shards, each a primary and a standby \`mariadbd\` on loopback, \`sync_binlog=1\`,
  \`innodb_flush_log_at_trx_commit=1\`, semi-sync \`AFTER_SYNC\` required; 2 broker processes
  (\`node ${BROKER_NODE_OPTIONS.join(' ')}\`); producers and consumers through the SDK in one client
  process on the same 2 cores.

| measure | result | target (issue 2) | design load |
|---|---|---|---|
| acknowledged ${r.sizeBytes}-byte messages produced per second | ${r.producedPerSecond.toLocaleString('en')} | 20,000 | 1,380 |
| message reads delivered per second across ${r.groups} groups | ${r.consumedPerSecond.toLocaleString('en')} | 138,000 | 13,800 |
| broker resident memory, peak (MiB) | ${r.brokerPeakRssMiB} | | |

Raw result: \`docs/bench-results/dataplane.json\`.`;
  await writeBenchmarkSection('dataplane', body);
  console.log(`==> wrote ${BENCHMARKS_MD}`);
}

main().catch((err) => {
  console.error(`bench failed: ${(err as Error).stack}`);
  process.exit(1);
});
