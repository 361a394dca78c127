#!/usr/bin/env node
/**
 * `npm run bench:switchover`: planned switchovers (annotation `mysqlmq.io/switchover`) again and
 * again under a paced produce/consume load, on the embedded control plane with the real operator.
 * Per trial: how long the shard took no writes (the operator's `status.lastSwitchover
 * .writesPausedMs`: from pushing the routing that pauses its writes to pushing the one that
 * resumes them on the new primary) and the wall time from the annotation to the report. Over the
 * run: acknowledged messages lost, publishes failed, publish-acknowledgement latency. Writes the
 * section "Planned switchover (issue 11)" of docs/benchmarks.md and docs/bench-results/switchover.json.
 *
 * Flags: --trials N (20), --rate MSG_PER_S (1000), --producers (3), --groups (2), --pause S (3),
 * --prefix (127.0.46: pod IPs), --no-write, --report-only (rewrite the section from the JSON).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { LOCAL_CLUSTER_SPEC, clusterManifest } from '../local/cluster-manifest.js';
import { percentile } from './compare/stats.js';
import { Stack } from './failover/stack.js';
import { type TrialContext, clusterSteady } from './failover/trial.js';
import { Workload, type WorkloadResult } from './failover/workload.js';
import { describeMachine, writeBenchmarkJson, writeBenchmarkSection } from './machine.js';
import { sleep } from '../../src/common/deadline.js';

const NS = 'bench';
const NAME = 'so';
const BROKER_PORT = 8080;
const GROUPS = ['billing', 'audit', 'search'];
const RESULTS_JSON = 'docs/bench-results/switchover.json';
const SECTION = 'switchover';

const { values } = parseArgs({
  options: {
    trials: { type: 'string', default: '20' },
    rate: { type: 'string', default: '1000' },
    producers: { type: 'string', default: '3' },
    groups: { type: 'string', default: '2' },
    pause: { type: 'string', default: '3' },
    prefix: { type: 'string', default: '127.0.46' },
    'no-write': { type: 'boolean', default: false },
    'report-only': { type: 'boolean', default: false },
  },
});
const TRIALS = Number(values.trials);
const RATE = Number(values.rate);
const started = Date.now();
const step = (text: string) => console.log(`==> ${Math.round((Date.now() - started) / 1000)}s  ${text}`);

async function waitUntil(what: string, fn: () => Promise<boolean> | boolean, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

export interface SwitchoverTrial {
  trial: number;
  shard: string;
  from: string;
  to: string;
  result: string;
  writesPausedMs: number;
  /** From the annotation to the report in status (includes watch and status-write delays). */
  reportedAfterMs: number;
  message: string;
}

interface SwitchoverReport {
  date: string;
  machine: string;
  command: string;
  options: { trials: number; rate: number; producers: number; groups: number };
  trials: SwitchoverTrial[];
  workload: WorkloadResult;
}

async function runTrial(stack: Stack, n: number, shard: string): Promise<SwitchoverTrial> {
  const asked = new Date().toISOString();
  const t0 = Date.now();
  await stack.kubectl(['annotate', 'mqc', NAME, '-n', NS, '--overwrite', `mysqlmq.io/switchover=${shard}`]);
  await waitUntil(
    `the switchover of ${shard} to be reported`,
    () => {
      const last = stack.cluster?.status?.lastSwitchover;
      return Boolean(last && last.shard === shard && last.time >= asked);
    },
    60_000,
  );
  const last = stack.cluster!.status!.lastSwitchover!;
  return {
    trial: n,
    shard,
    from: last.from,
    to: last.to,
    result: last.result,
    writesPausedMs: last.writesPausedMs,
    reportedAfterMs: Date.now() - t0,
    message: last.message,
  };
}

