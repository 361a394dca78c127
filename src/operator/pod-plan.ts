import { ANNOTATION_SEED_ID, ANNOTATION_SEED_SOURCE } from '../agent/contract.js';
import { ANNOTATION_CONFIG_HASH, LABEL_ROLE, LABEL_SHARD } from './api/types.js';
import type { DesiredObject } from './desired/index.js';
import type { PodLike } from './shards/observe.js';

/**
 * The instance Pod policy, as a pure function of the desired Pods and the Pods the cache holds:
 * create the missing, replace Failed ones, delete the ones the shard loop asked to rebuild, relabel roles after a failover, recreate an unscheduled Pod whose spec changed, and roll a changed spec
 * one Pod at a time, standbys first, only while every shard is healthy (a restarted primary goes
 * through the failover path: reads from its standby, writes to the other shards). The reconciler
 * observes, calls this, and executes the actions in order; every branch is unit-tested.
 */

/** A Pod as the cache holds it: what the plan reads. */
export interface ObservedPod extends PodLike {
  metadata: {
    name: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    deletionTimestamp?: unknown;
  };
}

export interface PodPlanInput {
  /** The cluster's instance Pods as they should be, in order (shard by shard). */
  desired: readonly DesiredObject[];
  /** The Pods that exist, by name. */
  observed: ReadonlyMap<string, ObservedPod>;
  /**
   * Every shard is Healthy with both Pods ready, as seen by a shard-loop tick that started long
   * enough after the last roll (a tick from before it would still show the deleted Pod as healthy).
   */
  shardsSettled: boolean;
}

export type PodAction =
  /** POST the desired Pod (a conflict means it exists already). */
  | { kind: 'create'; pod: DesiredObject; role: string }
  /** Delete a Pod that ended (Failed or Succeeded) so it is created again on the same volume. */
  | { kind: 'replace'; name: string; phase: string }
  /** Delete a Pod the shard loop asked to rebuild (seed id `id`, copied from `source`). */
  | { kind: 'rebuild'; name: string; id: string; source: string | undefined }
  /** Merge-patch the role label after a failover swapped primary and standby. */
  | { kind: 'relabel'; name: string; role: string }
  /**
   * Delete a Pod that is stale and on no node yet (no node fit its old spec): it never ran, so it
   * is created again with the new spec at once, e.g. after spec.placement or nodeSelector was relaxed.
   */
  | { kind: 'reschedule'; name: string }
  /** Delete a Pod whose config hash is stale; `stale` counts the stale Pods including this one. */
  | { kind: 'roll'; name: string; role: string; stale: number };

export interface PodPlan {
  actions: PodAction[];
  /** Something is still on its way (the reconciler requeues sooner). */
  progressing: boolean;
}

/** No node takes the Pod (the scheduler set PodScheduled False, reason Unschedulable). */
const unschedulable = (pod: ObservedPod) =>
  !pod.spec?.nodeName &&
  (pod.status?.conditions as { type: string; status: string; reason?: string }[] | undefined)?.some(
    (c) => c.type === 'PodScheduled' && c.status === 'False' && c.reason === 'Unschedulable',
  ) === true;

export function planPods({ desired, observed, shardsSettled }: PodPlanInput): PodPlan {
  const actions: PodAction[] = [];
  let progressing = false;
  const stale: { name: string; role: string; shard?: string }[] = [];
  /** Shards with a current Pod that no node takes. */
  const blocked = new Set<string | undefined>();
  for (const want of desired) {
    const name = want.metadata.name;
    const role = want.metadata.labels[LABEL_ROLE]!;
    const shard = want.metadata.labels[LABEL_SHARD];
    const pod = observed.get(name);
    if (!pod) {
      progressing = true;
      actions.push({ kind: 'create', pod: want, role });
      continue;
    }
    if (pod.metadata.deletionTimestamp) {
      progressing = true;
      continue;
    }
    const phase = pod.status?.phase;
    if (phase === 'Failed' || phase === 'Succeeded') {
      progressing = true;
      actions.push({ kind: 'replace', name, phase });
      continue;
    }
    const rebuildId = want.metadata.annotations?.[ANNOTATION_SEED_ID];
    if (rebuildId && pod.metadata.annotations?.[ANNOTATION_SEED_ID] !== rebuildId) {
      progressing = true;
      const source = want.metadata.annotations?.[ANNOTATION_SEED_SOURCE];
      actions.push({ kind: 'rebuild', name, id: rebuildId, source });
      continue;
    }
    if (pod.metadata.labels?.[LABEL_ROLE] !== role) actions.push({ kind: 'relabel', name, role });
    if (
      pod.metadata.annotations?.[ANNOTATION_CONFIG_HASH] !==
      want.metadata.annotations?.[ANNOTATION_CONFIG_HASH]
    ) {
      if (!pod.spec?.nodeName) {
        progressing = true;
        actions.push({ kind: 'reschedule', name });
        continue;
      }
      stale.push({ name, role, shard });
    } else if (unschedulable(pod)) {
      blocked.add(shard);
    }
  }
  if (!stale.length) return { actions, progressing };
  // A shard whose current Pod finds no node cannot settle: the other, stale Pod (e.g. one still
  // carrying the required anti-affinity that spec.placement just relaxed) may be what keeps it
  // off the node. It is rolled now; the shard serves nothing protected meanwhile anyway.
  const unblocking = stale.filter((s) => blocked.has(s.shard));
  if (unblocking.length) {
    for (const s of unblocking)
      actions.push({ kind: 'roll', name: s.name, role: s.role, stale: stale.length });
    return { actions, progressing: true };
  }
  // A roll waits for a quiet cluster: nothing else on its way and every shard settled.
  if (progressing || !shardsSettled) return { actions, progressing: true };
  const next = stale.find((s) => s.role === 'standby') ?? stale[0]!;
  actions.push({ kind: 'roll', name: next.name, role: next.role, stale: stale.length });
  return { actions, progressing: true };
}
