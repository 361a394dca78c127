import mysql from 'mysql2/promise';

/** Where a MariaDB instance listens. */
export interface Endpoint {
  host: string;
  port: number;
}

export interface Credentials {
  user: string;
  password: string;
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
    host: endpoint.host,
    port: endpoint.port,
    user: creds.user,
    password: creds.password,
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
