/** Summary, console lines and the docs/benchmarks.md section of the failover benchmark. Pure. */
import { markdownTable, textTable } from '../compare/table.js';
import { percentile } from '../compare/stats.js';
import type { TrialRecord } from './trial.js';
import type { WorkloadResult } from './workload.js';

export const RESULTS_JSON = 'docs/bench-results/failover.json';
export const SECTION = 'failover';

export interface Distribution {
  count: number;
  min: number;
  p50: number;
  p95: number;
  max: number;
}

export interface FailoverReport {
  date: string;
  machine: string;
  command: string;
  durationSeconds: number;
  options: {
    trials: number;
    rate: number;
    producers: number;
    groups: number;
    pollMs: number;
    jitterMs: number;
    pauseSeconds: number;
    minUptimeSeconds: number;
    addressPrefix: string;
  };
  cluster: string;
  summary: {
    trials: number;
    failedTrials: number;
    readsFromStandbyMs: Distribution;
    firstBrokerOnStandbyMs: Distribution;
    brokersStoppedWritingMs: Distribution;
    operatorFailoverMs: Distribution;
    podNotReadyMs: Distribution;
    processRestartedMs: Distribution;
    podReadyMs: Distribution;
    normalAfterRestartMs: Distribution;
    normalMs: Distribution;
    /** Per trial: pod NotReady in the API → the operator's decision → the last broker applied it. */
    notReadyToDecisionMs: Distribution;
    decisionToBrokersMs: Distribution;
    /** Per trial, the way back: restart → pod Ready → reads on the primary → writes → normal. */
    restartToReadyMs: Distribution;
    readyToReadsBackMs: Distribution;
    readsBackToWritesMs: Distribution;
    writesToNormalMs: Distribution;
    signals: Record<string, number>;
    failoverEventsWritten: number;
    maxPollGapMs: number;
    standbyResolutionMs: Distribution;
    maxAckLatencyDuringTrialsMs: number;
    load1: { min: number; max: number };
  };
  workload: WorkloadResult;
  operatorMetrics: { failoversTotal: number; failoverSecondsSum: number; failoverSecondsCount: number };
  brokerMetrics: { publish5xx: number; writeRetries: number };
  eventReasons: Record<string, number>;
  trials: TrialRecord[];
}

export function distribution(values: (number | undefined)[]): Distribution {
  const sorted = values.filter((v): v is number => v !== undefined).sort((a, b) => a - b);
  return {
    count: sorted.length,
    min: sorted.length ? sorted[0] : Number.NaN,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    max: sorted.length ? sorted[sorted.length - 1] : Number.NaN,
  };
}

const diff = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined ? undefined : a - b;

export function summarize(trials: TrialRecord[]): FailoverReport['summary'] {
  const signals: Record<string, number> = {};
  for (const t of trials) signals[t.signal] = (signals[t.signal] ?? 0) + 1;
  const d = (k: keyof TrialRecord) => distribution(trials.map((t) => t[k] as number | undefined));
  return {
    trials: trials.length,
    failedTrials: trials.filter((t) => t.error).length,
    readsFromStandbyMs: d('readsFromStandbyMs'),
    firstBrokerOnStandbyMs: d('firstBrokerOnStandbyMs'),
    brokersStoppedWritingMs: d('brokersStoppedWritingMs'),
    operatorFailoverMs: d('operatorFailoverMs'),
    podNotReadyMs: d('podNotReadyMs'),
    processRestartedMs: d('processRestartedMs'),
    podReadyMs: d('podReadyMs'),
    normalAfterRestartMs: d('normalAfterRestartMs'),
    normalMs: d('normalMs'),
    notReadyToDecisionMs: distribution(trials.map((t) => diff(t.operatorFailoverMs, t.podNotReadyMs))),
    decisionToBrokersMs: distribution(trials.map((t) => diff(t.readsFromStandbyMs, t.operatorFailoverMs))),
    restartToReadyMs: distribution(trials.map((t) => diff(t.podReadyMs, t.processRestartedMs))),
    readyToReadsBackMs: distribution(trials.map((t) => diff(t.operatorReadsBackMs, t.podReadyMs))),
    readsBackToWritesMs: distribution(trials.map((t) => diff(t.operatorRecoveredMs, t.operatorReadsBackMs))),
    writesToNormalMs: distribution(trials.map((t) => diff(t.normalMs, t.operatorRecoveredMs))),
    signals,
    failoverEventsWritten: trials.filter((t) => t.failoverEvent).length,
    maxPollGapMs: Math.max(0, ...trials.map((t) => t.maxPollGapMs)),
    standbyResolutionMs: d('standbyResolutionMs'),
    maxAckLatencyDuringTrialsMs: Math.max(0, ...trials.map((t) => t.maxAckLatencyMs)),
    load1: {
      min: Math.min(...trials.map((t) => t.load1 ?? Number.NaN)),
      max: Math.max(...trials.map((t) => t.load1 ?? Number.NaN)),
    },
  };
}

