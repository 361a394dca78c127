// @peculiar/x509 resolves its ASN.1 serializers through tsyringe, which needs the Reflect metadata
// API: the polyfill must be loaded before the library.
import 'reflect-metadata';
import { X509Certificate as NodeX509Certificate, randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';

/**
 * X.509 certificates for the brokers' HTTPS: a self-signed CA, and the serving certificates and
 * client certificates (mTLS, one per user) it signs, made with @peculiar/x509 on Node's WebCrypto
 * (no hand-written ASN.1). ECDSA P-256 keys: small, fast handshakes, and accepted by every TLS
 * client the SDK and kubelet probes use.
 */

/** A certificate and its private key, both PEM (PKCS#8 for the key). */
export interface KeyPairPem {
  certPem: string;
  keyPem: string;
}

/** What a serving certificate names: DNS names and IP addresses (its subjectAltName). */
export interface SubjectAltNames {
  dnsNames: string[];
  ipAddresses: string[];
}

/** What the re-issue decision needs to know of an existing certificate (see `certificateFacts`). */
export interface CertificateFacts {
  notAfter: Date;
  /** The subject's CN; undefined when it has none. */
  commonName?: string;
  dnsNames: string[];
  ipAddresses: string[];
}

const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
/** Clocks of clients a few minutes behind still accept a certificate issued just now. */
const BACKDATE_MS = 5 * 60_000;

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

/** A self-signed CA valid `validityDays` from `now`, allowed to sign end-entity certificates only. */
export async function issueCa(
  commonName: string,
  validityDays: number,
  now = new Date(),
): Promise<KeyPairPem> {
  const keys = await generateKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: `CN=${commonName}`,
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + validityDays * DAY_MS),
    signingAlgorithm: SIGNING_ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await privateKeyPem(keys.privateKey) };
}

/** A TLS server certificate for `names`, signed by `ca`, valid `validityDays` from `now`. */
export async function issueServingCertificate(
  ca: KeyPairPem,
  commonName: string,
  names: SubjectAltNames,
  validityDays: number,
  now = new Date(),
): Promise<KeyPairPem> {
  return issueLeaf(ca, commonName, validityDays, now, [
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
    new x509.SubjectAlternativeNameExtension([
      ...names.dnsNames.map((value) => ({ type: 'dns' as const, value })),
      ...names.ipAddresses.map((value) => ({ type: 'ip' as const, value })),
    ]),
  ]);
}

/**
 * A TLS client certificate for `commonName` (a user name), signed by `ca`: clientAuth only, so it
 * cannot serve, and no subjectAltName, since it names a user rather than a host.
 */
export async function issueClientCertificate(
  ca: KeyPairPem,
  commonName: string,
  validityDays: number,
  now = new Date(),
): Promise<KeyPairPem> {
  return issueLeaf(ca, commonName, validityDays, now, [
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
  ]);
}

/** An end-entity certificate signed by `ca` with `extensions` besides the common ones. */
async function issueLeaf(
  ca: KeyPairPem,
  commonName: string,
  validityDays: number,
  now: Date,
  extensions: x509.Extension[],
): Promise<KeyPairPem> {
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKey = await webcrypto.subtle.importKey(
    'pkcs8',
    x509.PemConverter.decodeFirst(ca.keyPem),
    KEY_ALGORITHM,
    false,
    ['sign'],
  );
  const keys = await generateKeys();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: `CN=${commonName}`,
    issuer: caCert.subject,
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + validityDays * DAY_MS),
    signingAlgorithm: SIGNING_ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: caKey as CryptoKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      ...extensions,
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await privateKeyPem(keys.privateKey) };
}

/**
 * Expiry and names of a PEM certificate (its first one), read with Node's own X.509 parser;
 * undefined when the text holds no certificate Node can parse.
 */
export function certificateFacts(certPem: string): CertificateFacts | undefined {
  let cert: NodeX509Certificate;
  try {
    cert = new NodeX509Certificate(certPem);
  } catch {
    return undefined;
  }
  const dnsNames: string[] = [];
  const ipAddresses: string[] = [];
  // Node renders subjectAltName as "DNS:a, DNS:b, IP Address:127.0.0.1".
  for (const entry of (cert.subjectAltName ?? '').split(', ')) {
    if (entry.startsWith('DNS:')) dnsNames.push(entry.slice(4));
    else if (entry.startsWith('IP Address:') && isIP(entry.slice(11))) ipAddresses.push(entry.slice(11));
  }
  const commonName = subjectCommonName(cert);
  return { notAfter: new Date(cert.validTo), ...(commonName ? { commonName } : {}), dnsNames, ipAddresses };
}

/** The subject's CN (Node renders the subject one "KEY=value" per line); undefined without one. */
export function subjectCommonName(cert: NodeX509Certificate): string | undefined {
  const line = cert.subject.split('\n').find((l) => l.startsWith('CN='));
  return line?.slice(3);
}

/** True when `certPem` was signed by the key of the CA certificate `caPem` (both parse). */
export function signedBy(certPem: string, caPem: string): boolean {
  try {
    const cert = new NodeX509Certificate(certPem);
    const ca = new NodeX509Certificate(caPem);
    return cert.checkIssued(ca) && cert.verify(ca.publicKey);
  } catch {
    return false;
  }
}

async function generateKeys(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key as webcrypto.CryptoKey);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

/** A positive 128-bit serial (RFC 5280: unique per CA, at most 20 bytes, not negative). */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0]! &= 0x7f;
  return bytes.toString('hex');
}
