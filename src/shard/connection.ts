import { connect as netConnect } from 'node:net';
import mysql from 'mysql2/promise';

/** Where a MariaDB instance listens. */
export interface Endpoint {
  host: string;
  port: number;
}

export interface Credentials {
  user: string;
  password: string;
  /** Set when the servers require TLS (`spec.mysql.tls`): how this user's connections verify them. */
  tls?: ClientTls;
}

/** How a client verifies a MariaDB server that requires TLS (docs/security.md, "MariaDB TLS"). */
export interface ClientTls {
  /** PEM of the CA that signed the servers' certificate. */
  ca: string;
  /** A name the servers' certificate carries; checked instead of the pod IP that is dialled. */
  serverName: string;
}

/**
 * mysql2 options that reach `endpoint` as `creds` would: plain TCP, or TLS verified against the CA
 * and `serverName`. mysql2 checks the certificate against the host it was given, and an IP (pods
 * are dialled by IP) is a name no certificate issued before the Pod can carry: so mysql2 is given
 * the server name as host and a socket factory that dials the IP itself.
 */
export function connectionOptions(
  endpoint: Endpoint,
  creds: Credentials,
): Pick<mysql.ConnectionOptions, 'host' | 'port' | 'user' | 'password' | 'ssl' | 'stream'> {
  const { user, password, tls } = creds;
  if (!tls) return { host: endpoint.host, port: endpoint.port, user, password };
  return {
    host: tls.serverName,
    port: endpoint.port,
    user,
    password,
    ssl: { ca: tls.ca, rejectUnauthorized: true, verifyIdentity: true },
    stream: () => netConnect({ host: endpoint.host, port: endpoint.port, noDelay: true, keepAlive: true }),
  };
}

export const endpointKey = (e: Endpoint) => `${e.host}:${e.port}`;

/**
 * The sql_mode of every connection the project opens, whatever the server's global one says.
 * Statements quote text with backslash escapes (mysql2's and the broker's own INSERT); under
 * NO_BACKSLASH_ESCAPES (or ANSI_QUOTES, PIPES_AS_CONCAT ...) the same text would mean other SQL.
 * MariaDB 10.11's default mode.
 */
export const SESSION_SQL_MODE =
  'STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION';
export const SET_SESSION_SQL_MODE = `SET SESSION sql_mode = '${SESSION_SQL_MODE}'`;

/** One short-lived administrative connection; the caller ends it. */
export async function connectAdmin(
  endpoint: Endpoint,
  creds: Credentials,
  connectTimeoutMs = 2000,
): Promise<mysql.Connection> {
  const conn = await mysql.createConnection({
    ...connectionOptions(endpoint, creds),
    connectTimeout: connectTimeoutMs,
    multipleStatements: false,
  });
  try {
    await conn.query(SET_SESSION_SQL_MODE);
  } catch (err) {
    conn.destroy();
    throw err;
  }
  return conn;
}

/** Runs `fn` on a fresh admin connection and always closes it. */
export async function withAdmin<T>(
  endpoint: Endpoint,
  creds: Credentials,
  fn: (conn: mysql.Connection) => Promise<T>,
): Promise<T> {
  const conn = await connectAdmin(endpoint, creds);
  try {
    return await fn(conn);
  } finally {
    conn.destroy();
  }
}

export type Row = Record<string, unknown>;

export async function queryRows(conn: mysql.Connection, sql: string, params: unknown[] = []): Promise<Row[]> {
  const [rows] = await conn.query(sql, params);
  return rows as Row[];
}
