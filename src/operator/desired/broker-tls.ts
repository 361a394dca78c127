import type { CertificateFacts, KeyPairPem, SubjectAltNames } from '../../common/certificates.js';
import { COMPONENT_BROKER, COMPONENT_CREDENTIALS, type DefaultedCluster } from '../api/types.js';
import { type DesiredObject, names, objectMeta } from './meta.js';

/**
 * The brokers' HTTPS certificates (docs/security.md, "TLS"): which Secret the brokers mount, what
 * the generated serving certificate must name, and when the operator issues one anew. Pure: the
 * reconciler issues certificates (src/common/certificates.ts) and writes what these build.
 */

export const TLS_MOUNT = '/etc/mysqlmq/tls';
/** Keys of a kubernetes.io/tls Secret, plus the CA that clients verify against. */
export const TLS_CERT_KEY = 'tls.crt';
export const TLS_KEY_KEY = 'tls.key';
export const CA_CERT_KEY = 'ca.crt';
/** Keys of the operator's CA Secret `NAME-ca`. */
export const CA_KEY_KEY = 'ca.key';

/** The CA outlives any cluster: replacing it means every client needs the new one. */
export const CA_VALIDITY_DAYS = 3650;
export const SERVING_VALIDITY_DAYS = 365;
/** A certificate this close to its end is issued anew, long before a missed rotation hurts. */
export const RENEW_BEFORE_DAYS = 30;
const DAY_MS = 86_400_000;

/** The Secret the brokers serve from: the spec's, or the one the operator issues. */
export function brokerTlsSecretName(cr: DefaultedCluster): string {
  return cr.spec.brokers.tls.secretName ?? names.brokerTls(cr.metadata.name);
}

/**
 * The names a generated serving certificate carries: the broker Service in every form a client in
 * the cluster may use, and localhost for `kubectl port-forward`. Not pod IPs: they change with
 * every Pod, and the operator, which dials pods, verifies against `brokerServerName` instead.
 */
export function brokerSubjectAltNames(cr: DefaultedCluster): SubjectAltNames {
  const svc = names.broker(cr.metadata.name);
  const ns = cr.metadata.namespace;
  return {
    dnsNames: [svc, `${svc}.${ns}`, `${svc}.${ns}.svc`, `${svc}.${ns}.svc.cluster.local`, 'localhost'],
    ipAddresses: ['127.0.0.1'],
  };
}

/** The name the operator (and `kubectl mqc`) check a broker's certificate for when dialling a pod IP. */
export function brokerServerName(cr: DefaultedCluster): string {
  return `${names.broker(cr.metadata.name)}.${cr.metadata.namespace}.svc`;
}

export type IssueReason = 'missing' | 'expiring' | 'names_changed' | 'other_ca';

/** Why the CA must be issued (anew), or undefined to keep it. */
export function caIssueReason(current: CertificateFacts | undefined, now: Date): IssueReason | undefined {
  if (!current) return 'missing';
  if (expiresSoon(current, now)) return 'expiring';
  return undefined;
}

/**
 * Why the serving certificate must be issued (anew), or undefined to keep it: missing or
 * unreadable, within RENEW_BEFORE_DAYS of its end, naming other names than `wanted` (the Service
 * or namespace changed), or not signed by the CA in force (the CA was replaced).
 */
export function servingIssueReason(
  current: CertificateFacts | undefined,
  signedByCurrentCa: boolean,
  wanted: SubjectAltNames,
  now: Date,
): IssueReason | undefined {
  if (!current) return 'missing';
  if (!signedByCurrentCa) return 'other_ca';
  if (expiresSoon(current, now)) return 'expiring';
  if (!sameSet(current.dnsNames, wanted.dnsNames) || !sameSet(current.ipAddresses, wanted.ipAddresses))
    return 'names_changed';
  return undefined;
}

/** Whether `cert` ends within RENEW_BEFORE_DAYS of `now`. */
export function expiresSoon(cert: CertificateFacts, now: Date): boolean {
  return cert.notAfter.getTime() - now.getTime() < RENEW_BEFORE_DAYS * DAY_MS;
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const left = new Set(a);
  const right = new Set(b);
  return left.size === right.size && [...left].every((x) => right.has(x));
}

/** Secret `NAME-ca`: the operator's CA for this cluster. Kept when the cluster's certificates rotate. */
export function caSecret(cr: DefaultedCluster, ca: KeyPairPem): DesiredObject {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: objectMeta(cr, names.ca(cr.metadata.name), COMPONENT_CREDENTIALS),
    type: 'Opaque',
    data: { [CA_CERT_KEY]: base64(ca.certPem), [CA_KEY_KEY]: base64(ca.keyPem) },
  };
}

/** Secret `NAME-broker-tls` (kubernetes.io/tls): what the brokers serve, and the CA to verify it. */
export function brokerTlsSecret(cr: DefaultedCluster, serving: KeyPairPem, caPem: string): DesiredObject {
  return tlsSecret(cr, names.brokerTls(cr.metadata.name), COMPONENT_BROKER, serving, caPem);
}

/** A kubernetes.io/tls Secret: a serving key pair and the CA that verifies it. */
export function tlsSecret(
  cr: DefaultedCluster,
  name: string,
  component: string,
  serving: KeyPairPem,
  caPem: string,
): DesiredObject {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: objectMeta(cr, name, component),
    type: 'kubernetes.io/tls',
    data: {
      [TLS_CERT_KEY]: base64(serving.certPem),
      [TLS_KEY_KEY]: base64(serving.keyPem),
      [CA_CERT_KEY]: base64(caPem),
    },
  };
}

/** The CA in a `NAME-ca` Secret's `data`; undefined when a key is missing or empty. */
export function caFromSecret(data: Record<string, string> | undefined): KeyPairPem | undefined {
  const certPem = decoded(data?.[CA_CERT_KEY]);
  const keyPem = decoded(data?.[CA_KEY_KEY]);
  return certPem && keyPem ? { certPem, keyPem } : undefined;
}

/** The serving certificate and CA in a kubernetes.io/tls Secret's `data` (each undefined when absent). */
export function tlsFromSecret(data: Record<string, string> | undefined): {
  serving?: KeyPairPem;
  caPem?: string;
} {
  const certPem = decoded(data?.[TLS_CERT_KEY]);
  const keyPem = decoded(data?.[TLS_KEY_KEY]);
  const caPem = decoded(data?.[CA_CERT_KEY]);
  return { ...(certPem && keyPem ? { serving: { certPem, keyPem } } : {}), ...(caPem ? { caPem } : {}) };
}

const base64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

function decoded(value: string | undefined): string | undefined {
  const text = value ? Buffer.from(value, 'base64').toString('utf8') : '';
  return text.trim() ? text : undefined;
}

/**
 * Whether a broker Pod serves HTTPS, from its spec (the `--tls-cert` flag): while a change of
 * `spec.brokers.tls` rolls the brokers, old and new Pods answer on different schemes.
 */
export function brokerPodServesTls(podSpec: unknown): boolean {
  const containers = (podSpec as { containers?: { name?: string; args?: unknown[] }[] } | undefined)
    ?.containers;
  const broker = containers?.find((c) => c.name === 'broker');
  return broker?.args?.includes('--tls-cert') ?? false;
}
