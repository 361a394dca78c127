import { describe, expect, it } from 'vitest';
import type { CertificateFacts } from '../../../src/common/certificates.js';
import {
  RENEW_BEFORE_DAYS,
  brokerDeployment,
  clientIssueReason,
  tlsFromSecret,
  userCertificateSecret,
} from '../../../src/operator/desired/index.js';
import type { MessageQueueClusterSpec } from '../../../src/operator/api/types.js';
import { OWNER, cluster, container, specOf } from './fixtures.js';

const NOW = new Date('2026-12-06T00:00:00Z');
const DAY = 86_400_000;
const facts = (days: number, commonName = 'billing'): CertificateFacts => ({
  notAfter: new Date(NOW.getTime() + days * DAY),
  commonName,
  dnsNames: [],
  ipAddresses: [],
});
const ON: MessageQueueClusterSpec = {
  brokers: { tls: { enabled: true, clientCertificates: { enabled: true } } },
};
// MariaDB TLS off: the brokers' MariaDB flags and volume are not what these tests look at.
const podOf = (spec: MessageQueueClusterSpec) =>
  specOf(brokerDeployment(cluster({ ...spec, mysql: { tls: { enabled: false } } }))).template;

describe('brokers with spec.brokers.tls.clientCertificates', () => {
  it('ask clients for certificates of the CA in NAME-ca, mounted (ca.crt alone) as a directory', () => {
    const pod = podOf(ON).spec;
    const c = container(pod, 'broker');
    expect(c.args.slice(-2)).toEqual(['--client-ca', '/etc/mysqlmq/client-ca/ca.crt']);
    expect(c.args).toContain('--users');
    expect(c.volumeMounts).toContainEqual({
      name: 'client-ca',
      mountPath: '/etc/mysqlmq/client-ca',
      readOnly: true,
    });
    // Never the CA's key: only ca.crt is projected into the Pod.
    expect(pod.volumes).toContainEqual({
      name: 'client-ca',
      secret: { secretName: 'mq-ca', items: [{ key: 'ca.crt', path: 'ca.crt' }] },
    });
  });

  it("take the CA from NAME-ca also when the serving certificate is the spec's own Secret", () => {
    const pod = podOf({
      brokers: { tls: { enabled: true, secretName: 'my-cert', clientCertificates: { enabled: true } } },
    }).spec;
    expect(pod.volumes.map((v: { name: string }) => v.name)).toEqual([
      'routing',
      'users',
      'tls',
      'client-ca',
    ]);
    expect(pod.volumes).toContainEqual({
      name: 'client-ca',
      secret: { secretName: 'mq-ca', items: [{ key: 'ca.crt', path: 'ca.crt' }] },
    });
  });

  it('off (the default): no flag, no volume, and the pod template of before (no roll)', () => {
    const tlsOnly = { brokers: { tls: { enabled: true } } };
    const c = container(podOf(tlsOnly).spec, 'broker');
    expect(c.args).not.toContain('--client-ca');
    expect(podOf(tlsOnly).spec.volumes.map((v: { name: string }) => v.name)).toEqual([
      'routing',
      'users',
      'tls',
    ]);
    const hash = (spec: MessageQueueClusterSpec) =>
      podOf(spec).metadata.annotations['mysqlmq.io/config-hash'];
    expect(hash({ brokers: { tls: { enabled: true, clientCertificates: { enabled: false } } } })).toBe(
      hash(tlsOnly),
    );
    // Turning it on rolls the brokers onto --client-ca.
    expect(hash(ON)).not.toBe(hash(tlsOnly));
  });
});

describe("when a user's client certificate is issued anew", () => {
  it('keeps one of the current CA, for the user, with more than 30 days left', () => {
    expect(clientIssueReason(facts(RENEW_BEFORE_DAYS + 1), true, 'billing', NOW)).toBeUndefined();
    expect(clientIssueReason(facts(365), true, 'billing', NOW)).toBeUndefined();
  });

  it('issues one when there is none, another CA signed it, it nears its end, or it names another user', () => {
    expect(clientIssueReason(undefined, false, 'billing', NOW)).toBe('missing');
    expect(clientIssueReason(facts(365), false, 'billing', NOW)).toBe('other_ca');
    expect(clientIssueReason(facts(RENEW_BEFORE_DAYS - 1), true, 'billing', NOW)).toBe('expiring');
    expect(clientIssueReason(facts(-1), true, 'billing', NOW)).toBe('expiring');
    expect(clientIssueReason(facts(365, 'admin'), true, 'billing', NOW)).toBe('names_changed');
  });
});

describe("what goes into a user's Secret", () => {
  const pair = { certPem: 'CERT\n', keyPem: 'KEY\n' };
  const user = { name: 'billing', rights: [] };

  it('tls.crt, tls.key and ca.crt, never token (the merge patch leaves it as created)', () => {
    const s = userCertificateSecret(cluster(), user, pair, 'CA\n');
    expect(s.metadata.name).toBe('mq-user-billing');
    expect(s.metadata.ownerReferences).toEqual([OWNER]);
    expect(Object.keys(s.data as object).sort()).toEqual(['ca.crt', 'tls.crt', 'tls.key']);
    expect(tlsFromSecret(s.data as Record<string, string>)).toEqual({ serving: pair, caPem: 'CA\n' });
  });

  it("the user's own secretName when given", () => {
    const s = userCertificateSecret(cluster(), { ...user, secretName: 'billing-creds' }, pair, 'CA\n');
    expect(s.metadata.name).toBe('billing-creds');
  });
});
