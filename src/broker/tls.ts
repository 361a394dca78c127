import { X509Certificate, constants } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import type { Server as HttpsServer } from 'node:https';
import { createSecureContext } from 'node:tls';
import { errorMessage } from '../common/errors.js';
import type { Logger } from '../common/logger.js';

/** Where the broker's serving certificate and its private key are (PEM). */
export interface TlsFiles {
  certFile: string;
  keyFile: string;
  /** The CA that signs client certificates (mTLS, `--client-ca`); absent: none are asked for. */
  clientCaFile?: string;
}

export interface TlsPems {
  cert: Buffer;
  key: Buffer;
  /** The client CA, when `clientCaFile` is given: what a client certificate must chain to. */
  ca?: Buffer;
}

/**
 * OpenSSL options of the HTTPS server, at start and on every reload: no renegotiation, so a
 * connection's client certificate stays the one of its handshake (client-certificate.ts judges it
 * once); nothing here needs renegotiation.
 */
export const SERVER_SECURE_OPTIONS = constants.SSL_OP_NO_RENEGOTIATION;

/** The files' contents, checked to be a certificate and its key, and their `version` (mtimes). */
export async function readTlsFiles(files: TlsFiles): Promise<{ pems: TlsPems; version: string }> {
  // The version first: a change after it is seen on the next check rather than missed.
  const version = await filesVersion(files);
  const [cert, key, ca] = await Promise.all([
    readFile(files.certFile).catch((err: unknown) => {
      throw new Error(`cannot read the TLS certificate ${files.certFile}: ${errorMessage(err)}`);
    }),
    readFile(files.keyFile).catch((err: unknown) => {
      throw new Error(`cannot read the TLS key ${files.keyFile}: ${errorMessage(err)}`);
    }),
    files.clientCaFile === undefined
      ? undefined
      : readFile(files.clientCaFile).catch((err: unknown) => {
          throw new Error(`cannot read the client CA ${files.clientCaFile}: ${errorMessage(err)}`);
        }),
  ]);
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    throw new Error(
      `${files.certFile} and ${files.keyFile} are not a PEM certificate and its private key: ${errorMessage(err)}`,
    );
  }
  if (ca) {
    try {
      // createSecureContext skips what is no certificate in `ca`: parse it to say so.
      new X509Certificate(ca);
    } catch (err) {
      throw new Error(`${files.clientCaFile} is not a PEM CA certificate: ${errorMessage(err)}`);
    }
  }
  return { pems: { cert, key, ...(ca ? { ca } : {}) }, version };
}

async function filesVersion(files: TlsFiles): Promise<string> {
  const paths = [files.certFile, files.keyFile, ...(files.clientCaFile ? [files.clientCaFile] : [])];
  const stats = await Promise.all(paths.map((p) => stat(p)));
  return stats.map((s) => s.mtimeMs).join('/');
}

/** What a log line may say of a certificate: its end and names, never the key. */
export function describeCertificate(cert: Buffer): { notAfter: string; subjectAltName?: string } {
  const parsed = new X509Certificate(cert);
  return { notAfter: new Date(parsed.validTo).toISOString(), subjectAltName: parsed.subjectAltName };
}

/**
 * Loads a renewed certificate (or client CA) into the running server (`setSecureContext`): new
 * connections get it, open ones keep theirs, nothing restarts. The kubelet swaps a mounted Secret's files at once
 * (one symlink), which changes their mtimes; a pair caught half-written elsewhere fails to load
 * and is tried again on the next check, the certificate in force staying until then.
 */
export class CertificateReloader {
  private timer?: NodeJS.Timeout;

  /** `loaded`: the version (readTlsFiles) of the files the server was created with. */
  constructor(
    private readonly server: HttpsServer,
    private readonly files: TlsFiles,
    private loaded: string,
    private readonly log: Logger,
  ) {}

  start(intervalMs: number): void {
    this.timer = setInterval(() => void this.check(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async check(): Promise<void> {
    try {
      if ((await filesVersion(this.files)) === this.loaded) return;
      const { pems, version } = await readTlsFiles(this.files);
      this.server.setSecureContext({ ...pems, secureOptions: SERVER_SECURE_OPTIONS });
      this.loaded = version;
      this.log.info('tls certificate reloaded', {
        file: this.files.certFile,
        ...describeCertificate(pems.cert),
      });
    } catch (err) {
      this.log.warn('tls certificate unreadable; keeping the one in force', {
        file: this.files.certFile,
        error: errorMessage(err),
      });
    }
  }
}
