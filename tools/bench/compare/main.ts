import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { describeMachine } from '../machine.js';
import { type PhaseOptions, Progress, measure } from './harness.js';
import { MIN_PAYLOAD_BYTES } from './payload.js';
import { runGrowth } from './growth.js';
import { runProfile } from './profile.js';
import { consoleSummary, writeReport } from './report.js';
import type { CompareReport, RunResult, SystemInfo } from './results.js';
import { type BenchSystem, SkipSystem } from './system.js';
import { CeilingSystem } from './systems/ceiling.js';
import { SharedShards } from './systems/cluster.js';
import { MYSQLMQ_DEFAULTS, MysqlmqSystem } from './systems/mysqlmq.js';
import { NatsSystem } from './systems/nats.js';
import { RabbitMqSystem } from './systems/rabbitmq.js';
import { RabbitMqStreamSystem } from './systems/rabbitmq-stream.js';
import { RedisSystem } from './systems/redis.js';
import { targetChecks } from './table.js';

export const ALL_SYSTEMS = ['mysqlmq', 'ceiling', 'rabbitmq-stream', 'rabbitmq', 'nats', 'redis'] as const;

const USAGE = `Usage: npm run bench -- --compare [options]

Runs mysqlmq, the multi-row INSERT ceiling on the same shards, RabbitMQ, NATS JetStream and Redis
Streams one after another on this machine and writes docs/benchmarks.md (section "compare") and
docs/bench-results/compare.json.

  --sizes LIST             message sizes in bytes (default 256,1024)
  --systems LIST           any of ${ALL_SYSTEMS.join(',')} (default all)
  --groups N               consumer groups (default 10)
  --messages N             full-load produce stops after N acknowledged messages (default 200000)
  --produce-seconds S      ... or after S seconds (default 10)
  --consume-seconds S      time allowed for the groups to read the backlog (default 20)
  --window N               publishes outstanding at full load (default 16000)
  --rate N                 offered load of the paced phase, msg/s (default 10000)
  --paced-seconds S        length of the paced phase (default 5)
  --drain-seconds S        after the paced producer: time allowed for last acks and deliveries (default 5)
  --broker-node-args=ARGS  extra node arguments for the mysqlmq brokers, space-separated
                           (with '=': e.g. --broker-node-args=--max-semi-space-size=4)
  --growth                 instead: mysqlmq alone at 1, 2 and 4 shards, 100 groups and with
                           messages stored per shard (section "growth")
  --stored N               --growth: messages stored per shard in its last case (default 1000000)
  --profile DIR            instead: profile the mysqlmq brokers (node --cpu-prof) under produce
                           and consume load, profiles and a summary under DIR (outside the repo)
  --no-write               print only; leave docs/ alone`;