function markdown(r: SwitchoverReport): string {
  const ok = r.trials.filter((t) => t.result === 'Succeeded');
  const paused = ok.map((t) => t.writesPausedMs).sort((a, b) => a - b);
  const reported = ok.map((t) => t.reportedAfterMs).sort((a, b) => a - b);
  const dist = (v: number[]) =>
    v.length ? `${percentile(v, 50)} / ${percentile(v, 95)} / ${v[v.length - 1]}` : '-';
  const w = r.workload;
  return `## Planned switchover (issue 11)

\`${r.command}\` on ${r.date.slice(0, 10)}, ${r.machine}. One MessageQueueCluster (2 shards, primary +
semi-sync standby each, durability required, 2 brokers) on the embedded control plane with the test
kubelet; ${r.options.producers} producers offering ${r.options.rate} msg/s in all and ${r.options.groups}
consumer groups run throughout. Each trial annotates the cluster with \`mysqlmq.io/switchover\`,
alternating shards (so each shard swaps back and forth), after the cluster is steady again.
Numbers are from a shared 2-core machine under other people's load: noisy.

- Trials: ${r.trials.length}, succeeded ${ok.length}, failed ${r.trials.length - ok.length}.
- Writes paused per switchover (the operator's measure: routing that pauses the shard's writes
  pushed, to routing that resumes them on the new primary pushed), p50 / p95 / max:
  **${dist(paused)} ms**.
- Annotation to report in status (adds the watch, the next 1 s shard tick and the status write),
  p50 / p95 / max: ${dist(reported)} ms.
- Acknowledged messages lost over the whole run: **${w.lost}** (of ${w.acked} acknowledged);
  publishes failed: **${w.failedPublishes}**; publish-acknowledgement latency p50 / p99 / max:
  ${Math.round(w.ackLatencyMs.p50)} / ${Math.round(w.ackLatencyMs.p99)} / ${Math.round(w.ackLatencyMs.max)} ms. Redeliveries per group:
  ${JSON.stringify(w.duplicates)}.

| trial | shard | from → to | result | writes paused ms | reported after ms |
| --- | --- | --- | --- | --- | --- |
${r.trials.map((t) => `| ${t.trial} | ${t.shard} | ${t.from} → ${t.to} | ${t.result} | ${t.writesPausedMs} | ${t.reportedAfterMs} |`).join('\n')}
`;
}

async function main(): Promise<number> {
  if (values['report-only']) {
    const report = JSON.parse(await readFile(RESULTS_JSON, 'utf8')) as SwitchoverReport;
    await writeBenchmarkSection(SECTION, markdown(report));
    return 0;
  }
  const stateDir = await mkdtemp(join(tmpdir(), 'mysqlmq-bench-switchover-'));
  const stack = new Stack({
    stateDir,
    addressPrefix: values.prefix!,
    namespace: NS,
    cluster: NAME,
    operatorLogLevel: 'info',
    step,
  });
  let workload: Workload | undefined;
  try {
    await stack.start(() => undefined);
    await stack.kubectl(['apply', '-f', '-'], clusterManifest(NS, NAME, LOCAL_CLUSTER_SPEC));
    await waitUntil(
      'the cluster to be Ready',
      () =>
        stack.cluster?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true &&
        stack.brokerUrls(BROKER_PORT).length === 2,
      10 * 60_000,
    );
    const brokers = stack.brokerUrls(BROKER_PORT);
    const token = await stack.adminToken();
    const groups = GROUPS.slice(0, Number(values.groups));
    workload = await Workload.start({
      brokers,
      token,
      topic: 'switchover',
      groups,
      producers: Number(values.producers),
      rate: RATE,
      tag: 'so',
    });
    const w = workload;
    await waitUntil('messages to flow', () => w.ackedCount > RATE, 60_000);
    const ctx: TrialContext = {
      stack,
      namespace: NS,
      cluster: NAME,
      brokers,
      token,
      pollMs: 25,
      timeoutMs: 60_000,
      workload: w,
      interrupted: () => false,
    };
    const trials: SwitchoverTrial[] = [];
    for (let n = 1; n <= TRIALS; n++) {
      await waitUntil('the cluster to be steady', () => clusterSteady(ctx), 300_000);
      const t = await runTrial(stack, n, `shard-${(n - 1) % 2}`);
      trials.push(t);
      step(`trial ${n}/${TRIALS}: ${t.shard} ${t.result}, writes paused ${t.writesPausedMs} ms`);
      await sleep(Number(values.pause) * 1000);
    }
    step('stopping the load; waiting until every group has every acknowledged message');
    const result = await workload.stop();
    workload = undefined;
    const report: SwitchoverReport = {
      date: new Date().toISOString(),
      machine: describeMachine(),
      command: `npm run bench:switchover${TRIALS === 20 ? '' : ` -- --trials ${TRIALS}`}`,
      options: { trials: TRIALS, rate: RATE, producers: Number(values.producers), groups: groups.length },
      trials,
      workload: result,
    };
    console.log(markdown(report));
    await writeFile(join(stateDir, 'switchover.json'), JSON.stringify(report, null, 2) + '\n');
    if (!values['no-write']) {
      await writeBenchmarkJson(RESULTS_JSON, report);
      await writeBenchmarkSection(SECTION, markdown(report));
    }
    const failed =
      trials.some((t) => t.result !== 'Succeeded') || result.lost > 0 || result.failedPublishes > 0;
    return failed ? 1 : 0;
  } finally {
    if (workload) await Promise.race([workload.stop(1000).catch(() => undefined), sleep(15_000)]);
    await stack.stop();
    await rm(stateDir, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`==> failed: ${(err as Error).stack}`);
    process.exit(1);
  },
);
