import { describe, expect, it } from 'vitest';
import {
  hashOf,
  names,
  objectMeta,
  pdbApiVersion,
  resourcesOf,
  selectorString,
  withRequiredAntiAffinity,
  withSpreadAffinity,
} from '../../../src/operator/desired/meta.js';
import { OWNER, STANDARD_LABELS, cluster } from './fixtures.js';

describe('names', () => {
  it('follow docs/operator-design.md', () => {
    expect(names.credentials('mq')).toBe('mq-credentials');
    expect(names.mycnf('mq', 3)).toBe('mq-shard-3-mycnf');
    expect(names.pod('mq', 3, 1)).toBe('mq-shard-3-1');
    expect(names.pvc('mq', 3, 1)).toBe('data-mq-shard-3-1');
    expect(names.shardService('mq', 3, 'standby')).toBe('mq-shard-3-standby');
    expect(names.shardPdb('mq', 3)).toBe('mq-shard-3');
    expect(names.routing('mq')).toBe('mq-routing');
    expect(names.broker('mq')).toBe('mq-broker');
  });

  it('fit a 63-character DNS label for the longest allowed cluster name and shard index', () => {
    const longest = 'a'.repeat(46);
    expect(names.shardService(longest, 63, 'standby').length).toBeLessThanOrEqual(63);
    expect(names.shardService(longest + 'b', 63, 'standby').length).toBeGreaterThan(63);
  });
});

describe('objectMeta', () => {
  it('carries the standard labels, the component and a controller ownerReference', () => {
    const meta = objectMeta(cluster(), 'x', 'broker', { labels: { extra: 'y' } });
    expect(meta).toEqual({
      name: 'x',
      namespace: 'ns',
      labels: { ...STANDARD_LABELS, 'app.kubernetes.io/component': 'broker', extra: 'y' },
      ownerReferences: [OWNER],
    });
  });

  it('never lets user labels replace an operator label', () => {
    const meta = objectMeta(cluster(), 'x', 'mysql', {
      userLabels: { 'mysqlmq.io/cluster': 'evil', team: 'a' },
      labels: { 'mysqlmq.io/role': 'primary' },
    });
    expect(meta.labels['mysqlmq.io/cluster']).toBe('mq');
    expect(meta.labels.team).toBe('a');
    expect(meta.labels['mysqlmq.io/role']).toBe('primary');
  });

  it('leaves out the ownerReference when asked (retained PVCs)', () => {
    expect(objectMeta(cluster(), 'x', 'mysql', { owned: false }).ownerReferences).toBeUndefined();
  });
});

describe('hashOf', () => {
  it('is stable across key order and ignores undefined fields', () => {
    expect(hashOf({ a: 1, b: { c: 2, d: [1, 2] } })).toBe(
      hashOf({ b: { d: [1, 2], c: 2 }, a: 1, e: undefined }),
    );
    expect(hashOf({ a: 1 })).not.toBe(hashOf({ a: 2 }));
    expect(hashOf({ a: [1, 2] })).not.toBe(hashOf({ a: [2, 1] }));
    expect(hashOf('x')).toMatch(/^[0-9a-f]{16}$/);
  });
});

describe('pdbApiVersion', () => {
  it('prefers policy/v1 and falls back to policy/v1beta1 (Kubernetes 1.20)', () => {
    expect(pdbApiVersion(['v1', 'policy/v1', 'policy/v1beta1'])).toBe('policy/v1');
    expect(pdbApiVersion(['v1', 'policy/v1beta1'])).toBe('policy/v1beta1');
    expect(pdbApiVersion(['v1'])).toBeUndefined();
  });
});

describe('withSpreadAffinity', () => {
  const selector = { 'mysqlmq.io/shard': 'shard-0' };
  const term = {
    weight: 100,
    podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: selector } },
  };

  it('adds a preferred anti-affinity on the hostname', () => {
    expect(withSpreadAffinity(undefined, selector)).toEqual({
      podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [term] },
    });
  });

  it('keeps what the user gave, without modifying it', () => {
    const user = {
      nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [] } },
      podAntiAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: [{ topologyKey: 'zone' }],
        preferredDuringSchedulingIgnoredDuringExecution: [
          { weight: 1, podAffinityTerm: { topologyKey: 'rack' } },
        ],
      },
    };
    const before = structuredClone(user);
    const merged = withSpreadAffinity(user, selector) as Record<string, any>;
    expect(user).toEqual(before);
    expect(merged.nodeAffinity).toEqual(user.nodeAffinity);
    expect(merged.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution).toEqual([
      { topologyKey: 'zone' },
    ]);
    expect(merged.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution).toEqual([
      { weight: 1, podAffinityTerm: { topologyKey: 'rack' } },
      term,
    ]);
  });
});

describe('withRequiredAntiAffinity', () => {
  const selector = { 'mysqlmq.io/shard': 'shard-0' };
  const term = { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: selector } };

  it('adds a required anti-affinity on the hostname after the user terms, without modifying them', () => {
    expect(withRequiredAntiAffinity(undefined, selector)).toEqual({
      podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [term] },
    });
    const user = {
      podAntiAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: [{ topologyKey: 'zone' }],
        preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 1, podAffinityTerm: {} }],
      },
    };
    const before = structuredClone(user);
    const merged = withRequiredAntiAffinity(user, selector) as Record<string, any>;
    expect(user).toEqual(before);
    expect(merged.podAntiAffinity).toEqual({
      requiredDuringSchedulingIgnoredDuringExecution: [{ topologyKey: 'zone' }, term],
      preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 1, podAffinityTerm: {} }],
    });
  });
});

describe('quantities', () => {
  it('turns YAML numbers into quantity strings and drops empty resources', () => {
    expect(resourcesOf({ limits: { cpu: 2, memory: '1Gi' } })).toEqual({
      limits: { cpu: '2', memory: '1Gi' },
    });
    expect(resourcesOf({})).toBeUndefined();
    expect(resourcesOf({ requests: {} })).toBeUndefined();
  });

  it('renders label selectors as k=v,k=v', () => {
    expect(selectorString({ a: '1', b: '2' })).toBe('a=1,b=2');
  });
});
