#!/usr/bin/env node
/**
 * `npm run bench:failover`: kill -9 a shard primary's mariadbd again and again under load, on the
 * embedded control plane with the real operator, and measure (issue 4, "Speed"): the time until
 * every broker reads the shard from its standby, the time until the shard is back to normal after
 * the process returns, acknowledged messages lost and publishes failed. Writes the section
 * "Failover (issue 4)" of docs/benchmarks.md and docs/bench-results/failover.json.
 *
 * Flags: --trials N (20), --rate MSG_PER_S (1380, all producers together), --producers (3),
 * --groups (3), --poll-ms (25), --jitter MS (1000: a random wait of up to this before each kill),
 * --pause S (5, after a trial is back to normal), --min-uptime S (21:
 * the victim's mariadbd runs this long first, so the kubelet's crash back-off stays at 1 s),
 * --timeout S (180 per trial), --prefix (127.0.45: pod IPs), --keep (keep the state dir), --no-write,
 * --report-only (rewrite the docs/benchmarks.md section from docs/bench-results/failover.json, no run).
 *
 * --faults all|LIST (comma-separated, from failover/faults.ts FAULTS): fault injection instead,
 * --trials N per fault (default 10 there), --after S (5: load after the cluster is steady again);
 * writes the section "Fault injection under load (issue 13)" and docs/bench-results/failover-faults.json.
 * Ctrl-C stops everything (operator, kubelet with every mariadbd and broker, control plane).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { describeMachine, writeBenchmarkJson, writeBenchmarkSection } from './machine.js';
import {
  type FailoverReport,
  RESULTS_JSON,
  SECTION,
  consoleSummary,
  markdownSection,
  summarize,
  trialLine,
} from './failover/report.js';
import { LOCAL_CLUSTER_SPEC, clusterManifest } from '../local/cluster-manifest.js';
import { eventReasons } from '../local/kubectl.js';
import { Stack } from './failover/stack.js';
import { type TrialContext, type TrialRecord, clusterSteady, runTrial } from './failover/trial.js';
import { Workload } from './failover/workload.js';
import { sleep } from '../../src/common/deadline.js';
import { waitFor } from '../local/wait.js';
import {
  FAULTS,
  FAULTS_JSON,
  FAULTS_SECTION,
  type Fault,
  type FaultReport,
  type FaultTrial,
  faultsMarkdown,
  runFaultTrial,
  summarizeFaults,
} from './failover/faults.js';

const NS = 'bench';
const NAME = 'fo';
const BROKER_PORT = 8080;
const GROUPS = ['billing', 'audit', 'search', 'archive', 'ledger', 'alerts'];

const { values } = parseArgs({
  options: {
    trials: { type: 'string', default: '20' },
    rate: { type: 'string', default: '1380' },
    producers: { type: 'string', default: '3' },
    groups: { type: 'string', default: '3' },
    'poll-ms': { type: 'string', default: '25' },
    jitter: { type: 'string', default: '1000' },
    pause: { type: 'string', default: '5' },
    'min-uptime': { type: 'string', default: '21' },
    timeout: { type: 'string', default: '180' },
    prefix: { type: 'string', default: '127.0.45' },
    keep: { type: 'boolean', default: false },
    'no-write': { type: 'boolean', default: false },
    'report-only': { type: 'boolean', default: false },
    faults: { type: 'string' },
    after: { type: 'string', default: '5' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log(
    'usage: npm run bench:failover -- [--trials 20] [--rate 1380] [--producers 3] [--groups 3]\n' +
      '         [--poll-ms 25] [--jitter 1000] [--pause 5] [--min-uptime 21] [--timeout 180] [--prefix 127.0.45] [--keep] [--no-write]\n' +
      '       npm run bench:failover -- --report-only   (rewrite the docs section from the JSON)\n' +
      `       npm run bench:failover -- --faults all|${FAULTS.join(',')} [--trials 10] [--after 5]`,
  );
  process.exit(0);
}
const FAULT_LIST: Fault[] | undefined = values.faults
  ? values.faults === 'all'
    ? [...FAULTS]
    : values.faults.split(',').map((f) => {
        if (!(FAULTS as readonly string[]).includes(f))
          throw new Error(`unknown fault ${f}: one of ${FAULTS.join(', ')}`);
        return f as Fault;
      })
  : undefined;
const TRIALS = Number(FAULT_LIST && !process.argv.includes('--trials') ? '10' : values.trials);
const RATE = Number(values.rate);
const PRODUCERS = Number(values.producers);
const GROUP_COUNT = Math.min(Number(values.groups), GROUPS.length);
const POLL_MS = Math.min(50, Number(values['poll-ms']));
const PAUSE_S = Number(values.pause);
const JITTER_MS = Number(values.jitter);
const MIN_UPTIME_S = Number(values['min-uptime']);
const TIMEOUT_S = Number(values.timeout);

const CLUSTER_YAML = clusterManifest(NS, NAME, LOCAL_CLUSTER_SPEC);

const started = Date.now();
const elapsed = () => `${Math.round((Date.now() - started) / 1000)}s`.padStart(6);
const step = (text: string) => console.log(`==> ${elapsed()}  ${text}`);

class Interrupted extends Error {}
let interrupted = false;
let signals = 0;
const onSignal = (signal: NodeJS.Signals) => {
  signals++;
  if (signals === 1) {
    interrupted = true;
    console.log(`==> ${signal}: stopping (again to exit at once)`);
  } else {
    console.log(`==> ${signal} again: exiting now (exit handlers kill what is left)`);
    process.exit(130);
  }
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
process.on('SIGHUP', onSignal);
const checkpoint = () => {
  if (interrupted) throw new Interrupted();
};

/** Waits until `fn` holds, checking every `everyMs`; throws on timeout or Ctrl-C. */
async function waitUntil(
  what: string,
  fn: () => Promise<boolean> | boolean,
  timeoutMs: number,
  everyMs = 250,
) {
  await waitFor(what, fn, timeoutMs, everyMs, checkpoint);
}

