import type { CertificateFacts, KeyPairPem } from '../../common/certificates.js';
import type { DefaultedCluster, UserSpec } from '../api/types.js';
import { CA_CERT_KEY, type IssueReason, TLS_CERT_KEY, TLS_KEY_KEY, expiresSoon } from './broker-tls.js';
import { type DesiredObject, names } from './meta.js';
import { userSecret } from './users.js';

/**
 * Client certificates for mTLS (`spec.brokers.tls.clientCertificates`; docs/security.md, "mTLS
 * client certificates"): one per user, CN the user's name, from the cluster's CA, in the user's
 * Secret beside its token; the brokers trust that CA for clients. Pure.
 */

/** Where brokers find the CA of `NAME-ca` (that key alone: the CA's key stays the operator's). */
export const CLIENT_CA_MOUNT = '/etc/mysqlmq/client-ca';
export const CLIENT_VALIDITY_DAYS = 365;

/** Whether the brokers ask clients for certificates: the option on, with HTTPS and users. */
export function clientCertificatesOn(cr: DefaultedCluster): boolean {
  const b = cr.spec.brokers;
  return b.tls.clientCertificates.enabled && b.tls.enabled && b.auth.enabled;
}

/** The broker flag naming the client CA file. */
export function clientCaArgs(cr: DefaultedCluster): string[] {
  return clientCertificatesOn(cr) ? ['--client-ca', `${CLIENT_CA_MOUNT}/${CA_CERT_KEY}`] : [];
}

/**
 * Secret `NAME-ca` mounted with `ca.crt` only, as a directory: a renewed CA reaches the file in
 * place and the broker loads it like its own certificate, without a restart.
 */
export function clientCaVolume(cr: DefaultedCluster): { name: string; secret: object }[] {
  if (!clientCertificatesOn(cr)) return [];
  return [
    {
      name: 'client-ca',
      secret: {
        secretName: names.ca(cr.metadata.name),
        items: [{ key: CA_CERT_KEY, path: CA_CERT_KEY }],
      },
    },
  ];
}

export function clientCaMount(cr: DefaultedCluster): { name: string; mountPath: string; readOnly: true }[] {
  return clientCertificatesOn(cr) ? [{ name: 'client-ca', mountPath: CLIENT_CA_MOUNT, readOnly: true }] : [];
}

/**
 * Why `user`'s client certificate must be issued (anew), or undefined to keep it: missing or
 * unreadable, not signed by the CA in force, within RENEW_BEFORE_DAYS of its end, or naming
 * another user (its Secret was given to someone else).
 */
export function clientIssueReason(
  current: CertificateFacts | undefined,
  signedByCurrentCa: boolean,
  user: string,
  now: Date,
): IssueReason | undefined {
  if (!current) return 'missing';
  if (!signedByCurrentCa) return 'other_ca';
  if (expiresSoon(current, now)) return 'expiring';
  if (current.commonName !== user) return 'names_changed';
  return undefined;
}

/**
 * What the operator merges into `user`'s Secret: `tls.crt`, `tls.key` and `ca.crt` (to verify the
 * brokers with, when they serve from the same CA), never `token`, which stays as it was created.
 */
export function userCertificateSecret(
  cr: DefaultedCluster,
  user: UserSpec,
  pair: KeyPairPem,
  caPem: string,
): DesiredObject {
  return {
    // The user's Secret as the operator creates it, with these keys as its data instead of the token.
    ...userSecret(cr, user, ''),
    data: {
      [TLS_CERT_KEY]: base64(pair.certPem),
      [TLS_KEY_KEY]: base64(pair.keyPem),
      [CA_CERT_KEY]: base64(caPem),
    },
  };
}

const base64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');
