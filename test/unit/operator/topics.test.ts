import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { parseTopicSettings } from '../../../src/api/topic-settings.js';
import {
  LABEL_DISCOVERED,
  type MessageQueueTopic,
  TOPIC_KIND,
  TOPIC_PLURAL,
} from '../../../src/operator/api/topic-types.js';
import {
  discoveredName,
  discoveredTopics,
  readyCondition,
  settingsJson,
  settingsOf,
  specFromStored,
  topicNameOf,
  topicOwner,
} from '../../../src/operator/topics/plan.js';
import { TOPIC_NAME_PATTERN } from '../../../src/shard/schema.js';

const topic = (
  name: string,
  spec: Partial<MessageQueueTopic['spec']> = {},
  created = '2026-01-01T00:00:00Z',
): MessageQueueTopic => ({
  metadata: { name, namespace: 'ns', creationTimestamp: created },
  spec: { cluster: 'mq', ...spec },
});

describe('MessageQueueTopic CRD', () => {
  const crd = yaml.load(
    readFileSync(join(import.meta.dirname, '../../../crds/mysqlmq.io_messagequeuetopics.yaml'), 'utf8'),
  ) as any;
  it('names the kind and short name the plugin and the operator use', () => {
    expect(crd.metadata.name).toBe(`${TOPIC_PLURAL}.mysqlmq.io`);
    expect(crd.spec.names).toMatchObject({ kind: TOPIC_KIND, shortNames: ['mqt'] });
  });
  it("checks topicName with the broker's pattern", () => {
    const spec = crd.spec.versions[0].schema.openAPIV3Schema.properties.spec;
    expect(spec.properties.topicName.pattern).toBe(TOPIC_NAME_PATTERN.source);
    expect(spec.required).toEqual(['cluster']);
    expect(spec.properties.maxDeliveries.minimum).toBe(1);
  });
});

describe('topic settings from the spec', () => {
  it('maps the spec to the stored keys and back, in a fixed order', () => {
    const spec = { cluster: 'mq', maxDeliveries: 3, retention: { maxAgeHours: 2 }, maxMessageBytes: 1000 };
    const json = settingsJson(settingsOf(spec));
    expect(json).toBe('{"retentionMaxAgeHours":2,"maxDeliveries":3,"maxMessageBytes":1000}');
    expect(parseTopicSettings(json)).toEqual({
      retentionMaxAgeHours: 2,
      maxDeliveries: 3,
      maxMessageBytes: 1000,
    });
    expect(specFromStored('mq', 'orders', json)).toEqual({ ...spec, topicName: 'orders' });
  });
  it('stores NULL when nothing is set', () => {
    expect(settingsJson(settingsOf({ cluster: 'mq' }))).toBeNull();
  });
  it('takes the topic name from metadata.name unless topicName is given', () => {
    expect(topicNameOf(topic('a'))).toBe('a');
    expect(topicNameOf(topic('a', { topicName: 'b_c' }))).toBe('b_c');
  });
});

describe('discovered topics', () => {
  const cluster = { name: 'mq', namespace: 'ns', uid: 'u1' };
  it('creates a labelled resource without finalizer for each topic no resource names', () => {
    const found = new Map<string, string | null>([
      ['orders', null],
      ['declared', null],
      ['events', '{"maxDeliveries":5}'],
    ]);
    const created = discoveredTopics(cluster, found, [topic('x', { topicName: 'declared' })]);
    expect(created.map((t) => t.spec.topicName)).toEqual(['events', 'orders']);
    expect(created[0]!.metadata.labels?.[LABEL_DISCOVERED]).toBe('true');
    expect(created[0]!.metadata.finalizers).toBeUndefined();
    expect(created[0]!.spec.maxDeliveries).toBe(5);
    expect((created[0]!.metadata.ownerReferences as { uid: string }[])[0]!.uid).toBe('u1');
  });
  it("ignores another cluster's resources for the same topic", () => {
    const created = discoveredTopics(cluster, new Map([['orders', null]]), [
      topic('orders', { cluster: 'other' }),
    ]);
    expect(created).toHaveLength(1);
    expect(created[0]!.metadata.name).not.toBe('orders'); // the name is taken in the namespace
  });
  it('names a resource after its topic when that is a valid, free object name', () => {
    expect(discoveredName('mq', 'orders.v2', new Set())).toBe('orders.v2');
    const other = discoveredName('mq', 'my_topic', new Set());
    expect(other).toMatch(/^mq-my-topic-[0-9a-f]{8}$/);
    expect(discoveredName('mq', 'orders', new Set(['orders']))).not.toBe(
      discoveredName('mq2', 'orders', new Set(['orders'])),
    );
  });
});

describe('conflicts and conditions', () => {
  it('the oldest resource naming a cluster topic owns it', () => {
    const a = topic('a', { topicName: 't' }, '2026-01-01T00:00:00Z');
    const b = topic('b', { topicName: 't' }, '2026-01-02T00:00:00Z');
    expect(topicOwner(b, [a, b]).metadata.name).toBe('a');
    expect(topicOwner(a, [a, b]).metadata.name).toBe('a');
    expect(
      topicOwner(b, [{ ...a, metadata: { ...a.metadata, deletionTimestamp: 'x' } }, b]).metadata.name,
    ).toBe('b');
  });
  it('keeps lastTransitionTime while the status stays', () => {
    const first = readyCondition(undefined, false, 'ShardsPending', 'm', 1, new Date(1000));
    const same = readyCondition([first], false, 'ShardsPending', 'm2', 1, new Date(5000));
    expect(same.lastTransitionTime).toBe(first.lastTransitionTime);
    const ready = readyCondition([first], true, 'TopicReady', 'm', 1, new Date(5000));
    expect(ready.lastTransitionTime).toBe(new Date(5000).toISOString());
  });
});