/** Seconds with two decimals, or '-' when absent. */
export function secs(ms: number | undefined): string {
  return ms === undefined || !Number.isFinite(ms) ? '-' : (ms / 1000).toFixed(2);
}

const int = (n: number) => Math.round(n).toLocaleString('en');

/** The one progress line printed after each trial. */
export function trialLine(t: TrialRecord, total: number): string {
  const head = `trial ${String(t.trial).padStart(String(total).length)}/${total} ${t.shard} kill -9 ${t.primaryPod} (pid ${t.killedPid}):`;
  if (t.error && t.readsFromStandbyMs === undefined) return `${head} ${t.error}`;
  return (
    `${head} standby reads ${secs(t.readsFromStandbyMs)} s (operator ${secs(t.operatorFailoverMs)} s, ` +
    `${t.signal}), pod NotReady ${secs(t.podNotReadyMs)} s, mariadbd back ${secs(t.processRestartedMs)} s, ` +
    `normal ${secs(t.normalMs)} s (${secs(t.normalAfterRestartMs)} s after restart); ` +
    `acked ${int(t.ackedDuring)}, failed ${t.failedDuring}, slowest ack ${int(t.maxAckLatencyMs)} ms` +
    (t.error ? `; ${t.error}` : '')
  );
}

interface Row {
  label: string;
  dist: Distribution;
  target: string;
}

function rows(r: FailoverReport): Row[] {
  const s = r.summary;
  return [
    {
      label: 'kill → every broker reads the shard from the standby, no writes',
      dist: s.readsFromStandbyMs,
      target: '< 3 s',
    },
    { label: 'kill → first broker on the standby', dist: s.firstBrokerOnStandbyMs, target: '' },
    { label: 'kill → operator decided (`routing changed` logged)', dist: s.operatorFailoverMs, target: '' },
    {
      label: 'kill → every broker stopped writing to the shard',
      dist: s.brokersStoppedWritingMs,
      target: '',
    },
    { label: 'kill → pod NotReady in the API', dist: s.podNotReadyMs, target: '' },
    { label: 'kill → kubelet restarted mariadbd', dist: s.processRestartedMs, target: '' },
    { label: 'kill → pod Ready again', dist: s.podReadyMs, target: '' },
    { label: 'mariadbd restarted → shard back to normal', dist: s.normalAfterRestartMs, target: '' },
    { label: 'kill → shard back to normal', dist: s.normalMs, target: '' },
  ];
}

