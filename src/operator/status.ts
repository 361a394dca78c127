import {
  BACKUP_READY_CONDITION,
  type ClusterPhase,
  type Condition,
  type ConditionType,
  type MessageQueueClusterStatus,
  type RestoreStatus,
  type ShardStatus,
  type SwitchoverStatus,
} from './api/types.js';
import type { SeparationVerdict } from './placement.js';
import type { BackupView } from './backup/loop.js';
import type { ShardMemory } from './shards/decide.js';
import type { ShardOutcome } from './shards/manager.js';

/** Builds the status a person reads with `kubectl describe`. Pure. */
export interface StatusInput {
  generation: number;
  previous: MessageQueueClusterStatus | undefined;
  /** Problems with the spec the schema could not catch; non-empty means nothing is provisioned. */
  specProblems: string[];
  outcomes: ShardOutcome[] | undefined;
  shardsTotal: number;
  brokers: { ready: number; desired: number; selector: string };
  routingVersion: number;
  /** Whether brokers serve HTTPS and instances require TLS, as decided for the cluster. */
  tls: { brokers: boolean; mysql: boolean };
  /** The shard loop's last switchover and failover count; the previous status's when it has none. */
  lastSwitchover?: SwitchoverStatus;
  failoverCount?: number;
  /** Whether each shard's instances run on different nodes (`instanceSeparation`). */
  separation?: SeparationVerdict;
  /** With `spec.backup`: status.backup and the BackupReady condition (src/operator/backup/). */
  backup?: BackupView;
  /** With `spec.restore`: status.restore and the Restored condition (src/operator/restore/). */
  restore?: { status: RestoreStatus; condition: Omit<Condition, 'lastTransitionTime'> };
  now: Date;
}

// A planned switchover takes one shard's writes away for about a second: not a reason to alarm.
const READY_PHASES = new Set(['Healthy', 'Unprotected', 'SwitchingOver']);
// Recovering counts as degraded: the shard is back but not yet protected by its standby.
const DEGRADED_PHASES = new Set([
  'FailedOver',
  'Promoting',
  'Recovering',
  'Unavailable',
  'StandbyUnavailable',
  'Unprotected',
  'Diverged',
  'Rebuilding',
]);

export function shardStatusOf(o: ShardOutcome): ShardStatus {
  const m = o.decision.memory;
  const primary = o.instances.find((i) => i.index === m.primaryIndex)!;
  const standby = o.instances.find((i) => i.index !== m.primaryIndex)!;
  return {
    name: o.shard,
    phase: m.phase,
    primaryIndex: m.primaryIndex,
    primaryPod: primary.podName,
    standbyPod: standby.podName,
    readsFrom: o.route.read === null ? 'none' : m.readsFrom,
    writable: o.route.write !== null,
    bootstrapped: m.bootstrapped,
    replicationLagSeconds: o.decision.lagSeconds,
    lagTransactions: o.decision.lagTransactions,
    semiSync: o.decision.semiSync,
    lastTransitionTime: m.lastTransitionTime,
    ...(m.failedOverAt ? { failedOverAt: m.failedOverAt } : {}),
    ...(m.failedOverProtected !== undefined ? { failedOverProtected: m.failedOverProtected } : {}),
    ...(m.standbyMustRejoin ? { standbyMustRejoin: true } : {}),
    ...(m.rebuild ? { rebuild: { ...m.rebuild } } : {}),
    ...(o.retention?.standbyBehindPurge ? { standbyBehindBinlogPurge: true } : {}),
    ...(o.retention?.binlogBytes !== undefined ? { binlogBytes: o.retention.binlogBytes } : {}),
    ...(o.retention?.oldestMessageAgeSeconds !== undefined
      ? { oldestMessageAgeSeconds: o.retention.oldestMessageAgeSeconds }
      : {}),
    ...(o.retention?.error ? { retentionError: o.retention.error } : {}),
    message: [
      o.decision.message,
      o.actionError,
      o.retention?.standbyBehindPurge && `${o.retention.standbyBehindPurge}; it must be rebuilt`,
    ]
      .filter(Boolean)
      .join('; '),
  };
}

