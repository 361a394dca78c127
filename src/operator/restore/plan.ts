import { AGENT_PORT } from '../../agent/contract.js';
import type { Condition, DefaultedCluster, RestoreStatus } from '../api/types.js';
import { RESTORING_INSTANCE, type SeedAnnotations, names } from '../desired/index.js';

/**
 * The operator's side of `spec.restore`, as pure functions: which Pods restore, which wait, and what
 * status says. The restore itself runs in instance 0's seed step (src/agent/restore-step.ts); the
 * standby is seeded from that primary once it is up, as a standby of a shard holding data is.
 */

/** What the plan reads of a shard: the shard loop's memory and instance 0's Pod. */
export interface RestoringShard {
  name: string;
  bootstrapped: boolean;
  /** Instance 0's Pod; undefined while it does not exist. */
  primaryPod?: {
    ready: boolean;
    podIP?: string;
    /** The seed step's status (initContainerStatuses[name=seed]). */
    seed?: SeedStepStatus;
  };
}

export interface SeedStepStatus {
  restartCount: number;
  state?: { terminated?: { exitCode: number; finishedAt?: string } };
  lastState?: { terminated?: { exitCode: number; finishedAt?: string } };
}

export interface RestorePodPlan {
  /** Shards whose instance 0 is created with the restore annotation. */
  restoring: Set<string>;
  /** Standby Pods not to be created yet: their primary has not restored and started. */
  held: Set<string>;
  /** Standby Pods created now seed from their restored primary. */
  seeds: Record<string, SeedAnnotations>;
}

/**
 * Until a shard is bootstrapped, its instance 0 restores and its standby waits for that primary
 * to be ready, then copies it (the restored data, not an empty shard: bootstrap would otherwise
 * attach an empty standby to a primary whose history starts after the restore).
 */
export function planRestorePods(cr: DefaultedCluster, shards: readonly RestoringShard[]): RestorePodPlan {
  const plan: RestorePodPlan = { restoring: new Set(), held: new Set(), seeds: {} };
  if (!cr.spec.restore) return plan;
  shards.forEach((shard, i) => {
    if (shard.bootstrapped) return;
    plan.restoring.add(shard.name);
    const standby = names.pod(cr.metadata.name, i, 1 - RESTORING_INSTANCE);
    const primary = shard.primaryPod;
    if (primary?.ready && primary.podIP) plan.seeds[standby] = { source: `${primary.podIP}:${AGENT_PORT}` };
    else plan.held.add(standby);
  });
  return plan;
}

/** How a shard's restore stands, from its seed step. Pure. */
export function shardRestoreState(
  shard: RestoringShard,
): { done: true; at: string } | { done: false; failures: number } {
  const seed = shard.primaryPod?.seed;
  const ended = seed?.state?.terminated;
  if (ended?.exitCode === 0) return { done: true, at: ended.finishedAt ?? '' };
  // Past the init step (the kubelet reports it terminated, or the Pod is ready).
  if (shard.primaryPod?.ready) return { done: true, at: '' };
  const failed = [seed?.state?.terminated, seed?.lastState?.terminated].some((t) => t && t.exitCode !== 0);
  return { done: false, failures: failed ? Math.max(seed?.restartCount ?? 0, 1) : 0 };
}

export interface RestoreReport {
  status: RestoreStatus;
  condition: Omit<Condition, 'lastTransitionTime'>;
  /** Events to record now (a change since `previous`). */
  events: { type: 'Normal' | 'Warning'; reason: string; message: string }[];
}

/**
 * status.restore, the Restored condition and the Events due, from the shards and what status held
 * before. `sourceProblem`: why the source cannot be restored (checked by the operator before any
 * Pod exists). `now` stamps a completion the kubelet gave no time for. Pure.
 */
export function restoreReport(
  cr: DefaultedCluster,
  from: string,
  shards: readonly RestoringShard[],
  previous: RestoreStatus | undefined,
  sourceProblem: string | undefined,
  now: Date,
): RestoreReport | undefined {
  const restore = cr.spec.restore;
  if (!restore) return undefined;
  const events: RestoreReport['events'] = [];
  const base = { from, ...(restore.pointInTime ? { pointInTime: restore.pointInTime } : {}) };
  const point = restore.pointInTime ? ` to ${restore.pointInTime}` : ' (newest backup)';
  if (!previous)
    events.push({ type: 'Normal', reason: 'RestoreStarted', message: `restoring from ${from}${point}` });
  if (sourceProblem) {
    if (previous?.error !== sourceProblem)
      events.push({ type: 'Warning', reason: 'RestoreFailed', message: sourceProblem });
    return {
      status: { ...base, error: sourceProblem },
      condition: { type: 'Restored', status: 'False', reason: 'SourceUnusable', message: sourceProblem },
      events,
    };
  }
  if (previous?.completedTime)
    return {
      status: previous,
      condition: {
        type: 'Restored',
        status: 'True',
        reason: 'RestoreCompleted',
        message: `restored from ${from}${point}`,
      },
      events,
    };
  const shardStatus = shards.map((s): { name: string; completedTime?: string; failures: number } => {
    const before = previous?.shards?.find((p) => p.name === s.name)?.completedTime;
    if (before || s.bootstrapped)
      return { name: s.name, completedTime: before ?? now.toISOString(), failures: 0 };
    const state = shardRestoreState(s);
    return state.done
      ? { name: s.name, completedTime: state.at || now.toISOString(), failures: 0 }
      : { name: s.name, failures: state.failures };
  });
  const failingPods = shards
    .map((_, i) => names.pod(cr.metadata.name, i, RESTORING_INSTANCE))
    .filter((_, i) => shardStatus[i]!.failures > 0);
  // No attempt count: the message changes only when the set of failing Pods does (one Event).
  const error = failingPods.length
    ? `the restore failed in the seed init step of Pod ${failingPods.join(', ')} (retried with back-off); \`kubectl logs -n ${cr.metadata.namespace} ${failingPods[0]} -c seed\` says why`
    : undefined;
  const pending = shardStatus.filter((s) => !s.completedTime);
  const done = pending.length === 0;
  const status: RestoreStatus = {
    ...base,
    shards: shardStatus.map(({ name, completedTime }) => ({
      name,
      ...(completedTime ? { completedTime } : {}),
    })),
    ...(done
      ? {
          completedTime: shardStatus
            .map((s) => s.completedTime!)
            .sort()
            .at(-1)!,
        }
      : {}),
    // Always present: a merge patch of status cannot remove a key, so a fixed error becomes ''.
    error: error ?? '',
  };
  if (error && previous?.error !== error)
    events.push({ type: 'Warning', reason: 'RestoreFailed', message: error });
  if (done)
    events.push({
      type: 'Normal',
      reason: 'RestoreCompleted',
      message: `every shard restored from ${from}${point}`,
    });
  return {
    status,
    condition: done
      ? {
          type: 'Restored',
          status: 'True',
          reason: 'RestoreCompleted',
          message: `restored from ${from}${point}`,
        }
      : error
        ? { type: 'Restored', status: 'False', reason: 'RestoreFailed', message: error }
        : {
            type: 'Restored',
            status: 'False',
            reason: 'Restoring',
            message: `restoring ${pending.length} of ${shards.length} shards from ${from}${point}`,
          },
    events,
  };
}
