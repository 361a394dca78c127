/**
 * `npm run bench -- --tls`: publish throughput through the brokers with TLS off and on, side by
 * side in one run. One pair of durable shards, two broker processes started alike except that one
 * serves HTTPS (a certificate from the operator's own code, src/common/certificates.ts); rounds
 * alternate between them, so whatever else runs on the machine slows both alike. Besides messages
 * per second, each round measures the CPU the broker, the shards' mariadbd and the client (this
 * process) spent per 1,000 messages: what TLS costs, whatever else the machine is doing.
 *
 * `npm run bench -- --tls --mysql`: the same between MariaDB without and with TLS: two stacks of
 * two shards each, alike except that one stack's instances require TLS (`spec.mysql.tls`: the
 * broker's connections and replication encrypted), each with a plain HTTP broker.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BROKER_NODE_OPTIONS } from '../../src/api/node-options.js';
import { Producer } from '../../src/client/index.js';
import { issueCa, issueServingCertificate } from '../../src/common/certificates.js';
import { BrokerProcess } from '../local/broker-process.js';
import { LocalShards } from '../local/cluster.js';
import { fmtInt, markdownTable } from './compare/table.js';
import {
  describeLoad,
  describeMachine,
  loadNow,
  writeBenchmarkJson,
  writeBenchmarkSection,
} from './machine.js';

/** The address ranges of these benchmarks; nothing else runs there. */
const PREFIX = '127.0.140';
const MYSQL_TLS_PREFIX = '127.0.143';
const MODES = ['off', 'on'] as const;
type Mode = (typeof MODES)[number];

/** One side of the comparison: a broker and the shards behind it. */
interface Stack {
  label: string;
  broker: BrokerProcess;
  /** The CA a client verifies the broker with (HTTPS). */
  ca?: string;
  storagePids: number[];
}

interface Round {
  round: number;
  mode: Mode;
  messages: number;
  seconds: number;
  perSecond: number;
  brokerCpuMsPer1000: number;
  storageCpuMsPer1000: number;
  clientCpuMsPer1000: number;
}

/** What is compared: TLS between the clients and the brokers, or between the brokers and MariaDB. */
interface Comparison {
  section: string;
  json: string;
  title: string;
  setup: string;
  rowLabel: Record<Mode, string>;
}

const COMPARISONS: Record<'broker' | 'mysql', Comparison> = {
  broker: {
    section: 'tls',
    json: 'docs/bench-results/tls.json',
    title: 'Brokers with TLS off and on, side by side (issue 14)',
    setup: `2 durable shards (primary + semi-sync standby each, \`sync_binlog=1\`), two broker
  processes started alike except \`--tls-cert/--tls-key\` on one; SDK producers with keep-alive
  connections (one handshake per connection, then only record encryption) in this process;
  rounds alternate which broker goes first.`,
    rowLabel: { off: 'plain HTTP', on: 'HTTPS (ECDSA P-256 certificate)' },
  },
  mysql: {
    section: 'mysql-tls',
    json: 'docs/bench-results/mysql-tls.json',
    title: 'MariaDB with TLS off and on, side by side (issue 14)',
    setup: `two stacks, each 2 durable shards (primary + semi-sync standby, \`sync_binlog=1\`) and
  one plain HTTP broker, alike except that one stack's instances require TLS as under
  \`spec.mysql.tls\` (\`require_secure_transport\`, an ECDSA P-256 certificate from the operator's
  code; the broker's pooled connections and replication with \`MASTER_SSL=1\` encrypted); SDK
  producers in this process; rounds alternate which stack goes first.`,
    rowLabel: { off: 'MariaDB without TLS', on: 'MariaDB requiring TLS (broker and replication)' },
  },
};

/** CPU time (user + system) of a process in ms, from /proc (Linux; clock ticks of 10 ms). */
function processCpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after "pid (comm) ".
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

const clientCpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