/** What an operator restart needs to resume each shard where the last one left it. */
export function memoryFromStatus(s: ShardStatus): ShardMemory {
  return {
    primaryIndex: s.primaryIndex ?? 0,
    bootstrapped: s.bootstrapped ?? false,
    readsFrom: s.readsFrom ?? 'none',
    primaryProbeFailures: 0,
    phase: (s.phase ?? 'Provisioning') as ShardMemory['phase'],
    lastTransitionTime: s.lastTransitionTime,
    failedOverAt: s.failedOverAt,
    failedOverProtected: s.failedOverProtected,
    standbyMustRejoin: s.standbyMustRejoin,
    ...(s.rebuild ? { rebuild: { ...s.rebuild } } : {}),
    // Writes were paused for a switchover (the routing ConfigMap still says so): a restarted
    // operator carries it out on its first tick rather than open writes and pause them again.
    ...(s.phase === 'SwitchingOver' ? { switchoverWritesPaused: true } : {}),
  };
}

export function computeStatus(input: StatusInput): MessageQueueClusterStatus {
  const { previous, now } = input;
  const conditions: Condition[] = [...(previous?.conditions ?? [])];
  const set = (type: ConditionType, status: boolean, reason: string, message: string) =>
    setCondition(
      conditions,
      { type, status: status ? 'True' : 'False', reason, message },
      input.generation,
      now,
    );

  const base: MessageQueueClusterStatus = {
    observedGeneration: input.generation,
    shardsTotal: input.shardsTotal,
    brokerReplicas: input.brokers.ready,
    brokerSelector: input.brokers.selector,
    brokersReady: input.brokers.ready,
    routingVersion: input.routingVersion,
    tls: { ...input.tls },
  };

  if (input.specProblems.length > 0) {
    const message = input.specProblems.join('; ');
    set('Ready', false, 'InvalidSpec', message);
    set('Available', previous?.shardsReady ? true : false, 'InvalidSpec', message);
    set('Progressing', false, 'InvalidSpec', message);
    set('Degraded', true, 'InvalidSpec', message);
    return { ...previous, ...base, phase: 'Failed', conditions };
  }

  const shards = (input.outcomes ?? []).map(shardStatusOf);
  const shardsReady = shards.filter((s) => READY_PHASES.has(s.phase!)).length;
  const writable = shards.filter((s) => s.writable).length;
  const readable = shards.filter((s) => s.readsFrom !== 'none').length;
  const degraded = shards.filter((s) => DEGRADED_PHASES.has(s.phase!) || s.standbyBehindBinlogPurge);
  const provisioning = shards.filter((s) => s.phase === 'Provisioning' || s.phase === 'Recovering');
  const brokersReady = input.brokers.ready >= input.brokers.desired;
  const allShardsReady = shards.length === input.shardsTotal && shardsReady === input.shardsTotal;
  const failovers = shards.map((s) => s.failedOverAt).filter((t): t is string => Boolean(t));
  const lastFailoverTime = [previous?.lastFailoverTime, ...failovers].filter(Boolean).sort().pop();

  const failoverCount = input.failoverCount ?? previous?.failoverCount;
  const lastSwitchover = input.lastSwitchover ?? previous?.lastSwitchover;
  const describe = (list: ShardStatus[]) => list.map((s) => `${s.name}: ${s.message}`).join('; ');
  const ready = allShardsReady && brokersReady;
  set(
    'Ready',
    ready,
    ready ? 'ClusterReady' : !allShardsReady ? 'ShardsNotReady' : 'BrokersNotReady',
    ready
      ? `${shardsReady}/${input.shardsTotal} shards serving reads and writes, ${input.brokers.ready} brokers ready`
      : !allShardsReady
        ? describe(shards.filter((s) => !READY_PHASES.has(s.phase!))) ||
          'waiting for the shards to be observed'
        : `${input.brokers.ready}/${input.brokers.desired} brokers ready`,
  );
  const available = writable > 0 && readable === input.shardsTotal && input.brokers.ready > 0;
  set(
    'Available',
    available,
    available ? 'ServingTraffic' : 'NotServing',
    `${writable}/${input.shardsTotal} shards take writes, ${readable}/${input.shardsTotal} serve reads, ${input.brokers.ready} brokers ready`,
  );
  const progressing = provisioning.length > 0 || !brokersReady;
  set(
    'Progressing',
    progressing,
    progressing ? (provisioning.length ? 'ShardsProgressing' : 'BrokersRollingOut') : 'Stable',
    progressing
      ? describe(provisioning) || `${input.brokers.ready}/${input.brokers.desired} brokers ready`
      : 'nothing in progress',
  );
  set(
    'Degraded',
    degraded.length > 0,
    degraded.length
      ? degraded
          .map((s) => (s.standbyBehindBinlogPurge ? 'StandbyBehindBinlogPurge' : s.phase))
          .filter((p, i, a) => a.indexOf(p) === i)
          .join(',')
      : 'AsExpected',
    degraded.length ? describe(degraded) : 'every shard has its primary and a semi-sync standby',
  );
  if (input.separation) {
    const { status, reason, message } = input.separation;
    setCondition(conditions, { type: 'InstancesSeparated', status, reason, message }, input.generation, now);
  }

  // A cluster without spec.backup has no BackupReady condition (one that had it loses it).
  if (input.backup) {
    setCondition(
      conditions,
      {
        type: BACKUP_READY_CONDITION,
        status: input.backup.ready ? 'True' : 'False',
        reason: input.backup.reason,
        message: input.backup.message,
      },
      input.generation,
      now,
    );
  } else {
    const i = conditions.findIndex((c) => c.type === BACKUP_READY_CONDITION);
    if (i >= 0) conditions.splice(i, 1);
  }

  // Kept after the restore (and after spec.restore is removed): where the data came from.
  if (input.restore) setCondition(conditions, input.restore.condition, input.generation, now);
  const restore = input.restore?.status ?? previous?.restore;

  const phase: ClusterPhase = ready
    ? 'Ready'
    : degraded.length
      ? 'Degraded'
      : shards.length
        ? 'Provisioning'
        : 'Pending';
  return {
    ...base,
    phase,
    conditions,
    shardsReady,
    writableShards: writable,
    ...(lastFailoverTime ? { lastFailoverTime } : {}),
    ...(failoverCount ? { failoverCount } : {}),
    ...(lastSwitchover ? { lastSwitchover } : {}),
    ...(input.backup ? { backup: input.backup.status } : {}),
    ...(restore ? { restore } : {}),
    shards,
  };
}