/** Sum of a Prometheus metric's samples whose line matches `filter`. */
function metricSum(text: string, name: string, filter: RegExp = /.*/): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || !filter.test(line)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== '{' && rest[0] !== ' ') continue;
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(v)) sum += v;
  }
  return sum;
}

async function brokerMetrics(urls: string[]): Promise<{ publish5xx: number; writeRetries: number }> {
  let publish5xx = 0;
  let writeRetries = 0;
  for (const url of urls) {
    try {
      const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
      publish5xx += metricSum(
        text,
        'mq_broker_http_requests_total',
        /route="POST \/v1\/topics\/messages".*code="5/,
      );
      writeRetries += metricSum(text, 'mq_broker_write_retries_total');
    } catch {
      // a broker that does not answer counts nothing
    }
  }
  return { publish5xx, writeRetries };
}

async function tail(file: string, lines = 20): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

async function runFaults(
  stack: Stack,
  brokers: string[],
  token: string,
  groups: string[],
  faults: Fault[],
  stateDir: string,
): Promise<void> {
  const ctx = {
    stack,
    namespace: NS,
    cluster: NAME,
    brokers,
    token,
    pollMs: POLL_MS,
    timeoutMs: TIMEOUT_S * 1000,
    workload: { ackedCount: 0, failedCount: 0, takeMaxLatency: () => 0 },
    interrupted: () => interrupted,
    groups,
    producers: PRODUCERS,
    rate: RATE,
    afterSeconds: Number(values.after),
    log: step,
    waitUntil,
  };
  const trials: FaultTrial[] = [];
  // Written after each fault, so an interrupted run keeps the faults it finished.
  const write = async () => {
    const report: FaultReport = {
      date: new Date().toISOString(),
      machine: describeMachine(),
      command: `npm run bench:failover -- --faults ${values.faults} --trials ${TRIALS}`,
      durationSeconds: (Date.now() - started) / 1000,
      options: { trialsPerFault: TRIALS, rate: RATE, producers: PRODUCERS, groups: groups.length },
      cluster:
        'one MessageQueueCluster: 2 shards (primary + semi-sync standby `mariadbd` each, durability required), 2 brokers, ' +
        '`failover.probePeriodSeconds: 1`, `failover.failureThreshold: 3`',
      summary: summarizeFaults(trials),
      trials,
    };
    await writeFile(join(stateDir, 'failover-faults.json'), JSON.stringify(report, null, 2) + '\n');
    if (!values['no-write']) {
      await writeBenchmarkJson(FAULTS_JSON, report);
      await writeBenchmarkSection(FAULTS_SECTION, faultsMarkdown(report));
    }
    return report;
  };
  for (const fault of faults) {
    step(`${fault}: ${TRIALS} trial(s)`);
    for (let n = 1; n <= TRIALS; n++) {
      const t = await runFaultTrial(ctx, fault, n, MIN_UPTIME_S * 1000);
      trials.push(t);
      console.log(
        `    ${elapsed()}  ${fault} #${n}: acked ${t.acked}, failed ${t.failed}, lost ${t.lost}, ` +
          `redelivered ${JSON.stringify(t.redelivered)} (in flight ${JSON.stringify(t.inFlightAtFault)}), ` +
          `longest gap ${JSON.stringify(t.longestGapMs)} ms, steady after ${t.recoveredMs ?? '-'} ms, load ${t.load1}` +
          (t.error ? `; ERROR ${t.error}` : ''),
      );
      checkpoint();
      await sleep(PAUSE_S * 1000);
    }
    await write();
  }
  const report = await write();
  console.log(JSON.stringify(report.summary, null, 2));
  if (!values['no-write']) step(`wrote docs/benchmarks.md and ${FAULTS_JSON}`);
}

