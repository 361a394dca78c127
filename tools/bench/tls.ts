/**
 * `npm run bench -- --tls`: publish throughput through the brokers with TLS off and on, side by
 * side in one run. One pair of durable shards, two broker processes started alike except that one
 * serves HTTPS (a certificate from the operator's own code, src/common/certificates.ts); rounds
 * alternate between them, so both see the same noise of a shared machine. Besides messages per
 * second, each round measures the CPU the broker and the client (this process) spent per 1,000
 * messages: what TLS costs, whatever else the machine is doing.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BROKER_NODE_OPTIONS } from '../../src/api/node-options.js';
import { Producer } from '../../src/client/index.js';
import { issueCa, issueServingCertificate } from '../../src/common/certificates.js';
import { BrokerProcess } from '../local/broker-process.js';
import { LocalShards } from '../local/cluster.js';
import { fmtInt, markdownTable } from './compare/table.js';
import { describeMachine, writeBenchmarkJson, writeBenchmarkSection } from './machine.js';

const RESULTS_JSON = 'docs/bench-results/tls.json';
/** The address range of the TLS tests; nothing else runs there. */
const PREFIX = '127.0.140';
const MODES = ['http', 'https'] as const;
type Mode = (typeof MODES)[number];

interface Round {
  round: number;
  mode: Mode;
  messages: number;
  seconds: number;
  perSecond: number;
  brokerCpuMsPer1000: number;
  clientCpuMsPer1000: number;
}

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
  const loadAtStart = loadavg()[0]!;
  const dir = await mkdtemp(join(tmpdir(), 'mysqlmq-bench-tls-'));
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
  const brokers: Record<Mode, BrokerProcess> = {
    http: await BrokerProcess.start({ ...common, host: `${PREFIX}.111` }),
    https: await BrokerProcess.start({
      ...common,
      host: httpsHost,
      tls: { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), ca: ca.certPem },
    }),
  };
  const caOf = (mode: Mode) => (mode === 'https' ? ca.certPem : undefined);
  const value = 'x'.repeat(size);
  const results: Round[] = [];
  try {
    for (const mode of MODES) {
      await new Producer({ brokers: [brokers[mode].url], ca: caOf(mode) }).createTopic(`tls-bench-${mode}`);
    }
    for (let round = 1; round <= rounds; round++) {
      // Alternate which goes first: neither always gets the warmer (or busier) half of a round.
      const order = round % 2 ? MODES : ([...MODES].reverse() as Mode[]);
      for (const mode of order) {
        const broker = brokers[mode];
        const brokerCpu = processCpuMs(broker.pid!);
        const clientCpu = clientCpuMs();
        const started = performance.now();
        await produce(broker.url, caOf(mode), `tls-bench-${mode}`, messages, producers, value);
        const seconds = (performance.now() - started) / 1000;
        const r: Round = {
          round,
          mode,
          messages,
          seconds: Math.round(seconds * 100) / 100,
          perSecond: Math.round(messages / seconds),
          brokerCpuMsPer1000: Math.round(((processCpuMs(broker.pid!) - brokerCpu) / messages) * 10000) / 10,
          clientCpuMsPer1000: Math.round(((clientCpuMs() - clientCpu) / messages) * 10000) / 10,
        };
        results.push(r);
        console.log(
          `    round ${round} ${mode}: ${fmtInt(r.perSecond)} msg/s; CPU per 1,000 messages: broker ${r.brokerCpuMsPer1000} ms, client ${r.clientCpuMsPer1000} ms`,
        );
      }
    }
  } finally {
    await Promise.all(MODES.map((m) => brokers[m].stop()));
    await shards.stop();
    await rm(dir, { recursive: true, force: true });
  }
  const report = {
    date: new Date().toISOString(),
    machine: describeMachine(),
    command: `npm run bench -- --tls --messages ${messages} --rounds ${rounds} --size ${size} --producers ${producers}`,
    sizeBytes: size,
    loadAverage: [loadAtStart, loadavg()[0]!].map((x) => Math.round(x * 10) / 10),
    rounds: results,
  };
  console.log(JSON.stringify(report, null, 2));
  if (!values['no-write']) {
    await writeBenchmarkJson(RESULTS_JSON, report);
    await writeBenchmarkSection('tls', section(report));
    console.log('==> wrote docs/benchmarks.md (section tls)');
  }
  return 0;
}

function section(r: {
  date: string;
  machine: string;
  command: string;
  sizeBytes: number;
  loadAverage: number[];
  rounds: Round[];
}): string {
  const of = (mode: Mode) => r.rounds.filter((x) => x.mode === mode);
  const med = (mode: Mode, key: 'perSecond' | 'brokerCpuMsPer1000' | 'clientCpuMsPer1000') =>
    median(of(mode).map((x) => x[key]));
  const percent = (a: number, b: number) => `${Math.round((a / b) * 100)}%`;
  const rows = MODES.map((mode) => [
    mode === 'http' ? 'plain HTTP' : 'HTTPS (ECDSA P-256 certificate)',
    of(mode)
      .map((x) => fmtInt(x.perSecond))
      .join(' / '),
    fmtInt(med(mode, 'perSecond')),
    String(med(mode, 'brokerCpuMsPer1000')),
    String(med(mode, 'clientCpuMsPer1000')),
  ]);
  return `## Brokers with TLS off and on, side by side (issue 14)

- Date: ${r.date}
- Machine: ${r.machine}.
  **Shared and busy**: other sessions' tests and builds ran on the same cores (1-minute load
  average ${r.loadAverage.join(' at the start, ')} at the end), so absolute numbers move from run
  to run; compare the two rows of one run.
- Command: \`${r.command}\`
- Setup: 2 durable shards (primary + semi-sync standby each, \`sync_binlog=1\`), two broker
  processes started alike except \`--tls-cert/--tls-key\` on one; SDK producers with keep-alive
  connections (one handshake per connection, then only record encryption) in this process;
  rounds alternate which broker goes first.

${markdownTable(
  [
    'broker',
    `acknowledged ${r.sizeBytes}-byte messages/s, per round`,
    'median',
    'broker CPU ms per 1,000 messages (median)',
    'client CPU ms per 1,000 messages (median)',
  ],
  rows,
)}

${[
  `With TLS the median throughput was ${percent(med('https', 'perSecond'), med('http', 'perSecond'))} of plain HTTP's,`,
  `the broker's CPU per message ${percent(med('https', 'brokerCpuMsPer1000'), med('http', 'brokerCpuMsPer1000'))}`,
  `and the client's ${percent(med('https', 'clientCpuMsPer1000'), med('http', 'clientCpuMsPer1000'))}.`,
].join(' ')} A throughput difference smaller than the spread between rounds of one row is the
machine's noise, not TLS; on a busy machine the CPU columns are the steadier measure of what
encrypting a 1,000-message publish costs.

Raw result: \`${RESULTS_JSON}\`.`;
}
