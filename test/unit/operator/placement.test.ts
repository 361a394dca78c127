import { describe, expect, it } from 'vitest';
import { type PlacedPod, instanceSeparation } from '../../../src/operator/placement.js';

const onNode = (name: string, nodeName: string): PlacedPod => ({ metadata: { name }, spec: { nodeName } });
const unschedulable = (name: string, message: string): PlacedPod => ({
  metadata: { name },
  spec: {},
  status: { conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message }] },
});

describe('instanceSeparation', () => {
  it('is True when every shard has its primary and standby on different nodes', () => {
    const pods = [
      onNode('mq-shard-0-0', 'node-a'),
      onNode('mq-shard-0-1', 'node-b'),
      onNode('mq-shard-1-0', 'node-b'),
      onNode('mq-shard-1-1', 'node-a'),
    ];
    expect(instanceSeparation('mq', 2, 'required', pods)).toMatchObject({
      status: 'True',
      reason: 'SeparateNodes',
    });
  });

  it('names the shard and the node when both instances share one', () => {
    const pods = [
      onNode('mq-shard-0-0', 'node-a'),
      onNode('mq-shard-0-1', 'node-b'),
      onNode('mq-shard-1-0', 'node-a'),
      onNode('mq-shard-1-1', 'node-a'),
    ];
    const v = instanceSeparation('mq', 2, 'preferred', pods);
    expect(v).toMatchObject({ status: 'False', reason: 'SameNode' });
    expect(v.message).toContain('shard-1: mq-shard-1-0 and mq-shard-1-1 both run on node-a');
    expect(v.message).not.toContain('shard-0');
  });

  it('says an instance cannot be scheduled, with the scheduler message and what to do', () => {
    const why = "0/1 nodes are available: 1 node(s) didn't match pod anti-affinity rules.";
    const pods = [onNode('mq-shard-0-0', 'node-a'), unschedulable('mq-shard-0-1', why)];
    const v = instanceSeparation('mq', 1, 'required', pods);
    expect(v).toMatchObject({ status: 'False', reason: 'Unschedulable' });
    expect(v.message).toContain(`Pod mq-shard-0-1 cannot be scheduled: ${why}`);
    expect(v.message).toContain('set it to preferred');
    // Under preferred the anti-affinity is not the cause: no hint about it.
    expect(instanceSeparation('mq', 1, 'preferred', pods).message).not.toContain('preferred');
  });

  it('is Unknown while a Pod is missing, being deleted or not placed yet', () => {
    expect(instanceSeparation('mq', 1, 'required', [onNode('mq-shard-0-0', 'node-a')])).toMatchObject({
      status: 'Unknown',
      reason: 'NotScheduled',
      message: 'not on a node yet: mq-shard-0-1',
    });
    const deleting = {
      ...onNode('mq-shard-0-1', 'node-a'),
      metadata: { name: 'mq-shard-0-1', deletionTimestamp: 'x' },
    };
    expect(instanceSeparation('mq', 1, 'required', [onNode('mq-shard-0-0', 'node-a'), deleting]).status).toBe(
      'Unknown',
    );
  });
});