export function consoleSummary(r: FailoverReport): string {
  const w = r.workload;
  return [
    textTable(
      ['seconds', 'p50', 'p95', 'max', 'n', 'target'],
      rows(r).map((x) => [
        x.label,
        secs(x.dist.p50),
        secs(x.dist.p95),
        secs(x.dist.max),
        String(x.dist.count),
        x.target,
      ]),
    ),
    '',
    `acknowledged ${int(w.acked)}, lost ${w.lost}, failed publishes ${w.failedPublishes}; ` +
      `signals: ${Object.entries(r.summary.signals)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
  ].join('\n');
}

function signalText(r: FailoverReport): string {
  const s = r.summary;
  const parts = Object.entries(s.signals).map(([k, v]) => `${k}: ${v}`);
  return parts.join(', ');
}

export function markdownSection(r: FailoverReport): string {
  const s = r.summary;
  const w = r.workload;
  const target = (ok: boolean) => (ok ? 'met' : 'NOT met');
  const p95 = s.readsFromStandbyMs.p95;
  const perTrial = markdownTable(
    [
      '#',
      'shard',
      'NotReady',
      'operator',
      'standby reads',
      'mariadbd back',
      'Ready',
      'normal',
      'after restart',
      'signal',
      'slowest ack ms',
    ],
    r.trials.map((t) => [
      String(t.trial),
      t.shard,
      secs(t.podNotReadyMs),
      secs(t.operatorFailoverMs),
      secs(t.readsFromStandbyMs),
      secs(t.processRestartedMs),
      secs(t.podReadyMs),
      secs(t.normalMs),
      secs(t.normalAfterRestartMs),
      t.signal + (t.error ? ` (${t.error})` : ''),
      int(t.maxAckLatencyMs),
    ]),
  );
  return `## Failover (issue 4)

${bullets(r)}

| measure (seconds) | p50 | p95 | max | trials | target |
|---|---|---|---|---|---|
${rows(r)
  .map(
    (x) =>
      `| ${x.label} | ${secs(x.dist.p50)} | ${secs(x.dist.p95)} | ${secs(x.dist.max)} | ${x.dist.count} | ${x.target} |`,
  )
  .join('\n')}

| measure | result | target |
|---|---|---|
| reads served from the standby within 3 s of the kill (p95 / max) | ${secs(p95)} s / ${secs(s.readsFromStandbyMs.max)} s | ${target(s.readsFromStandbyMs.max < 3000 && s.readsFromStandbyMs.count === s.trials)} |
| acknowledged messages lost (some group never received them) | ${int(w.lost)} of ${int(w.acked)} acknowledged | ${target(w.lost === 0)} |
| publishes that failed at the producer | ${int(w.failedPublishes)} | ${target(w.failedPublishes === 0)} |
| trials that did not complete | ${s.failedTrials} of ${s.trials} | |

${paragraphs(r)}

<details><summary>Every trial (seconds after the kill)</summary>

${perTrial}

</details>

Raw results: \`${RESULTS_JSON}\`.`;
}

/** The list under the heading: date, machine, command, setup, method; each item wrapped. */
function bullets(r: FailoverReport): string {
  const s = r.summary;
  const o = r.options;
  const items = [
    `Date: ${r.date} (the run took ${Math.round(r.durationSeconds / 60)} min)`,
    `Machine: ${r.machine}; everything ran on it at once: etcd, kube-apiserver, ` +
      `kube-controller-manager, the test kubelet, the operator, 4 \`mariadbd\`, 2 brokers and the ` +
      `benchmark process (producers, consumers, pollers). The 1-minute load average at the kills ranged ` +
      `from ${s.load1.min} to ${s.load1.max}` +
      `${s.load1.max > 3 ? ' (other test suites shared the machine during the run)' : ''}.`,
    `Command: \`${r.command}\``,
    `Setup: the embedded control plane of \`make run\` (tools/local/kube-control-plane.ts), the test ` +
      `kubelet running pods as local processes on ${o.addressPrefix}.x, the operator as a child process, and ` +
      `${r.cluster}. Under a continuous load through the SDK (${o.producers} producers offering ${int(o.rate)} ` +
      `msg/s in all, the design load of issue 2; ${o.groups} consumer groups, one consumer each, committing after ` +
      `every fetch), ${s.trials} trials, alternating shards: \`kill -9\` of the shard primary's \`mariadbd\` ` +
      `(\`TestKubelet.killContainer(..., 'SIGKILL')\`); the test kubelet restarts it (restartPolicy ` +
      `Always, 1 s back-off). Each trial waits until the cluster is Ready, every shard Healthy and every ` +
      `broker routes it to its primary, ${o.pauseSeconds} s more, until the victim's \`mariadbd\` has run ` +
      `${o.minUptimeSeconds} s (so the kubelet's crash back-off stays at its 1 s minimum), then a random ` +
      `0-${int(o.jitterMs ?? 0)} ms (so the kills fall at every phase of the operator's 1 s tick).`,
    `Method: every ${o.pollMs} ms the benchmark reads each broker's live routing (\`GET /v1/status\`: the ` +
      `write and read endpoint and the write rotation the broker uses for its next request). *Reads ` +
      `from the standby* = the last broker routes the shard's reads to the standby's IP with no write ` +
      `endpoint. *Back to normal* = every broker reads and writes the shard on its primary and finds ` +
      `it writable, and the status shows the shard Healthy and the cluster Ready; measured from the ` +
      `kill and from the moment the kubelet started the new \`mariadbd\`. Pod times come from a watch ` +
      `of the pods; *operator* is the time stamp of its \`routing changed\` log line. A broker's ` +
      `answer can take longer than the poll period when the machine is busy: the last broker's switch to ` +
      `the standby was seen ${int(s.standbyResolutionMs.p50)} ms (p50; max ${int(s.standbyResolutionMs.max)} ms) ` +
      `after its previous answer, the resolution of that time; the longest any broker went unobserved ` +
      `during a trial was ${int(s.maxPollGapMs)} ms.`,
  ];
  return items.map((item) => wrap(`- ${item}`, 100, '  ')).join('\n');
}

/** Wraps a paragraph at `width` columns (words are never split). */
export function wrap(text: string, width = 100, indent = ''): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = indent + word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines.join('\n');
}

