import { describe, expect, it } from 'vitest';
import { ANNOTATION_SEED_ID, ANNOTATION_SEED_SOURCE } from '../../../src/agent/contract.js';
import { ANNOTATION_CONFIG_HASH, LABEL_ROLE, LABEL_SHARD } from '../../../src/operator/api/types.js';
import type { DesiredObject } from '../../../src/operator/desired/index.js';
import { type ObservedPod, planPods } from '../../../src/operator/pod-plan.js';

/** Shard 0's primary and standby, as the desired state has them, with config hash `hash`. */
function desiredPods(hash = 'h1'): DesiredObject[] {
  return [
    ['c-shard-0-0', 'primary'],
    ['c-shard-0-1', 'standby'],
  ].map(([name, role]) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: name!,
      namespace: 'ns',
      labels: { [LABEL_ROLE]: role!, [LABEL_SHARD]: 'shard-0' },
      annotations: { [ANNOTATION_CONFIG_HASH]: hash },
    },
  }));
}

/** The running Pod of a desired one; `over` changes its labels, hash, phase, deletion or node. */
function running(
  want: DesiredObject,
  over: { role?: string; hash?: string; phase?: string; deleting?: boolean; unscheduled?: boolean } = {},
): ObservedPod {
  return {
    metadata: {
      name: want.metadata.name,
      labels: { [LABEL_ROLE]: over.role ?? want.metadata.labels[LABEL_ROLE]! },
      annotations: {
        [ANNOTATION_CONFIG_HASH]: over.hash ?? want.metadata.annotations![ANNOTATION_CONFIG_HASH]!,
      },
      ...(over.deleting ? { deletionTimestamp: '2026-12-04T00:00:00Z' } : {}),
    },
    ...(over.unscheduled ? {} : { spec: { nodeName: 'node-a' } }),
    status: {
      phase: over.phase ?? 'Running',
      ...(over.unscheduled
        ? { conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable' }] }
        : {}),
    },
  };
}

const observe = (...pods: ObservedPod[]) => new Map(pods.map((p) => [p.metadata.name, p]));

describe('planPods', () => {
  const [primary, standby] = desiredPods();

  it('does nothing when every Pod runs as desired', () => {
    const plan = planPods({
      desired: [primary!, standby!],
      observed: observe(running(primary!), running(standby!)),
      shardsSettled: true,
    });
    expect(plan).toEqual({ actions: [], progressing: false });
  });

  it('creates the missing Pods', () => {
    const plan = planPods({
      desired: [primary!, standby!],
      observed: observe(running(primary!)),
      shardsSettled: true,
    });
    expect(plan).toEqual({ actions: [{ kind: 'create', pod: standby, role: 'standby' }], progressing: true });
  });

  it('waits for a Pod being deleted', () => {
    const plan = planPods({
      desired: [primary!, standby!],
      observed: observe(running(primary!), running(standby!, { deleting: true, hash: 'old' })),
      shardsSettled: true,
    });
    expect(plan).toEqual({ actions: [], progressing: true });
  });

  it('replaces Failed and Succeeded Pods', () => {
    const plan = planPods({
      desired: [primary!, standby!],
      observed: observe(running(primary!, { phase: 'Failed' }), running(standby!, { phase: 'Succeeded' })),
      shardsSettled: true,
    });
    expect(plan).toEqual({
      actions: [
        { kind: 'replace', name: 'c-shard-0-0', phase: 'Failed' },
        { kind: 'replace', name: 'c-shard-0-1', phase: 'Succeeded' },
      ],
      progressing: true,
    });
  });

  it('relabels roles after a failover without counting it as progress', () => {
    const plan = planPods({
      desired: [primary!, standby!],
      observed: observe(running(primary!, { role: 'standby' }), running(standby!, { role: 'primary' })),
      shardsSettled: true,
    });
    expect(plan).toEqual({
      actions: [
        { kind: 'relabel', name: 'c-shard-0-0', role: 'primary' },
        { kind: 'relabel', name: 'c-shard-0-1', role: 'standby' },
      ],
      progressing: false,
    });
  });

  it('rolls a changed spec one Pod at a time, the standby first', () => {
    const [p2, s2] = desiredPods('h2');
    const plan = planPods({
      desired: [p2!, s2!],
      observed: observe(running(primary!), running(standby!)),
      shardsSettled: true,
    });
    expect(plan).toEqual({
      actions: [{ kind: 'roll', name: 'c-shard-0-1', role: 'standby', stale: 2 }],
      progressing: true,
    });
  });

  it('rolls the primary once no standby is stale', () => {
    const [p2, s2] = desiredPods('h2');
    const plan = planPods({
      desired: [p2!, s2!],
      observed: observe(running(primary!), running(s2!)),
      shardsSettled: true,
    });
    expect(plan.actions).toEqual([{ kind: 'roll', name: 'c-shard-0-0', role: 'primary', stale: 1 }]);
  });

  it('does not roll while the shards are not settled', () => {
    const [p2, s2] = desiredPods('h2');
    const plan = planPods({
      desired: [p2!, s2!],
      observed: observe(running(primary!), running(standby!)),
      shardsSettled: false,
    });
    expect(plan).toEqual({ actions: [], progressing: true });
  });

  it('recreates at once a stale Pod that no node took, without waiting for the shards', () => {
    const [p2, s2] = desiredPods('h2');
    const plan = planPods({
      desired: [p2!, s2!],
      observed: observe(running(primary!), running(standby!, { phase: 'Pending', unscheduled: true })),
      shardsSettled: false,
    });
    expect(plan).toEqual({ actions: [{ kind: 'reschedule', name: 'c-shard-0-1' }], progressing: true });
    // One that is current stays Pending: recreating it would not place it.
    expect(
      planPods({
        desired: [primary!, standby!],
        observed: observe(running(primary!), running(standby!, { phase: 'Pending', unscheduled: true })),
        shardsSettled: false,
      }).actions,
    ).toEqual([]);
  });

  it("rolls a shard's stale Pod at once when the shard's current Pod finds no node", () => {
    // The primary still carries the old required anti-affinity, which keeps the relaxed standby off
    // the one node allowed: waiting for the shard to settle would wait forever.
    const [p2, s2] = desiredPods('h2');
    const plan = planPods({
      desired: [p2!, s2!],
      observed: observe(running(primary!), running(s2!, { phase: 'Pending', unscheduled: true })),
      shardsSettled: false,
    });
    expect(plan).toEqual({
      actions: [{ kind: 'roll', name: 'c-shard-0-0', role: 'primary', stale: 1 }],
      progressing: true,
    });
  });

  it('does not roll while another Pod is on its way, but still creates it', () => {
    const [p2, s2] = desiredPods('h2');
    const plan = planPods({ desired: [p2!, s2!], observed: observe(running(primary!)), shardsSettled: true });
    expect(plan).toEqual({ actions: [{ kind: 'create', pod: s2, role: 'standby' }], progressing: true });
  });

  it('relabels and rolls in one plan, relabels first', () => {
    const [p2, s2] = desiredPods('h2');
    const plan = planPods({
      desired: [p2!, s2!],
      observed: observe(running(primary!, { role: 'standby' }), running(s2!)),
      shardsSettled: true,
    });
    expect(plan.actions).toEqual([
      { kind: 'relabel', name: 'c-shard-0-0', role: 'primary' },
      { kind: 'roll', name: 'c-shard-0-0', role: 'primary', stale: 1 },
    ]);
  });

  it('deletes a Pod the shard loop asked to rebuild, once per seed id', () => {
    const rebuilt: DesiredObject = {
      ...standby!,
      metadata: {
        ...standby!.metadata,
        annotations: {
          ...standby!.metadata.annotations,
          [ANNOTATION_SEED_ID]: 'r1',
          [ANNOTATION_SEED_SOURCE]: '10.0.0.1:8081',
        },
      },
    };
    const plan = planPods({
      desired: [primary!, rebuilt],
      observed: observe(running(primary!), running(standby!)),
      shardsSettled: true,
    });
    expect(plan).toEqual({
      actions: [{ kind: 'rebuild', name: 'c-shard-0-1', id: 'r1', source: '10.0.0.1:8081' }],
      progressing: true,
    });
    const seeded = running(standby!);
    seeded.metadata.annotations![ANNOTATION_SEED_ID] = 'r1';
    expect(
      planPods({
        desired: [primary!, rebuilt],
        observed: observe(running(primary!), seeded),
        shardsSettled: true,
      }),
    ).toEqual({ actions: [], progressing: false });
  });
});