async function produce(
  url: string,
  ca: string | undefined,
  topic: string,
  messages: number,
  producers: number,
  value: string,
) {
  await Promise.all(
    Array.from({ length: producers }, async (_, p) => {
      const producer = new Producer({ brokers: [url], ca, batchMessages: 1000, maxInflight: 4, lingerMs: 2 });
      const share = Math.floor(messages / producers) + (p < messages % producers ? 1 : 0);
      const window: Promise<unknown>[] = [];
      for (let i = 0; i < share; i++) {
        window.push(producer.send(topic, value));
        if (window.length >= 4000) await Promise.all(window.splice(0));
      }
      await Promise.all(window);
    }),
  );
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

export async function runTlsCompare(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      tls: { type: 'boolean' },
      mysql: { type: 'boolean' },
      messages: { type: 'string', default: '100000' },
      rounds: { type: 'string', default: '5' },
      size: { type: 'string', default: '256' },
      producers: { type: 'string', default: '4' },
      'no-write': { type: 'boolean' },
    },
  });
  const messages = Number(values.messages);
  const rounds = Number(values.rounds);
  const size = Number(values.size);
  const producers = Number(values.producers);
  const comparison = COMPARISONS[values.mysql ? 'mysql' : 'broker'];
  const loadAtStart = loadNow();
  const dir = await mkdtemp(join(tmpdir(), 'mysqlmq-bench-tls-'));
  const started: { stacks: Record<Mode, Stack>; stop: () => Promise<void> } = values.mysql
    ? await mysqlStacks(dir)
    : await brokerStacks(dir);
  const { stacks } = started;
  const value = 'x'.repeat(size);
  const results: Round[] = [];
  try {
    for (const mode of MODES) {
      await new Producer({ brokers: [stacks[mode].broker.url], ca: stacks[mode].ca }).createTopic(
        `tls-bench-${mode}`,
      );
    }
    for (let round = 1; round <= rounds; round++) {
      // Alternate which goes first: neither always gets the warmer (or busier) half of a round.
      const order = round % 2 ? MODES : ([...MODES].reverse() as Mode[]);
      for (const mode of order) {
        const stack = stacks[mode];
        const brokerCpu = processCpuMs(stack.broker.pid!);
        const storageCpu = sum(stack.storagePids.map(processCpuMs));
        const clientCpu = clientCpuMs();
        const began = performance.now();
        await produce(stack.broker.url, stack.ca, `tls-bench-${mode}`, messages, producers, value);
        const seconds = (performance.now() - began) / 1000;
        const per1000 = (ms: number) => Math.round((ms / messages) * 10000) / 10;
        const r: Round = {
          round,
          mode,
          messages,
          seconds: Math.round(seconds * 100) / 100,
          perSecond: Math.round(messages / seconds),
          brokerCpuMsPer1000: per1000(processCpuMs(stack.broker.pid!) - brokerCpu),
          storageCpuMsPer1000: per1000(sum(stack.storagePids.map(processCpuMs)) - storageCpu),
          clientCpuMsPer1000: per1000(clientCpuMs() - clientCpu),
        };
        results.push(r);
        console.log(
          `    round ${round} ${stack.label}: ${fmtInt(r.perSecond)} msg/s; CPU per 1,000 messages: broker ${r.brokerCpuMsPer1000} ms, mariadbd ${r.storageCpuMsPer1000} ms, client ${r.clientCpuMsPer1000} ms`,
        );
      }
    }
  } finally {
    await started.stop();
    await rm(dir, { recursive: true, force: true });
  }
  const report = {
    date: new Date().toISOString(),
    machine: describeMachine(),
    load: describeLoad(loadAtStart, loadNow()),
    command: `npm run bench -- --tls${values.mysql ? ' --mysql' : ''} --messages ${messages} --rounds ${rounds} --size ${size} --producers ${producers}`,
    sizeBytes: size,
    rounds: results,
  };
  console.log(JSON.stringify(report, null, 2));
  if (!values['no-write']) {
    await writeBenchmarkJson(comparison.json, report);
    await writeBenchmarkSection(comparison.section, section(comparison, report));
    console.log(`==> wrote docs/benchmarks.md (section ${comparison.section})`);
  }
  return 0;
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const mariadbPids = (shards: LocalShards) => shards.shards.flatMap((s) => [s.primary.pid!, s.standby.pid!]);

/** One pair of durable shards behind two brokers, plain HTTP and HTTPS. */
async function brokerStacks(dir: string) {
  console.log('==> starting 2 durable shards and 2 brokers (one plain HTTP, one HTTPS)');
  const shards = await LocalShards.start({ dir, shards: 2, addressPrefix: PREFIX });
  const routingFile = join(dir, 'routing.json');
  await BrokerProcess.writeRouting(routingFile, shards.routing());
  const httpsHost = `${PREFIX}.112`;
  const ca = await issueCa('bench CA', 1);
  const serving = await issueServingCertificate(ca, httpsHost, { dnsNames: [], ipAddresses: [httpsHost] }, 1);
  await writeFile(join(dir, 'tls.crt'), serving.certPem);
  await writeFile(join(dir, 'tls.key'), serving.keyPem);
  const common = { port: 8080, routingFile, db: shards.secrets.broker, nodeArgs: [...BROKER_NODE_OPTIONS] };
  const plain = await BrokerProcess.start({ ...common, host: `${PREFIX}.111` });
  const https = await BrokerProcess.start({
    ...common,
    host: httpsHost,
    tls: { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), ca: ca.certPem },
  });
  const storagePids = mariadbPids(shards);
  return {
    stacks: {
      off: { label: 'plain HTTP', broker: plain, storagePids },
      on: { label: 'HTTPS', broker: https, ca: ca.certPem, storagePids },
    },
    stop: async () => {
      await Promise.all([plain.stop(), https.stop()]);
      await shards.stop();
    },
  };
}

