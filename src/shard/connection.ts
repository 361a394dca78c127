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

/** One short-lived administrative connection; the caller ends it. */
export function connectAdmin(
  endpoint: Endpoint,
  creds: Credentials,
  connectTimeoutMs = 2000,
): Promise<mysql.Connection> {
  return mysql.createConnection({
    host: endpoint.host,
    port: endpoint.port,
    user: creds.user,
    password: creds.password,
    connectTimeout: connectTimeoutMs,
    multipleStatements: false,
  });
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
