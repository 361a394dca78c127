import mysql from 'mysql2/promise';
import {
  type Credentials,
  type Endpoint,
  SET_SESSION_SQL_MODE,
  connectionOptions,
  endpointKey,
} from '../shard/connection.js';

/**
 * mysql2 scans every statement for `?` placeholders in JavaScript, values or not: over a
 * megabyte-long multi-row INSERT that scan was a quarter of the broker's CPU. Statements without
 * values go out as they are.
 */
export function queryFormat(sql: string, values: Parameters<typeof mysql.format>[1]): string {
  return Array.isArray(values) && values.length === 0 ? sql : mysql.format(sql, values);
}

/** One mysql2 pool per instance the routing names; pools of instances it no longer names are closed. */
export class ShardPools {
  private readonly pools = new Map<string, mysql.Pool>();

  constructor(
    private readonly creds: Credentials,
    private readonly connectionLimit: number,
  ) {}

  get(endpoint: Endpoint): mysql.Pool {
    const key = endpointKey(endpoint);
    let pool = this.pools.get(key);
    if (!pool) {
      pool = mysql.createPool({
        ...connectionOptions(endpoint, this.creds),
        database: 'mq',
        connectionLimit: this.connectionLimit,
        // Hung instances are caught by the shard deadlines and the writer's commit deadline; a short
        // connect timeout only failed handshakes that a busy event loop read late (400 long-polls).
        connectTimeout: 5000,
        enableKeepAlive: true,
        // A dead instance must fail fast, not queue callers behind a full pool.
        queueLimit: 1000,
        queryFormat,
      });
      // A pool emits 'error' for broken idle connections; callers see errors on their own queries.
      pool.pool.on('error', () => undefined);
      // Queued on the new connection ahead of whatever statement it was opened for.
      pool.pool.on('connection', (conn) =>
        conn.query(SET_SESSION_SQL_MODE, (err: unknown) => {
          if (err) conn.destroy();
        }),
      );
      this.pools.set(key, pool);
    }
    return pool;
  }

  retainOnly(endpoints: Endpoint[]): void {
    const keep = new Set(endpoints.map(endpointKey));
    for (const [key, pool] of this.pools) {
      if (!keep.has(key)) {
        this.pools.delete(key);
        void pool.end().catch(() => undefined);
      }
    }
  }

  async closeAll(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.end().catch(() => undefined)));
  }
}
