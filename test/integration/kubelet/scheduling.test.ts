/**
 * The test kubelet's scheduler filters (tools/local/kubelet/scheduling.ts): e2e tests of placement
 * rules mean something only if the kubelet honours them as kube-scheduler does.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { feasibleNodes, selectorMatches } from '../../../tools/local/kubelet/scheduling.js';

const nodes = ['node-a', 'node-b'].map((name) => ({
  name,
  labels: { 'kubernetes.io/hostname': name, zone: 'z1' },
}));
const shard0 = { 'mysqlmq.io/cluster': 'mq', 'mysqlmq.io/shard': 'shard-0' };

function pod(uid: string, labels: Record<string, string>, spec: V1Pod['spec'] = { containers: [] }): V1Pod {
  return { metadata: { uid, name: uid, namespace: 'ns', labels }, spec };
}
const antiAffinity = (topologyKey = 'kubernetes.io/hostname'): V1Pod['spec'] => ({
  containers: [],
  affinity: {
    podAntiAffinity: {
      requiredDuringSchedulingIgnoredDuringExecution: [
        { topologyKey, labelSelector: { matchLabels: shard0 } },
      ],
    },
  },
});
const names = (r: ReturnType<typeof feasibleNodes>) => r.nodes.map((n) => n.name);

describe('feasibleNodes', () => {
  it("keeps a pod with required anti-affinity off the node of a pod its term selects, in the pod's namespace", () => {
    const standby = pod('s', shard0, antiAffinity());
    const primary = { pod: pod('p', shard0, antiAffinity()), node: 'node-a' };
    expect(names(feasibleNodes(standby, nodes, [primary]))).toEqual(['node-b']);
    // Another shard, or the same labels in another namespace, do not count.
    const other = { pod: pod('o', { ...shard0, 'mysqlmq.io/shard': 'shard-1' }), node: 'node-b' };
    const elsewhere = {
      pod: { ...pod('e', shard0), metadata: { uid: 'e', namespace: 'x', labels: shard0 } },
      node: 'node-b',
    };
    expect(names(feasibleNodes(standby, nodes, [primary, other, elsewhere]))).toEqual(['node-b']);
  });

  it("honours a placed pod's required anti-affinity against an incoming pod without one", () => {
    const primary = { pod: pod('p', shard0, antiAffinity()), node: 'node-b' };
    expect(names(feasibleNodes(pod('plain', shard0), nodes, [primary]))).toEqual(['node-a']);
  });

  it('says why when no node fits, as kube-scheduler does', () => {
    const standby = pod('s', shard0, {
      ...antiAffinity(),
      nodeSelector: { 'kubernetes.io/hostname': 'node-a' },
    });
    const primary = { pod: pod('p', shard0, antiAffinity()), node: 'node-a' };
    expect(feasibleNodes(standby, nodes, [primary])).toEqual({
      nodes: [],
      message:
        "0/2 nodes are available: 1 node(s) didn't match node selector, 1 node(s) didn't match pod anti-affinity rules.",
    });
    // A wider topology key (both nodes in zone z1) excludes both.
    expect(feasibleNodes(pod('s2', shard0, antiAffinity('zone')), nodes, [primary]).nodes).toEqual([]);
  });

  it('ignores the pod itself and preferred terms', () => {
    const self = pod('p', shard0, antiAffinity());
    expect(names(feasibleNodes(self, nodes, [{ pod: self, node: 'node-a' }]))).toEqual(['node-a', 'node-b']);
    const preferred = pod('q', shard0, {
      containers: [],
      affinity: {
        podAntiAffinity: {
          preferredDuringSchedulingIgnoredDuringExecution: [
            {
              weight: 100,
              podAffinityTerm: {
                topologyKey: 'kubernetes.io/hostname',
                labelSelector: { matchLabels: shard0 },
              },
            },
          ],
        },
      },
    });
    expect(names(feasibleNodes(preferred, nodes, [{ pod: pod('r', shard0), node: 'node-a' }]))).toEqual([
      'node-a',
      'node-b',
    ]);
  });
});

describe('selectorMatches', () => {
  it('applies matchLabels and every matchExpressions operator', () => {
    const labels = { a: '1', b: '2' };
    expect(selectorMatches({ matchLabels: { a: '1' } }, labels)).toBe(true);
    expect(selectorMatches({ matchLabels: { a: '2' } }, labels)).toBe(false);
    expect(
      selectorMatches({ matchExpressions: [{ key: 'a', operator: 'In', values: ['1', '3'] }] }, labels),
    ).toBe(true);
    expect(
      selectorMatches({ matchExpressions: [{ key: 'b', operator: 'NotIn', values: ['2'] }] }, labels),
    ).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: 'c', operator: 'Exists' }] }, labels)).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: 'c', operator: 'DoesNotExist' }] }, labels)).toBe(
      true,
    );
    expect(selectorMatches(undefined, labels)).toBe(false);
  });
});
