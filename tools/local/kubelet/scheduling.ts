import type { V1LabelSelector, V1Pod, V1PodAffinityTerm } from '@kubernetes/client-node';

/**
 * The scheduler's filters the test kubelet applies, as pure functions: the pod's nodeSelector,
 * its required pod anti-affinity, and the required anti-affinity of the pods already placed
 * (the rule is symmetric in kube-scheduler's InterPodAffinity plugin). Preferred terms are a
 * matter of scoring, which the kubelet's own spreading stands in for.
 */

export interface SchedulingNode {
  name: string;
  labels: Record<string, string>;
}

/** A pod and the node it runs on (bound, or assumed bound by this scheduler). */
export interface PlacedPod {
  pod: V1Pod;
  node: string;
}

export interface Feasibility {
  nodes: SchedulingNode[];
  /** When no node fits: kube-scheduler's kind of message, e.g. `0/2 nodes are available: ...`. */
  message?: string;
}

/** Whether `labels` satisfy a LabelSelector (matchLabels and matchExpressions). */
export function selectorMatches(
  selector: V1LabelSelector | undefined,
  labels: Record<string, string>,
): boolean {
  if (!selector) return false; // a term without a selector matches no pod
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = e.key in labels;
    const values = e.values ?? [];
    switch (e.operator) {
      case 'In':
        if (!has || !values.includes(labels[e.key]!)) return false;
        break;
      case 'NotIn':
        if (has && values.includes(labels[e.key]!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

const requiredAntiAffinity = (pod: V1Pod): V1PodAffinityTerm[] =>
  pod.spec?.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? [];

/** Whether `term` (declared by `owner`) selects `other`: its namespaces (default the owner's) and labels. */
function termSelects(term: V1PodAffinityTerm, owner: V1Pod, other: V1Pod): boolean {
  const namespaces = term.namespaces?.length ? term.namespaces : [owner.metadata?.namespace];
  return (
    namespaces.includes(other.metadata?.namespace) &&
    selectorMatches(term.labelSelector, other.metadata?.labels ?? {})
  );
}

/** Whether two nodes are in the same topology domain of `key` (both carry the label, same value). */
function sameDomain(a: SchedulingNode, b: SchedulingNode, key: string): boolean {
  return a.labels[key] !== undefined && a.labels[key] === b.labels[key];
}

/** The nodes `pod` may be placed on, given the pods already placed. Pure. */
export function feasibleNodes(
  pod: V1Pod,
  nodes: readonly SchedulingNode[],
  placed: readonly PlacedPod[],
): Feasibility {
  const selector = pod.spec?.nodeSelector ?? {};
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const others = placed.filter((p) => p.pod.metadata?.uid !== pod.metadata?.uid && byName.has(p.node));
  let selectorMisses = 0;
  let antiAffinityMisses = 0;
  let existingAntiAffinityMisses = 0;
  const fits = nodes.filter((node) => {
    if (!Object.entries(selector).every(([k, v]) => node.labels[k] === v)) {
      selectorMisses++;
      return false;
    }
    const conflicts = (term: V1PodAffinityTerm, owner: V1Pod, other: V1Pod, otherNode: SchedulingNode) =>
      sameDomain(node, otherNode, term.topologyKey) && termSelects(term, owner, other);
    if (
      requiredAntiAffinity(pod).some((term) =>
        others.some((o) => conflicts(term, pod, o.pod, byName.get(o.node)!)),
      )
    ) {
      antiAffinityMisses++;
      return false;
    }
    if (
      others.some((o) =>
        requiredAntiAffinity(o.pod).some((term) => conflicts(term, o.pod, pod, byName.get(o.node)!)),
      )
    ) {
      existingAntiAffinityMisses++;
      return false;
    }
    return true;
  });
  if (fits.length) return { nodes: fits };
  const reasons = [
    selectorMisses && `${selectorMisses} node(s) didn't match node selector`,
    antiAffinityMisses && `${antiAffinityMisses} node(s) didn't match pod anti-affinity rules`,
    existingAntiAffinityMisses &&
      `${existingAntiAffinityMisses} node(s) didn't satisfy existing pods anti-affinity rules`,
  ].filter(Boolean);
  return { nodes: [], message: `0/${nodes.length} nodes are available: ${reasons.join(', ')}.` };
}