/** apimachinery's SetStatusCondition: lastTransitionTime moves only when the status changes. */
export function setCondition(
  conditions: Condition[],
  next: Omit<Condition, 'lastTransitionTime' | 'observedGeneration'>,
  generation: number,
  now: Date,
): void {
  const message =
    next.message.length > 32_000 ? `${next.message.slice(0, 32_000)}... [truncated]` : next.message;
  const i = conditions.findIndex((c) => c.type === next.type);
  const existing = conditions[i];
  const condition: Condition = {
    ...next,
    message,
    observedGeneration: generation,
    lastTransitionTime:
      existing && existing.status === next.status ? existing.lastTransitionTime : now.toISOString(),
  };
  if (i >= 0) conditions[i] = condition;
  else conditions.push(condition);
}

/**
 * `status` with every empty string outside lists replaced by `empty`: null for the merge patch
 * (the key is deleted on the server), undefined to compare with what the server holds. The 1.20
 * API server refuses "" for the CRD's string fields ("must be of type string: null", seen with
 * status.backup.lastError after a successful backup), so "nothing" is an absent key there. Lists
 * are left alone: they are replaced whole and hold no such field. Pure.
 */
export function emptyStringsAs<T>(status: T, empty: null | undefined): T {
  if (!status || typeof status !== 'object' || Array.isArray(status)) return status;
  return Object.fromEntries(
    Object.entries(status as Record<string, unknown>).map(([k, v]) => [
      k,
      v === '' ? empty : emptyStringsAs(v, empty),
    ]),
  ) as T;
}
