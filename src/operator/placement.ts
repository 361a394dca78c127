import type { InstanceAntiAffinity } from './api/types.js';
import { names } from './desired/meta.js';

/** The parts of an instance Pod that say where it runs, or why it runs nowhere. */
export interface PlacedPod {
  metadata?: { name?: string; deletionTimestamp?: unknown };
  spec?: { nodeName?: string };
  status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] };
}

/** The InstancesSeparated condition's content (`status` True, False or Unknown). */
export interface SeparationVerdict {
  status: 'True' | 'False' | 'Unknown';
  /** SeparateNodes, SameNode, Unschedulable or NotScheduled. */
  reason: string;
  message: string;
}

/** The scheduler's message when it found no node for the Pod (PodScheduled False, Unschedulable). */
function unschedulableMessage(pod: PlacedPod): string | undefined {
  if (pod.spec?.nodeName) return undefined;
  const c = pod.status?.conditions?.find((x) => x.type === 'PodScheduled');
  return c?.status === 'False' && c.reason === 'Unschedulable' ? (c.message ?? '') : undefined;
}

/**
 * Whether every shard's two instance Pods run on different nodes, from the cluster's instance
 * Pods. Unschedulable (an instance has no node it may run on) wins over SameNode (two instances
 * share a node), which wins over NotScheduled (a Pod not created or not placed yet). Pure.
 */
export function instanceSeparation(
  cluster: string,
  shards: number,
  mode: InstanceAntiAffinity,
  pods: readonly PlacedPod[],
): SeparationVerdict {
  const unschedulable: string[] = [];
  const sameNode: string[] = [];
  const notScheduled: string[] = [];
  for (let s = 0; s < shards; s++) {
    const instances = [0, 1].map((i) => {
      const name = names.pod(cluster, s, i);
      return { name, pod: pods.find((p) => p.metadata?.name === name && !p.metadata.deletionTimestamp) };
    });
    const nodes = instances.map(({ pod }) => pod?.spec?.nodeName);
    for (const { name, pod } of instances) {
      const why = pod && unschedulableMessage(pod);
      if (why !== undefined) unschedulable.push(`Pod ${name} cannot be scheduled: ${why || 'no node fits'}`);
      else if (!pod?.spec?.nodeName) notScheduled.push(name);
    }
    if (nodes[0] && nodes[0] === nodes[1]) {
      sameNode.push(
        `${names.shard(s)}: ${instances[0]!.name} and ${instances[1]!.name} both run on ${nodes[0]}`,
      );
    }
  }
  if (unschedulable.length) {
    const hint =
      mode === 'required'
        ? '; the two instances of a shard need two nodes they may run on (spec.placement.instanceAntiAffinity: required): add a node, widen spec.podTemplate.nodeSelector, or set it to preferred'
        : '';
    return { status: 'False', reason: 'Unschedulable', message: `${unschedulable.join('; ')}${hint}` };
  }
  if (sameNode.length) {
    return {
      status: 'False',
      reason: 'SameNode',
      message: `${sameNode.join('; ')}: losing that node takes the shard down (spec.placement.instanceAntiAffinity: ${mode})`,
    };
  }
  if (notScheduled.length) {
    return {
      status: 'Unknown',
      reason: 'NotScheduled',
      message: `not on a node yet: ${notScheduled.join(', ')}`,
    };
  }
  return {
    status: 'True',
    reason: 'SeparateNodes',
    message: `the primary and standby of each of the ${shards} shards run on different nodes`,
  };
}
