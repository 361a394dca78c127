import { X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { TLSSocket } from 'node:tls';
import { subjectCommonName } from '../common/certificates.js';

/**
 * What a client showed in the TLS handshake of a broker asking for client certificates (mTLS,
 * `--client-ca`; docs/security.md, "mTLS client certificates"). The server asks without insisting
 * (`rejectUnauthorized: false`), so token clients still connect; what the certificate claims is
 * judged here once per connection, whether that user exists in Auth per request.
 */
interface PeerCertificate {
  /** Whether it chains to the client CA (OpenSSL's verdict for the handshake). */
  authorized: boolean;
  /** OpenSSL's reason when not, e.g. UNABLE_TO_VERIFY_LEAF_SIGNATURE. */
  authorizationError?: string;
  /** The certificate, DER. */
  raw: Buffer;
}

const CLIENT_AUTH_OID = '1.3.6.1.5.5.7.3.2';

/** What a connection's certificate claims, judged at its first request (see connectionClaim). */
const claims = new WeakMap<TLSSocket, CertificateClaim | null>();

/**
 * What the certificate the request's connection showed claims; undefined over plain HTTP or when
 * none was sent. Judged once per connection: its certificate cannot change (the server refuses
 * renegotiation), and reading and parsing it took some 230 µs per request.
 */
export function connectionClaim(req: IncomingMessage): CertificateClaim | undefined {
  const socket = req.socket;
  if (!(socket instanceof TLSSocket)) return undefined;
  let claim = claims.get(socket);
  if (claim === undefined) {
    const peer = peerCertificate(socket);
    claim = peer ? certificateClaim(peer) : null;
    claims.set(socket, claim);
  }
  return claim ?? undefined;
}

function peerCertificate(socket: TLSSocket): PeerCertificate | undefined {
  const cert = socket.getPeerCertificate();
  // Node gives an empty object when the client sent no certificate.
  if (!cert?.raw) return undefined;
  const error = socket.authorizationError;
  return {
    authorized: socket.authorized,
    ...(error ? { authorizationError: String(error) } : {}),
    raw: cert.raw,
  };
}

export type CertificateClaim = { user: string } | { problem: string };

/**
 * The user name a client certificate claims (its CN), or why it proves nobody: it must be meant
 * for client authentication (extended key usage clientAuth, which the brokers' serving
 * certificate, from the same CA, lacks) and chain to the client CA. Pure.
 */
function certificateClaim(peer: PeerCertificate): CertificateClaim {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(peer.raw);
  } catch {
    return { problem: 'the client certificate cannot be parsed' };
  }
  // Checked before the chain: OpenSSL refuses such a certificate as INVALID_PURPOSE, less plainly.
  if (!(cert.keyUsage ?? []).includes(CLIENT_AUTH_OID)) {
    return {
      problem:
        'the client certificate is not meant for client authentication (no clientAuth extended key usage)',
    };
  }
  if (!peer.authorized) {
    return {
      problem: `the client certificate is not signed by the brokers' client CA (${peer.authorizationError ?? 'unverified'})`,
    };
  }
  const user = subjectCommonName(cert);
  if (!user) return { problem: 'the client certificate names no user (its subject has no CN)' };
  return { user };
}