/** The prose after the tables: comparison, detection, recovery, load. */
function paragraphs(r: FailoverReport): string {
  const s = r.summary;
  const w = r.workload;
  const consumerErrors = Object.values(w.consumerErrors).reduce((a, b) => a + b, 0);
  const m = r.operatorMetrics;
  return [
    `Compared with the usual MySQL failover tools on their default settings: orchestrator 10-13 s, ` +
      `MHA 10-30 s, Group Replication about 10 s; here ${secs(s.readsFromStandbyMs.p50)} s at the median and ` +
      `${secs(s.readsFromStandbyMs.max)} s at worst until every broker reads from the standby, and writes leave the ` +
      `shard sooner still (every broker had stopped writing to it ${secs(s.brokersStoppedWritingMs.p50)} s after the ` +
      `kill at the median: a broker skips a shard whose write or probe fails without waiting for the operator). ` +
      `Those tools promote a new writable primary; this failover moves reads only and sends writes to the other ` +
      `shard, as the seed asks (\`promoteForWrites\` is off by default).`,
    `What triggered each failover (the operator's FailedOver Event, or its status message when the Event ` +
      `was not written): ${signalText(r)}. ${detectionNote(r)} ${eventNote(r)}`,
    recoveryNote(r),
    `Load during the run: ${int(w.acked)} publishes acknowledged in ${Math.round(w.durationSeconds)} s; ` +
      `acknowledgement latency p50 ${int(w.ackLatencyMs.p50)} ms, p99 ${int(w.ackLatencyMs.p99)} ms, max ` +
      `${int(w.ackLatencyMs.max)} ms. The brokers retried ${int(r.brokerMetrics.writeRetries)} batch writes on the other ` +
      `shard and answered ${int(r.brokerMetrics.publish5xx)} publish requests with a 5xx` +
      `${r.brokerMetrics.publish5xx ? ' (the SDK retried those on the other broker)' : ''}; the consumers' fetch ` +
      `or commit calls failed ${int(consumerErrors)} times${consumerErrors ? ' and were retried' : ''}; redeliveries ` +
      `(at-least-once) per group: ${Object.entries(w.duplicates)
        .map(([g, n]) => `${g} ${int(n)}`)
        .join(', ')}. Every group had received every acknowledged message ${secs(w.drainedMs)} s after the ` +
      `producers stopped. The operator counted ${m.failoversTotal} failovers (\`mysqlmq_failovers_total\`), ` +
      `${secs((m.failoverSecondsSum / Math.max(1, m.failoverSecondsCount)) * 1000)} s on average by its own ` +
      `\`mysqlmq_failover_duration_seconds\`, which starts at its first sight of the failed primary and so ` +
      `leaves out the wait for that tick.`,
  ]
    .map((p) => wrap(p))
    .join('\n\n');
}

