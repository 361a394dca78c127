/**
 * One kill -9 trial: kill a shard primary's mariadbd through the test kubelet, then poll every
 * broker's live routing (GET /v1/status: what the broker uses for its next write and fetch) every
 * few tens of milliseconds until the shard reads from the standby and takes no writes, and then
 * until it is back to normal on its primary. The pod and cluster watches and the operator's log
 * say when Kubernetes saw the pod go and return, what the operator decided and why.
 */
import { readFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import type { MessageQueueCluster, ShardStatus } from '../../../src/operator/api/types.js';
import { type Observed, type PodJson, type Stack, podReady } from './stack.js';
import { sleep } from '../../../src/common/deadline.js';

export type Signal = 'pod NotReady' | 'MySQL probe failures' | 'unknown';

export interface TrialRecord {
  trial: number;
  shard: string;
  primaryPod: string;
  standbyPod: string;
  primaryIP: string;
  standbyIP: string;
  killedPid: number;
  /** When SIGKILL was sent (ISO time); every `...Ms` below counts from it. */
  killedAt: string;
  /** killContainer resolved: the process is gone. */
  processGoneMs: number;
  /** The API showed the pod NotReady (watch), and Ready again. */
  podNotReadyMs?: number;
  podReadyMs?: number;
  /** The test kubelet started a new mariadbd. */
  processRestartedMs?: number;
  /** Every broker had taken the shard out of its write rotation (its own failed write or probe, or routing). */
  brokersStoppedWritingMs?: number;
  /** The first and the last broker to route the shard's reads to the standby with no write endpoint. */
  firstBrokerOnStandbyMs?: number;
  readsFromStandbyMs?: number;
  /** The operator's `routing changed` log line that moved reads to the standby. */
  operatorFailoverMs?: number;
  /** The cluster status first showed the shard reading from the standby, and its message then. */
  statusFailedOverMs?: number;
  statusMessage?: string;
  /** The FailedOver Event of this trial, if the operator wrote one (it skips repeats within 60 s). */
  failoverEvent?: string;
  /** Reasons of the operator's events about this shard during the trial, in order. */
  events: string[];
  signal: Signal;
  signalFrom: 'event' | 'status' | 'none';
  /** The operator's `routing changed` line that gave the shard back to its primary. */
  operatorRecoveredMs?: number;
  /** The operator's `routing changed` line that gave reads back to the primary (writes may follow later). */
  operatorReadsBackMs?: number;
  /** Every broker reads and writes the shard on its primary again and finds it writable. */
  brokersNormalMs?: number;
  /** Status: the shard Healthy on its primary, the cluster Ready. */
  statusHealthyMs?: number;
  /** The later of the two above: the shard is back to normal. */
  normalMs?: number;
  /** normalMs minus processRestartedMs: back to normal after the process returned. */
  normalAfterRestartMs?: number;
  /** Broker polls answered, and the longest time any broker went unobserved. */
  polls: number;
  maxPollGapMs: number;
  /**
   * The uncertainty of readsFromStandbyMs: the time between the last broker's last answer that still
   * showed the primary and its first answer that showed the standby.
   */
  standbyResolutionMs?: number;
  /** Messages acknowledged and publishes failed while the trial ran; the slowest acknowledgement. */
  ackedDuring: number;
  failedDuring: number;
  maxAckLatencyMs: number;
  /** The machine's 1-minute load average at the kill (the machine may be shared). */
  load1: number;
  error?: string;
}

interface BrokerShardView {
  name: string;
  writable: boolean;
  write: { host: string } | null;
  read: { host: string } | null;
}

export interface TrialContext {
  stack: Stack;
  namespace: string;
  cluster: string;
  brokers: string[];
  /** The cluster's admin token: `/v1/status` needs a valid one. */
  token: string;
  pollMs: number;
  timeoutMs: number;
  workload: { ackedCount: number; failedCount: number; takeMaxLatency(): number };
  interrupted(): boolean;
}

/** Which signal made the operator fail over, from the text of its decision (decide.ts describeDown). */
export function signalOf(message: string | undefined): Signal {
  if (!message) return 'unknown';
  if (/MySQL probe failed/.test(message)) return 'MySQL probe failures';
  if (/pod not ready|pod missing|pod being deleted|pod (Pending|Failed|Succeeded|Unknown)/.test(message))
    return 'pod NotReady';
  return 'unknown';
}

export interface OperatorLogLine {
  at: number;
  message: string;
  shards?: string[];
  reason?: string;
  eventMessage?: string;
}

/** The operator's JSON log lines this benchmark reads: `routing changed` and `event`. */
export function parseOperatorLog(text: string, since: number): OperatorLogLine[] {
  const out: OperatorLogLine[] = [];
  for (const line of text.split('\n')) {
    if (!line.includes('"routing changed"') && !line.includes('"event"')) continue;
    try {
      const j = JSON.parse(line) as {
        message?: string;
        timestamp?: string;
        shards?: string[];
        reason?: string;
        eventMessage?: string;
      };
      const at = Date.parse(j.timestamp ?? '');
      if (!(at >= since) || !j.message) continue;
      out.push({ at, message: j.message, shards: j.shards, reason: j.reason, eventMessage: j.eventMessage });
    } catch {
      // not a JSON line
    }
  }
  return out;
}

async function brokerShard(url: string, token: string, shard: string): Promise<BrokerShardView | undefined> {
  try {
    const res = await fetch(`${url}/v1/status`, {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(1000),
    });
    if (!res.ok) return undefined;
    const body = (await res.json()) as { shards: BrokerShardView[] };
    return body.shards.find((s) => s.name === shard);
  } catch {
    return undefined;
  }
}

const shardOf = (cr: MessageQueueCluster | undefined, shard: string): ShardStatus | undefined =>
  cr?.status?.shards?.find((s) => s.name === shard);

const clusterReady = (cr: MessageQueueCluster | undefined): boolean =>
  cr?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

/** A shard at rest: Healthy on its primary, writable, the cluster Ready. */
export function shardHealthy(cr: MessageQueueCluster | undefined, shard: string): boolean {
  const s = shardOf(cr, shard);
  return clusterReady(cr) && s?.phase === 'Healthy' && s.readsFrom === 'primary' && s.writable === true;
}

const normalOnBroker = (v: BrokerShardView | undefined, primaryIP: string) =>
  v !== undefined && v.writable && v.write?.host === primaryIP && v.read?.host === primaryIP;

/**
 * Every shard of the cluster Healthy, the cluster Ready, and every broker routing each shard to its
 * primary with writes on: what a trial starts from and what it waits for at the end.
 */
export async function clusterSteady(ctx: TrialContext): Promise<boolean> {
  const cr = ctx.stack.cluster;
  const shards = cr?.status?.shards ?? [];
  if (shards.length === 0 || !clusterReady(cr)) return false;
  if (cr?.status?.observedGeneration !== cr?.metadata?.generation) return false;
  for (const s of shards) {
    if (!shardHealthy(cr, s.name)) return false;
    const ip = s.primaryPod ? ctx.stack.podIP(s.primaryPod) : undefined;
    if (!ip) return false;
    const views = await Promise.all(ctx.brokers.map((b) => brokerShard(b, ctx.token, s.name)));
    if (!views.every((v) => normalOnBroker(v, ip))) return false;
  }
  return true;
}

export async function runTrial(ctx: TrialContext, trial: number, shard: string): Promise<TrialRecord> {
  const { stack, namespace } = ctx;
  const status = shardOf(stack.cluster, shard);
  const primaryPod = status?.primaryPod;
  const standbyPod = status?.standbyPod;
  if (!primaryPod || !standbyPod) throw new Error(`${shard}: no primary/standby in the cluster status`);
  const primaryIP = stack.podIP(primaryPod);
  const standbyIP = stack.podIP(standbyPod);
  if (!primaryIP || !standbyIP) throw new Error(`${shard}: pods without an IP`);
  const kubelet = stack.kubelet!;
  const killedPid = kubelet.containerPid(namespace, primaryPod, 'mariadb');
  if (!killedPid) throw new Error(`${primaryPod}: mariadb is not running`);

  const podEvents: Observed<PodJson>[] = [];
  const crEvents: Observed<MessageQueueCluster>[] = [];
  const offPod = stack.onPod((name, o) => name === primaryPod && podEvents.push(o));
  const offCr = stack.onCluster((o) => crEvents.push(o));
  const ackedBefore = ctx.workload.ackedCount;
  const failedBefore = ctx.workload.failedCount;
  ctx.workload.takeMaxLatency();

  const stoppedWriting = new Map<string, number>();
  const onStandby = new Map<string, number>();
  const normal = new Map<string, number>();
  const lastAnswer = new Map<string, number>();
  const resolution = new Map<string, number>();
  let maxPollGapMs = 0;
  let polls = 0;
  let processRestartedAt: number | undefined;
  let error: string | undefined;

  const load1 = Math.round(loadavg()[0] * 100) / 100;
  const killedAt = Date.now();
  for (const b of ctx.brokers) lastAnswer.set(b, killedAt);
  await kubelet.killContainer(namespace, primaryPod, 'mariadb', 'SIGKILL');
  const processGoneAt = Date.now();

  const statusHealthyAt = () => {
    const failedOver = crEvents.find((e) => shardOf(e.obj, shard)?.readsFrom === 'standby');
    if (!failedOver) return undefined;
    return crEvents.find((e) => e.at >= failedOver.at && shardHealthy(e.obj, shard))?.at;
  };
  try {
    for (;;) {
      const started = Date.now();
      if (started - killedAt > ctx.timeoutMs) {
        error = `not back to normal ${Math.round(ctx.timeoutMs / 1000)} s after the kill`;
        break;
      }
      if (ctx.interrupted()) {
        error = 'interrupted';
        break;
      }
      const views = await Promise.all(ctx.brokers.map((b) => brokerShard(b, ctx.token, shard)));
      const at = Date.now();
      views.forEach((v, i) => {
        const b = ctx.brokers[i];
        if (!v) return;
        polls++;
        const gap = at - lastAnswer.get(b)!;
        maxPollGapMs = Math.max(maxPollGapMs, gap);
        lastAnswer.set(b, at);
        if (!stoppedWriting.has(b) && (!v.writable || v.write === null)) stoppedWriting.set(b, at);
        if (!onStandby.has(b) && v.read?.host === standbyIP && v.write === null) {
          onStandby.set(b, at);
          resolution.set(b, gap);
        }
        if (onStandby.has(b) && !normal.has(b) && normalOnBroker(v, primaryIP)) normal.set(b, at);
      });
      const pid = kubelet.containerPid(namespace, primaryPod, 'mariadb');
      if (processRestartedAt === undefined && pid !== undefined && pid !== killedPid) processRestartedAt = at;
      if (normal.size === ctx.brokers.length && statusHealthyAt() !== undefined) break;
      await sleep(Math.max(0, ctx.pollMs - (Date.now() - started)));
    }
  } finally {
    offPod();
    offCr();
  }

  const rel = (t: number | undefined) => (t === undefined ? undefined : t - killedAt);
  const maxOf = (m: Map<string, number>) =>
    m.size === ctx.brokers.length ? Math.max(...m.values()) : undefined;
  const minOf = (m: Map<string, number>) => (m.size ? Math.min(...m.values()) : undefined);
  const lastOf = (m: Map<string, number>) =>
    m.size === ctx.brokers.length ? [...m.entries()].sort((x, y) => y[1] - x[1])[0][0] : undefined;

  const notReady = podEvents.find((e) => !podReady(e.obj));
  const readyAgain = notReady ? podEvents.find((e) => e.at >= notReady.at && podReady(e.obj)) : undefined;
  const failedOverStatus = crEvents.find((e) => shardOf(e.obj, shard)?.readsFrom === 'standby');

  // The operator's side: its routing decisions and events (the log is JSON, one line each).
  const log = parseOperatorLog(await readFile(stack.operatorLog, 'utf8').catch(() => ''), killedAt - 50);
  const routing = log.filter((l) => l.message === 'routing changed');
  const opFailover = routing.find((l) => l.shards?.includes(`${shard} write=- read=${standbyIP}`));
  const opRecovered = routing.find(
    (l) =>
      l.at >= (opFailover?.at ?? killedAt) &&
      l.shards?.includes(`${shard} write=${primaryIP} read=${primaryIP}`),
  );
  const opReadsBack = routing.find(
    (l) =>
      l.at >= (opFailover?.at ?? killedAt) &&
      l.shards?.some((x) => x.startsWith(`${shard} `) && x.endsWith(` read=${primaryIP}`)),
  );
  const until = opRecovered ? opRecovered.at + 1000 : Number.MAX_SAFE_INTEGER;
  const events = log.filter(
    (l) => l.message === 'event' && l.at <= until && l.eventMessage?.startsWith(`${shard}:`),
  );
  const failoverEvent = events.find((e) => e.reason === 'FailedOver' || e.reason === 'ShardUnavailable');
  const statusMessage = shardOf(failedOverStatus?.obj, shard)?.message;
  const signal = signalOf(failoverEvent?.eventMessage ?? statusMessage);

  const brokersNormalAt = maxOf(normal);
  const healthyAt = statusHealthyAt();
  const normalAt =
    brokersNormalAt !== undefined && healthyAt !== undefined
      ? Math.max(brokersNormalAt, healthyAt)
      : undefined;
  return {
    trial,
    shard,
    primaryPod,
    standbyPod,
    primaryIP,
    standbyIP,
    killedPid,
    killedAt: new Date(killedAt).toISOString(),
    processGoneMs: processGoneAt - killedAt,
    podNotReadyMs: rel(notReady?.at),
    podReadyMs: rel(readyAgain?.at),
    processRestartedMs: rel(processRestartedAt),
    brokersStoppedWritingMs: rel(maxOf(stoppedWriting)),
    firstBrokerOnStandbyMs: rel(minOf(onStandby)),
    readsFromStandbyMs: rel(maxOf(onStandby)),
    operatorFailoverMs: rel(opFailover?.at),
    statusFailedOverMs: rel(failedOverStatus?.at),
    statusMessage,
    failoverEvent: failoverEvent?.eventMessage,
    events: events.map((e) => e.reason ?? '?'),
    signal,
    signalFrom: failoverEvent ? 'event' : statusMessage ? 'status' : 'none',
    operatorRecoveredMs: rel(opRecovered?.at),
    operatorReadsBackMs: rel(opReadsBack?.at),
    brokersNormalMs: rel(brokersNormalAt),
    statusHealthyMs: rel(healthyAt),
    normalMs: rel(normalAt),
    normalAfterRestartMs:
      normalAt !== undefined && processRestartedAt !== undefined ? normalAt - processRestartedAt : undefined,
    polls,
    maxPollGapMs,
    standbyResolutionMs: lastOf(onStandby) ? resolution.get(lastOf(onStandby)!) : undefined,
    ackedDuring: ctx.workload.ackedCount - ackedBefore,
    failedDuring: ctx.workload.failedCount - failedBefore,
    maxAckLatencyMs: Math.round(ctx.workload.takeMaxLatency()),
    load1,
    ...(error ? { error } : {}),
  };
}
