import { describe, expect, it } from 'vitest';
import type { CertificateFacts } from '../../../src/common/certificates.js';
import {
  RENEW_BEFORE_DAYS,
  brokerDeployment,
  brokerPodServesTls,
  brokerServerName,
  brokerSubjectAltNames,
  brokerTlsSecret,
  brokerTlsSecretName,
  caFromSecret,
  caIssueReason,
  caSecret,
  servingIssueReason,
  tlsFromSecret,
} from '../../../src/operator/desired/index.js';
import { OWNER, cluster, specOf } from './fixtures.js';

const NOW = new Date('2026-12-06T00:00:00Z');
const DAY = 86_400_000;
const wanted = brokerSubjectAltNames(cluster());
const valid = (days: number, names = wanted): CertificateFacts => ({
  notAfter: new Date(NOW.getTime() + days * DAY),
  dnsNames: [...names.dnsNames],
  ipAddresses: [...names.ipAddresses],
});

describe('the brokers certificate names', () => {
  it('are the broker Service in every form, localhost and 127.0.0.1', () => {
    expect(wanted).toEqual({
      dnsNames: [
        'mq-broker',
        'mq-broker.ns',
        'mq-broker.ns.svc',
        'mq-broker.ns.svc.cluster.local',
        'localhost',
      ],
      ipAddresses: ['127.0.0.1'],
    });
    expect(brokerServerName(cluster())).toBe('mq-broker.ns.svc');
    expect(wanted.dnsNames).toContain(brokerServerName(cluster()));
  });
});

describe('when the serving certificate is issued anew', () => {
  it('keeps a certificate of the current CA, for the right names, with more than 30 days left', () => {
    expect(servingIssueReason(valid(RENEW_BEFORE_DAYS + 1), true, wanted, NOW)).toBeUndefined();
    expect(servingIssueReason(valid(365), true, wanted, NOW)).toBeUndefined();
  });

  it('issues one when there is none or it cannot be read', () => {
    expect(servingIssueReason(undefined, false, wanted, NOW)).toBe('missing');
  });

  it('issues one within 30 days of expiry, and after it', () => {
    expect(servingIssueReason(valid(RENEW_BEFORE_DAYS - 1), true, wanted, NOW)).toBe('expiring');
    expect(servingIssueReason(valid(-1), true, wanted, NOW)).toBe('expiring');
  });

  it('issues one when its names are no longer the Service names, in any order', () => {
    const other = brokerSubjectAltNames(cluster({}, 'renamed'));
    expect(servingIssueReason(valid(365, other), true, wanted, NOW)).toBe('names_changed');
    const missingIp = { ...wanted, ipAddresses: [] };
    expect(servingIssueReason(valid(365, missingIp), true, wanted, NOW)).toBe('names_changed');
    const reordered = { ...wanted, dnsNames: [...wanted.dnsNames].reverse() };
    expect(servingIssueReason(valid(365, reordered), true, wanted, NOW)).toBeUndefined();
  });

  it('issues one when another CA signed it (the CA was replaced)', () => {
    expect(servingIssueReason(valid(365), false, wanted, NOW)).toBe('other_ca');
  });
});

describe('when the CA is issued anew', () => {
  it('only when there is none, or it nears its end', () => {
    expect(caIssueReason(undefined, NOW)).toBe('missing');
    expect(caIssueReason(valid(3000), NOW)).toBeUndefined();
    expect(caIssueReason(valid(RENEW_BEFORE_DAYS - 1), NOW)).toBe('expiring');
  });
});

describe('the TLS Secrets', () => {
  const ca = { certPem: 'CA CERT\n', keyPem: 'CA KEY\n' };
  const serving = { certPem: 'CERT\n', keyPem: 'KEY\n' };

  it('NAME-ca holds the CA and its key, owned by the cluster', () => {
    const s = caSecret(cluster(), ca);
    expect(s.metadata.name).toBe('mq-ca');
    expect(s.metadata.ownerReferences).toEqual([OWNER]);
    expect(caFromSecret(s.data as Record<string, string>)).toEqual(ca);
    expect(Object.keys(s.data as object).sort()).toEqual(['ca.crt', 'ca.key']);
  });

  it('NAME-broker-tls is a kubernetes.io/tls Secret with the CA clients verify against', () => {
    const s = brokerTlsSecret(cluster(), serving, ca.certPem);
    expect([s.metadata.name, s.type]).toEqual(['mq-broker-tls', 'kubernetes.io/tls']);
    expect(Object.keys(s.data as object).sort()).toEqual(['ca.crt', 'tls.crt', 'tls.key']);
    expect(tlsFromSecret(s.data as Record<string, string>)).toEqual({ serving, caPem: ca.certPem });
    expect(brokerTlsSecretName(cluster())).toBe('mq-broker-tls');
    expect(brokerTlsSecretName(cluster({ brokers: { tls: { enabled: true, secretName: 'x' } } }))).toBe('x');
  });

  it('a Secret without a key reads as no certificate', () => {
    expect(tlsFromSecret({ 'tls.crt': Buffer.from('CERT').toString('base64') })).toEqual({});
    expect(caFromSecret(undefined)).toBeUndefined();
  });
});

describe('which broker Pods serve HTTPS', () => {
  it('those started with --tls-cert', () => {
    const pod = (tls: boolean) =>
      specOf(brokerDeployment(cluster({ brokers: { tls: { enabled: tls } } }))).template.spec;
    expect(brokerPodServesTls(pod(true))).toBe(true);
    expect(brokerPodServesTls(pod(false))).toBe(false);
    expect(brokerPodServesTls(undefined)).toBe(false);
  });
});