/** Two stacks of 2 durable shards and a plain HTTP broker each: MariaDB without and with TLS. */
async function mysqlStacks(dir: string) {
  console.log('==> starting 2 stacks of 2 durable shards and a broker (MariaDB without TLS, with TLS)');
  const serverName = 'mysql.bench.mysqlmq';
  const ca = await issueCa('bench CA', 1);
  const serving = await issueServingCertificate(
    ca,
    serverName,
    { dnsNames: [serverName], ipAddresses: [] },
    1,
  );
  const files = {
    certFile: join(dir, 'mysql-tls.crt'),
    keyFile: join(dir, 'mysql-tls.key'),
    caFile: join(dir, 'mysql-ca.crt'),
  };
  await writeFile(files.certFile, serving.certPem);
  await writeFile(files.keyFile, serving.keyPem, { mode: 0o600 });
  await writeFile(files.caFile, ca.certPem);
  const [plainShards, tlsShards] = await Promise.all([
    LocalShards.start({ dir: join(dir, 'off'), shards: 2, addressPrefix: PREFIX }),
    LocalShards.start({
      dir: join(dir, 'on'),
      shards: 2,
      addressPrefix: MYSQL_TLS_PREFIX,
      tls: { files, client: { ca: ca.certPem, serverName } },
    }),
  ]);
  const broker = async (
    shards: LocalShards,
    prefix: string,
    mysqlTls?: { caFile: string; serverName: string },
  ) => {
    const routingFile = join(dir, `routing-${prefix}.json`);
    await BrokerProcess.writeRouting(routingFile, shards.routing());
    return BrokerProcess.start({
      port: 8080,
      host: `${prefix}.111`,
      routingFile,
      db: shards.secrets.broker,
      nodeArgs: [...BROKER_NODE_OPTIONS],
      ...(mysqlTls ? { mysqlTls } : {}),
    });
  };
  const [off, on] = await Promise.all([
    broker(plainShards, PREFIX),
    broker(tlsShards, MYSQL_TLS_PREFIX, { caFile: files.caFile, serverName }),
  ]);
  return {
    stacks: {
      off: { label: 'MariaDB without TLS', broker: off, storagePids: mariadbPids(plainShards) },
      on: { label: 'MariaDB with TLS', broker: on, storagePids: mariadbPids(tlsShards) },
    },
    stop: async () => {
      await Promise.all([off.stop(), on.stop()]);
      await Promise.all([plainShards.stop(), tlsShards.stop()]);
    },
  };
}

function section(
  c: Comparison,
  r: { date: string; machine: string; load: string; command: string; sizeBytes: number; rounds: Round[] },
): string {
  const of = (mode: Mode) => r.rounds.filter((x) => x.mode === mode);
  const med = (
    mode: Mode,
    key: 'perSecond' | 'brokerCpuMsPer1000' | 'storageCpuMsPer1000' | 'clientCpuMsPer1000',
  ) => median(of(mode).map((x) => x[key]));
  const percent = (a: number, b: number) => `${Math.round((a / b) * 100)}%`;
  const rows = MODES.map((mode) => [
    c.rowLabel[mode],
    of(mode)
      .map((x) => fmtInt(x.perSecond))
      .join(' / '),
    fmtInt(med(mode, 'perSecond')),
    String(med(mode, 'brokerCpuMsPer1000')),
    String(med(mode, 'storageCpuMsPer1000')),
    String(med(mode, 'clientCpuMsPer1000')),
  ]);
  return `## ${c.title}

- Date: ${r.date}
- Machine: ${r.machine}; ${r.load}. Whatever else ran on the machine slowed both rows of a
  round alike; compare the two rows of one run.
- Command: \`${r.command}\`
- Setup: ${c.setup}

${markdownTable(
  [
    'stack',
    `acknowledged ${r.sizeBytes}-byte messages/s, per round`,
    'median',
    'broker CPU ms per 1,000 messages (median)',
    'mariadbd CPU ms per 1,000 messages, all 4 (median)',
    'client CPU ms per 1,000 messages (median)',
  ],
  rows,
)}

${[
  `With TLS the median throughput was ${percent(med('on', 'perSecond'), med('off', 'perSecond'))} of the plain stack's,`,
  `the broker's CPU per message ${percent(med('on', 'brokerCpuMsPer1000'), med('off', 'brokerCpuMsPer1000'))},`,
  `the mariadbd processes' ${percent(med('on', 'storageCpuMsPer1000'), med('off', 'storageCpuMsPer1000'))}`,
  `and the client's ${percent(med('on', 'clientCpuMsPer1000'), med('off', 'clientCpuMsPer1000'))}.`,
].join(' ')} A throughput difference smaller than the spread between rounds of one row is the
machine's noise, not TLS; on a busy machine the CPU columns are the steadier measure of what
encryption costs.

Raw result: \`${c.json}\`.`;
}