function positive(value: string, name: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number, got "${value}"`);
  return n;
}

export interface CompareOptions extends PhaseOptions {
  sizes: number[];
  systems: string[];
  brokerNodeArgs: string[];
  profile?: string;
  growth: boolean;
  storedPerShard: number;
  write: boolean;
}

export function parseCompareArgs(argv: string[]): CompareOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      compare: { type: 'boolean' },
      sizes: { type: 'string', default: '256,1024' },
      systems: { type: 'string', default: ALL_SYSTEMS.join(',') },
      groups: { type: 'string', default: '10' },
      messages: { type: 'string', default: '200000' },
      'produce-seconds': { type: 'string', default: '10' },
      'consume-seconds': { type: 'string', default: '20' },
      window: { type: 'string', default: '16000' },
      rate: { type: 'string', default: '10000' },
      'paced-seconds': { type: 'string', default: '5' },
      'drain-seconds': { type: 'string', default: '5' },
      'broker-node-args': { type: 'string', default: '' },
      profile: { type: 'string' },
      growth: { type: 'boolean' },
      stored: { type: 'string', default: '1000000' },
      'no-write': { type: 'boolean' },
      help: { type: 'boolean' },
    },
  });
  if (values.help) return 'help';
  const sizes = values.sizes.split(',').map((s) => Math.round(positive(s.trim(), 'sizes')));
  const small = sizes.find((s) => s < MIN_PAYLOAD_BYTES);
  if (small !== undefined)
    throw new Error(`--sizes: ${small} is below the ${MIN_PAYLOAD_BYTES}-byte minimum`);
  const systems = values.systems.split(',').map((s) => s.trim());
  const unknown = systems.filter((s) => !(ALL_SYSTEMS as readonly string[]).includes(s));
  if (unknown.length)
    throw new Error(`--systems: unknown ${unknown.join(', ')} (known: ${ALL_SYSTEMS.join(', ')})`);
  return {
    sizes,
    // Always in the fixed order: the ceiling reuses mysqlmq's shards after the brokers stopped.
    systems: ALL_SYSTEMS.filter((s) => systems.includes(s)),
    groups: Math.round(positive(values.groups, 'groups')),
    maxMessages: Math.round(positive(values.messages, 'messages')),
    produceMs: positive(values['produce-seconds'], 'produce-seconds') * 1000,
    consumeMs: positive(values['consume-seconds'], 'consume-seconds') * 1000,
    window: Math.round(positive(values.window, 'window')),
    rate: positive(values.rate, 'rate'),
    pacedMs: positive(values['paced-seconds'], 'paced-seconds') * 1000,
    drainMs: positive(values['drain-seconds'], 'drain-seconds') * 1000,
    brokerNodeArgs: values['broker-node-args'].split(/\s+/).filter(Boolean),
    profile: values.profile,
    growth: values.growth ?? false,
    storedPerShard: Math.round(positive(values.stored, 'stored')),
    write: !values['no-write'],
  };
}

function makeSystem(name: string, shards: SharedShards, o: CompareOptions): BenchSystem {
  switch (name) {
    case 'mysqlmq':
      return new MysqlmqSystem(shards, { ...MYSQLMQ_DEFAULTS, brokerNodeArgs: o.brokerNodeArgs });
    case 'ceiling':
      return new CeilingSystem(shards);
    case 'rabbitmq-stream':
      return new RabbitMqStreamSystem();
    case 'rabbitmq':
      return new RabbitMqSystem();
    case 'nats':
      return new NatsSystem();
    case 'redis':
      return new RedisSystem();
    default:
      throw new Error(`unknown system ${name}`);
  }
}

/** `npm run bench -- --compare`: returns the process exit code. */
export async function runCompare(argv: string[]): Promise<number> {
  let o: CompareOptions | 'help';
  try {
    o = parseCompareArgs(argv);
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (o === 'help') {
    console.log(USAGE);
    return 0;
  }
  if (o.profile) return runProfile(o, o.profile);
  if (o.growth) return runGrowth(o);

  const started = Date.now();
  const loadAtStart = loadavg();
  const command = `npm run bench -- --compare${argv
    .filter((a) => a !== '--compare')
    .map((a) => ` ${a}`)
    .join('')}`;
  const machine = describeMachine();
  console.log(`==> ${command}`);
  console.log(`    ${machine}`);
  const progress = new Progress();
  const shards = new SharedShards();
  const infos: SystemInfo[] = [];
  const results: RunResult[] = [];
  const stopSignals = () => process.exit(130);
  process.once('SIGINT', stopSignals);
  try {
    for (const name of o.systems) {
      const system = makeSystem(name, shards, o);
      const info: SystemInfo = {
        name,
        title: system.title,
        version: '',
        durability: system.durability,
        setup: system.setup,
      };
      infos.push(info);
      console.log(`==> ${system.title}`);
      try {
        await system.start((line) => console.log(`    ${line}`));
        info.version = system.version();
        console.log(`    ${info.version}; durability: ${system.durability}`);
      } catch (err) {
        info.skipped = err instanceof SkipSystem ? err.message : `failed to start: ${(err as Error).message}`;
        console.log(`    SKIPPED ${system.title}: ${info.skipped}`);
        await system.stop().catch(() => undefined);
        continue;
      }
      try {
        for (const size of o.sizes) {
          try {
            results.push(await measure(system, size, o, progress));
          } catch (err) {
            console.log(`    ${system.title} at ${size} B failed: ${(err as Error).stack}`);
            info.skipped = `${info.skipped ? `${info.skipped}; ` : ''}${size} B failed: ${(err as Error).message}`;
          }
        }
      } finally {
        await system
          .stop()
          .catch((err) => console.log(`    stopping ${system.title}: ${(err as Error).message}`));
      }
    }
  } finally {
    process.off('SIGINT', stopSignals);
    await shards.stop();
  }
  const report: CompareReport = {
    date: new Date(started).toISOString(),
    machine,
    clientNodeArgs: process.execArgv.filter((a) => a.startsWith('--max-')),
    command,
    options: {
      sizes: o.sizes,
      systems: o.systems,
      groups: o.groups,
      messages: o.maxMessages,
      produceSeconds: o.produceMs / 1000,
      consumeSeconds: o.consumeMs / 1000,
      window: o.window,
      rate: o.rate,
      pacedSeconds: o.pacedMs / 1000,
      drainSeconds: o.drainMs / 1000,
      brokerNodeArgs: o.brokerNodeArgs,
    },
    systems: infos,
    results,
    targets: targetChecks(results),
    durationSeconds: (Date.now() - started) / 1000,
    loadAverage: { start: loadAtStart, end: loadavg() },
  };
  console.log('');
  console.log(consoleSummary(report));
  if (o.write) {
    await writeReport(report);
    console.log(`==> wrote docs/benchmarks.md (section "compare") and docs/bench-results/compare.json`);
  }
  return 0;
}
