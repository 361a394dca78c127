import { describe, expect, it } from 'vitest';
import { desiredObjects, initialRouting } from '../../../src/operator/desired/index.js';
import { mysqlNetworkPolicy, parseLabels } from '../../../src/operator/desired/network-policy.js';
import { generateCredentials } from '../../../src/operator/desired/credentials.js';
import { OWNER, STANDARD_LABELS, cluster, specOf } from './fixtures.js';

const operator = { namespace: 'mysqlmq-system', podLabels: { 'app.kubernetes.io/name': 'mysqlmq-operator' } };
const instances = { matchLabels: { 'mysqlmq.io/cluster': 'mq', 'app.kubernetes.io/component': 'mysql' } };
const brokers = { matchLabels: { 'mysqlmq.io/cluster': 'mq', 'app.kubernetes.io/component': 'broker' } };

describe('mysqlNetworkPolicy', () => {
  const policy = mysqlNetworkPolicy(cluster(), operator);
  const spec = specOf(policy);

  it('is named and owned like every object of the cluster', () => {
    expect(policy).toMatchObject({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy' });
    expect(policy.metadata).toEqual({
      name: 'mq-mysql',
      namespace: 'ns',
      labels: { ...STANDARD_LABELS, 'app.kubernetes.io/component': 'mysql' },
      ownerReferences: [OWNER],
    });
  });

  it("admits to MariaDB only the cluster's brokers, its instances and the operator's Pods in their namespace", () => {
    expect(spec.podSelector).toEqual(instances);
    expect(spec.policyTypes).toEqual(['Ingress']);
    expect(spec.ingress[0]).toEqual({
      from: [
        { podSelector: brokers },
        { podSelector: instances },
        {
          namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'mysqlmq-system' } },
          podSelector: { matchLabels: { 'app.kubernetes.io/name': 'mysqlmq-operator' } },
        },
      ],
      ports: [{ protocol: 'TCP', port: 3306 }],
    });
  });

  it('admits to the clone agent only the instances, and leaves the metrics port open to scrapers', () => {
    expect(spec.ingress.slice(1)).toEqual([
      { from: [{ podSelector: instances }], ports: [{ protocol: 'TCP', port: 9080 }] },
      { ports: [{ protocol: 'TCP', port: 9104 }] },
    ]);
    // No rule opens any other port, and no rule without `from` but the metrics one.
    const ports = spec.ingress.flatMap((r: { ports: { port: number }[] }) => r.ports.map((p) => p.port));
    expect(ports.sort()).toEqual([3306, 9080, 9104]);
  });

  it('selects an operator in the same namespace by its labels alone', () => {
    const same = specOf(mysqlNetworkPolicy(cluster(), { ...operator, namespace: 'ns' }));
    expect(same.ingress[0].from[2]).toEqual({ podSelector: { matchLabels: operator.podLabels } });
  });

  it('comes before every Pod in the desired objects, and only when asked for', () => {
    const cr = cluster();
    const inputs = { credentials: generateCredentials(), routing: initialRouting(cr) };
    const kinds = desiredObjects(cr, { ...inputs, networkPolicy: operator }).map((o) => o.kind);
    expect(kinds.indexOf('NetworkPolicy')).toBeGreaterThanOrEqual(0);
    expect(kinds.indexOf('NetworkPolicy')).toBeLessThan(kinds.indexOf('Pod'));
    expect(desiredObjects(cr, inputs).map((o) => o.kind)).not.toContain('NetworkPolicy');
  });
});

describe('parseLabels', () => {
  it('reads k=v,k=v and refuses what would select nothing it meant to', () => {
    expect(parseLabels('app.kubernetes.io/name=op, app.kubernetes.io/instance=r')).toEqual({
      'app.kubernetes.io/name': 'op',
      'app.kubernetes.io/instance': 'r',
    });
    expect(() => parseLabels('name')).toThrow(/key=value/);
    expect(() => parseLabels('=x')).toThrow(/key=value/);
    expect(() => parseLabels(' , ')).toThrow(/no labels/);
  });
});
