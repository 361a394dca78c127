import type { PhaseCpu, RunResult, SystemInfo, TargetCheck } from './results.js';

/** Formatting of the comparison's tables and the ratio and target arithmetic. Pure. */

export const OURS = 'mysqlmq';
export const CEILING = 'ceiling';

const integers = new Intl.NumberFormat('en', { maximumFractionDigits: 0 });

export function fmtInt(n: number | undefined): string {
  return n === undefined || !Number.isFinite(n) ? 'n/a' : integers.format(Math.round(n));
}

export function fmtMs(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return 'n/a';
  return n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : fmtInt(n);
}

/** `a / b`, undefined when either is missing or `b` is 0. */
export function ratio(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0)
    return undefined;
  return a / b;
}

export function fmtRatio(r: number | undefined): string {
  return r === undefined ? 'n/a' : `${r.toFixed(2)}x`;
}

export function markdownTable(headers: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`;
  return [line(headers), line(headers.map(() => '---')), ...rows.map(line)].join('\n');
}

/** Columns padded to a common width; numbers (anything starting with a digit) right-aligned. */
export function textTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (/^[\d.,-]/.test(c) && i > 0 ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export const RESULT_HEADERS = [
  'system',
  'size',
  'produced msg/s',
  'consumed reads/s',
  'ack p50 ms',
  'ack p99 ms',
  'e2e p50 ms',
  'e2e p99 ms',
  'server RSS MiB (max process / total)',
];

/** One row per measured system and size, in the order given. */
export function resultRows(results: RunResult[], titles: Map<string, string>): string[][] {
  return results.map((r) => [
    titles.get(r.system) ?? r.system,
    `${r.sizeBytes} B`,
    fmtInt(r.produced.perSecond),
    fmtInt(r.consumed.perSecond) + (r.consumed.reads < r.consumed.expected ? '*' : ''),
    fmtMs(r.paced.ackMs.p50),
    fmtMs(r.paced.ackMs.p99),
    fmtMs(r.paced.e2eMs.p50),
    fmtMs(r.paced.e2eMs.p99),
    r.rss.processes === 0 ? 'n/a' : `${fmtInt(r.rss.peakProcessMiB)} / ${fmtInt(r.rss.peakTotalMiB)}`,
  ]);
}

export const CPU_HEADERS = [
  'system',
  'size',
  'produce: server / storage / client',
  'consume: server / storage / client',
  'paced: server / storage / client',
];

/**
 * CPU time per 1,000 messages, ms: per acknowledged message at full load, per message read in the
 * consume phase, per acknowledged message in the paced phase (with its deliveries to every group).
 * Less sensitive than throughput to what else the shared machine runs.
 */
export function cpuRows(results: RunResult[], titles: Map<string, string>): string[][] {
  const per1k = (ms: number | undefined, n: number) =>
    ms === undefined || n === 0 ? 'n/a' : fmtMs((ms * 1000) / n);
  const cells = (c: PhaseCpu, n: number) =>
    `${per1k(c.serverMs, n)} / ${per1k(c.storageMs, n)} / ${per1k(c.clientMs, n)}`;
  return results
    .filter((r) => r.cpu)
    .map((r) => [
      titles.get(r.system) ?? r.system,
      `${r.sizeBytes} B`,
      cells(r.cpu!.produce, r.produced.messages),
      cells(r.cpu!.consume, r.consumed.reads),
      cells(r.cpu!.paced, r.paced.acked),
    ]);
}

export const RATIO_HEADERS = ['mysqlmq vs', 'size', 'produced', 'consumed', 'ack p99 (theirs / ours)'];

/**
 * Our throughput divided by each other system's, per size (above 1.00x: we are faster), and their
 * p99 acknowledgement latency divided by ours (above 1.00x: we answer sooner).
 */
export function ratioRows(results: RunResult[], titles: Map<string, string>): string[][] {
  const rows: string[][] = [];
  for (const ours of results.filter((r) => r.system === OURS)) {
    for (const peer of results.filter((r) => r.system !== OURS && r.sizeBytes === ours.sizeBytes)) {
      rows.push([
        titles.get(peer.system) ?? peer.system,
        `${ours.sizeBytes} B`,
        fmtRatio(ratio(ours.produced.perSecond, peer.produced.perSecond)),
        fmtRatio(ratio(ours.consumed.perSecond, peer.consumed.perSecond)),
        fmtRatio(ratio(peer.paced.ackMs.p99, ours.paced.ackMs.p99)),
      ]);
    }
  }
  return rows;
}

export interface Targets {
  producedPerSecond: number;
  consumedPerSecond: number;
  vsRabbitMq: number;
  vsCeiling: number;
  ackP99Ms: number;
  brokerRssMb: number;
  /** The size the throughput targets are stated for. */
  sizeBytes: number;
}

/** Issue 5's targets on the 2-core machine. */
export const ISSUE_TARGETS: Targets = {
  producedPerSecond: 50_000,
  consumedPerSecond: 138_000,
  vsRabbitMq: 1.0,
  vsCeiling: 0.5,
  ackP99Ms: 25,
  brokerRssMb: 200,
  sizeBytes: 256,
};

/** Whether our results meet each target; `met` is undefined when the needed number is missing. */
export function targetChecks(results: RunResult[], t: Targets = ISSUE_TARGETS): TargetCheck[] {
  const at = (system: string) => results.find((r) => r.system === system && r.sizeBytes === t.sizeBytes);
  const ours = at(OURS);
  const rabbit = at('rabbitmq');
  const ceiling = at(CEILING);
  const check = (target: string, value: number | undefined, show: string, ok: (v: number) => boolean) => ({
    target,
    measured: value === undefined ? 'not measured' : show,
    met: value === undefined ? undefined : ok(value),
  });
  const vsRabbit = ratio(ours?.produced.perSecond, rabbit?.produced.perSecond);
  const vsCeiling = ratio(ours?.produced.perSecond, ceiling?.produced.perSecond);
  const ackP99 = ours?.paced.ackMs.p99;
  // The shards' own tail at the same offered load, beside ours: the storage's floor on this machine.
  const ceilingAckP99 = ceiling?.paced.ackMs.p99;
  const rssOf = (r: RunResult) => r.rss.peakProcessMiB;
  const ourRuns = results.filter((r) => r.system === OURS);
  const rss = ourRuns.length ? Math.max(...ourRuns.map(rssOf)) : undefined;
  // /proc reports KiB; the target is in MB (10^6 bytes).
  const rssMb = rss === undefined ? undefined : (rss * 2 ** 20) / 1e6;
  return [
    check(
      `produced >= ${fmtInt(t.producedPerSecond)} acknowledged ${t.sizeBytes}-byte msgs/s`,
      ours?.produced.perSecond,
      fmtInt(ours?.produced.perSecond),
      (v) => v >= t.producedPerSecond,
    ),
    check(
      `consumed >= ${fmtInt(t.consumedPerSecond)} reads/s across the groups`,
      ours?.consumed.perSecond,
      fmtInt(ours?.consumed.perSecond),
      (v) => v >= t.consumedPerSecond,
    ),
    check(
      `produced >= ${t.vsRabbitMq.toFixed(1)}x RabbitMQ (durable, confirmed)`,
      vsRabbit,
      fmtRatio(vsRabbit),
      (v) => v >= t.vsRabbitMq,
    ),
    check(
      `produced >= ${t.vsCeiling.toFixed(1)}x the multi-row INSERT ceiling`,
      vsCeiling,
      fmtRatio(vsCeiling),
      (v) => v >= t.vsCeiling,
    ),
    check(
      `p99 publish-ack < ${t.ackP99Ms} ms at ${fmtInt(ours?.paced.ratePerSecond ?? 10_000)} msg/s offered`,
      ackP99,
      `${fmtMs(ackP99)} ms` +
        (ceilingAckP99 === undefined ? '' : ` (the ceiling, no broker: ${fmtMs(ceilingAckP99)} ms)`),
      (v) => v < t.ackP99Ms,
    ),
    check(
      `broker RSS < ${t.brokerRssMb} MB at full load (largest broker process, any size)`,
      rssMb,
      `${fmtInt(rssMb)} MB (${fmtInt(rss)} MiB)`,
      (v) => v < t.brokerRssMb,
    ),
  ];
}

export function targetRows(checks: TargetCheck[]): string[][] {
  return checks.map((c) => [
    c.target,
    c.measured,
    c.met === undefined ? 'not measured' : c.met ? 'met' : 'NOT met',
  ]);
}

export function durabilityRows(systems: SystemInfo[]): string[][] {
  return systems.map((s) => [s.title, s.skipped ? `skipped: ${s.skipped}` : s.version, s.durability]);
}