/** What the way back to normal consists of. */
export function recoveryNote(r: FailoverReport): string {
  const s = r.summary;
  return (
    `Back to normal, ${secs(s.normalAfterRestartMs.p50)} s after the new \`mariadbd\` started (p50; max ` +
    `${secs(s.normalAfterRestartMs.max)} s), in steps (p50 each): it answered the kubelet's readiness probe ` +
    `(every 1 s) and the pod turned Ready ${secs(s.restartToReadyMs.p50)} s after it started; the operator's ` +
    `next tick checked that it had not diverged (GTID sets) and that the standby follows it and has caught ` +
    `up, gave reads back to the primary ${secs(s.readyToReadsBackMs.p50)} s later (Event Recovered) and turned ` +
    `semi-sync on (a restarted \`mariadbd\` comes up read-only without it); writes followed ` +
    `${secs(s.readsBackToWritesMs.p50)} s after that, on the next tick, once the standby acknowledged as a ` +
    `semi-sync replica (durability required; meanwhile the shard shows phase Provisioning); and the brokers ` +
    `and the status (shard Healthy, cluster Ready) showed it ${secs(s.writesToNormalMs.p50)} s after that ` +
    `operator's decision.`
  );
}

/** Whether every failover left an Event. */
export function eventNote(r: FailoverReport): string {
  const n = r.summary.failoverEventsWritten;
  const total = r.summary.trials;
  const inApi = r.eventReasons.FailedOver ?? 0;
  if (n >= total) return `The operator wrote a FailedOver Event for each of the ${total} failovers.`;
  return (
    `The operator wrote a FailedOver Event for ${n} of the ${total} failovers (the API holds ${inApi}): its ` +
    `EventRecorder drops an Event whose reason and message equal one it wrote in the last 60 s, and a ` +
    `primary killed again within a minute fails with the same message, so a repeated failover of one ` +
    `shard leaves no Event (the failover counter and the status still record it).`
  );
}

/** What dominates detection, read off the numbers of this run. */
export function detectionNote(r: FailoverReport): string {
  const s = r.summary;
  const byPod = s.signals['pod NotReady'] ?? 0;
  const byProbe = s.signals['MySQL probe failures'] ?? 0;
  const timing =
    `Per trial, the API showed the pod NotReady ${secs(s.podNotReadyMs.p50)} s after the kill (p50; max ` +
    `${secs(s.podNotReadyMs.max)} s: the test kubelet reports a container's exit at once); the operator decided ` +
    `${secs(s.notReadyToDecisionMs.p50)} s after that (p50; max ${secs(s.notReadyToDecisionMs.max)} s: it looks once per ` +
    `probePeriodSeconds = 1 s, so the wait for its next tick dominates), and the last broker applied the ` +
    `pushed routing ${secs(s.decisionToBrokersMs.p50)} s later (p50; max ${secs(s.decisionToBrokersMs.max)} s). Every broker had ` +
    `already stopped writing to the shard ${secs(s.brokersStoppedWritingMs.p50)} s after the kill (p50), on its own ` +
    `failed write or probe.`;
  const window =
    `The pod stays NotReady from the exit until the restarted \`mariadbd\` answers the readiness probe ` +
    `(Ready again ${secs(s.podReadyMs.p50)} s after the kill at the median, ${secs(s.podReadyMs.min)} s at the ` +
    `soonest), which is longer than one probe period`;
  if (byProbe === 0 && byPod > 0)
    return (
      `${timing} ${window}, so the operator's next tick always saw it and failed over at once; the MySQL ` +
      `probe path (3 failures in a row: 2-3 s after the kill at the earliest) was never what triggered a failover ` +
      `here. It is the fallback for a primary whose pod stays Ready (a hung or partitioned \`mariadbd\`), or ` +
      `for a kubelet that reports the exit later than this one.`
    );
  return `${timing} ${window}. ${byPod} failovers were triggered by the pod NotReady and ${byProbe} by the MySQL probe failures.`;
}
