import { readFileSync } from 'node:fs';
import type { ClientTls } from './connection.js';

/** Usage lines of the flags `clientTlsFromFlags` reads, shared by mq-broker and mq-agent. */
export const CLIENT_TLS_USAGE = `  --mysql-ca FILE         connect to MariaDB over TLS, verifying its certificate with this CA (PEM)
  --mysql-server-name N   the name MariaDB's certificate must carry (instances are dialled by IP); both or neither`;

/**
 * The TLS a process's MariaDB connections use, from `--mysql-ca FILE` and `--mysql-server-name`:
 * both (servers that require TLS) or neither (plain TCP). The CA is read once, at start: it is
 * valid for ten years, and a new one comes with new Pods.
 */
export function clientTlsFromFlags(
  caFile: string | undefined,
  serverName: string | undefined,
): ClientTls | undefined {
  if (!caFile && !serverName) return undefined;
  if (!caFile || !serverName)
    throw new Error(
      'give both --mysql-ca FILE and --mysql-server-name NAME, or neither (plain MariaDB connections)',
    );
  let ca: string;
  try {
    ca = readFileSync(caFile, 'utf8');
  } catch (err) {
    throw new Error(`--mysql-ca ${caFile}: cannot read it (${(err as Error).message})`);
  }
  if (!ca.includes('-----BEGIN CERTIFICATE-----'))
    throw new Error(`--mysql-ca ${caFile} holds no PEM certificate`);
  return { ca, serverName };
}