async function main(): Promise<number> {
  if (values['report-only']) {
    const report = JSON.parse(await readFile(RESULTS_JSON, 'utf8')) as FailoverReport;
    await writeBenchmarkSection(SECTION, markdownSection(report));
    console.log(consoleSummary(report));
    return 0;
  }
  const stateDir = await mkdtemp(join(tmpdir(), 'mysqlmq-bench-failover-'));
  const stack = new Stack({
    stateDir,
    addressPrefix: values.prefix!,
    namespace: NS,
    cluster: NAME,
    operatorLogLevel: 'info',
    step,
  });
  let workload: Workload | undefined;
  let exitCode = 0;
  try {
    await stack.start(checkpoint);
    step(
      `creating MessageQueueCluster ${NS}/${NAME}: 2 shards, 2 brokers, probePeriodSeconds 1, failureThreshold 3`,
    );
    await stack.kubectl(['apply', '-f', '-'], CLUSTER_YAML);
    let last = '';
    await waitUntil(
      'the cluster to be Ready',
      () => {
        const s = stack.cluster?.status;
        const ready = s?.conditions?.find((c) => c.type === 'Ready');
        const line = `phase ${s?.phase ?? '-'}, shards ${s?.shardsReady ?? 0}/${s?.shardsTotal ?? '?'}, brokers ${s?.brokersReady ?? 0}; Ready=${ready?.status ?? '-'}`;
        if (line !== last) console.log(`    ${elapsed()}  ${line}`);
        last = line;
        return ready?.status === 'True' && stack.brokerUrls(BROKER_PORT).length === 2;
      },
      10 * 60_000,
      500,
    );
    const brokers = stack.brokerUrls(BROKER_PORT);
    const token = await stack.adminToken();
    const groups = GROUPS.slice(0, GROUP_COUNT);
    if (FAULT_LIST) {
      await runFaults(stack, brokers, token, groups, FAULT_LIST, stateDir);
      return 0;
    }
    step(
      `starting the load: ${PRODUCERS} producers offering ${RATE} msg/s in all, consumer groups ${groups.join(', ')}; brokers ${brokers.join(', ')}`,
    );
    workload = await Workload.start({
      brokers,
      token,
      topic: 'failover',
      groups,
      producers: PRODUCERS,
      rate: RATE,
      tag: 'fo',
    });
    const w = workload;
    await waitUntil('messages to flow', () => w.ackedCount > RATE, 60_000);

    const ctx: TrialContext = {
      stack,
      namespace: NS,
      cluster: NAME,
      brokers,
      token,
      pollMs: POLL_MS,
      timeoutMs: TIMEOUT_S * 1000,
      workload: w,
      interrupted: () => interrupted,
    };
    const trials: TrialRecord[] = [];
    step(`${TRIALS} trials, alternating shards (times in seconds after the kill)`);
    for (let n = 1; n <= TRIALS; n++) {
      const shard = `shard-${(n - 1) % 2}`;
      // The cluster at rest, and the victim's mariadbd up long enough for a 1 s crash back-off.
      await waitUntil(
        'the cluster to be steady (Ready, shards Healthy, brokers on the primaries)',
        () => clusterSteady(ctx),
        300_000,
        200,
      );
      const victim = stack.cluster?.status?.shards?.find((s) => s.name === shard)?.primaryPod ?? '';
      await waitUntil(
        `${victim}'s mariadbd to run ${MIN_UPTIME_S} s`,
        () => {
          const c = stack.pods.get(victim)?.status?.containerStatuses?.find((x) => x.name === 'mariadb');
          const since = Date.parse(c?.state?.running?.startedAt ?? '');
          return Number.isFinite(since) && Date.now() - since >= MIN_UPTIME_S * 1000;
        },
        120_000,
        200,
      );
      // A random moment, so that the kills sample every phase of the operator's 1 s tick (waiting
      // for whole seconds of uptime would otherwise lock them to one phase).
      await sleep(Math.random() * JITTER_MS);
      checkpoint();
      const t = await runTrial(ctx, n, shard);
      trials.push(t);
      console.log(`    ${elapsed()}  ${trialLine(t, TRIALS)}`);
      checkpoint();
      await sleep(PAUSE_S * 1000);
    }

    step('stopping the load; waiting until every group has every acknowledged message');
    const result = await workload.stop();
    workload = undefined;
    const opMetrics = await stack.operatorMetrics();
    const eventCounts: Record<string, number> = {};
    try {
      for (const r of await eventReasons((args) => stack.kubectl(args), NS, NAME))
        eventCounts[r] = (eventCounts[r] ?? 0) + 1;
    } catch {
      // reported as none
    }
    const report: FailoverReport = {
      date: new Date().toISOString(),
      machine: describeMachine(),
      command: `npm run bench:failover${TRIALS === 20 ? '' : ` -- --trials ${TRIALS}`}`,
      durationSeconds: (Date.now() - started) / 1000,
      options: {
        trials: TRIALS,
        rate: RATE,
        producers: PRODUCERS,
        groups: GROUP_COUNT,
        pollMs: POLL_MS,
        jitterMs: JITTER_MS,
        pauseSeconds: PAUSE_S,
        minUptimeSeconds: MIN_UPTIME_S,
        addressPrefix: values.prefix!,
      },
      cluster:
        'one MessageQueueCluster: 2 shards (primary + semi-sync standby `mariadbd` each, durability required), 2 brokers, ' +
        '`failover.probePeriodSeconds: 1`, `failover.failureThreshold: 3`',
      summary: summarize(trials),
      workload: result,
      operatorMetrics: {
        failoversTotal: metricSum(opMetrics, 'mysqlmq_failovers_total'),
        failoverSecondsSum: metricSum(opMetrics, 'mysqlmq_failover_duration_seconds_sum'),
        failoverSecondsCount: metricSum(opMetrics, 'mysqlmq_failover_duration_seconds_count'),
      },
      brokerMetrics: await brokerMetrics(brokers),
      eventReasons: eventCounts,
      trials,
    };
    console.log(`\n${consoleSummary(report)}\n`);
    await writeFile(join(stateDir, 'failover.json'), JSON.stringify(report, null, 2) + '\n');
    if (!values['no-write']) {
      await writeBenchmarkJson(RESULTS_JSON, report);
      await writeBenchmarkSection(SECTION, markdownSection(report));
      step(`wrote docs/benchmarks.md and ${RESULTS_JSON}`);
    }
    if (report.summary.failedTrials > 0 || result.lost > 0 || result.failedPublishes > 0) exitCode = 1;
  } catch (err) {
    if (err instanceof Interrupted) exitCode = 130;
    else {
      console.error(`==> failed: ${(err as Error).stack}`);
      console.error(
        `==> the operator's last log lines (${stack.operatorLog}):\n${await tail(stack.operatorLog)}`,
      );
      exitCode = 1;
    }
  } finally {
    if (workload) await Promise.race([workload.stop(1000).catch(() => undefined), sleep(15_000)]);
    await stack.stop();
    // A failed run keeps its logs (operator.log, kubelet.log, kubelet/run/*/error.log) for diagnosis.
    if (values.keep || exitCode === 1) step(`state kept in ${stateDir}`);
    else await rm(stateDir, { recursive: true, force: true });
    step('stopped');
  }
  return exitCode;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`==> failed: ${(err as Error).message}`);
    process.exit(1);
  },
);
