import mysql from 'mysql2/promise';
import { readableCount } from '../../../../src/broker/gaps.js';
import { insertStatement } from '../../../../src/broker/queue-store.js';
import { queryBytes } from '../../../../src/shard/statement-bytes.js';
import { queryFormat } from '../../../../src/broker/shard-pools.js';
import { withAdmin } from '../../../../src/shard/connection.js';
import { createMessageTableSql, messageTable } from '../../../../src/shard/schema.js';
import { sleep } from '../../../../src/common/deadline.js';
import type { BenchSystem, Delivered, Session } from '../system.js';
import type { SharedShards } from './cluster.js';

export interface CeilingOptions {
  /** INSERTs in flight per shard (one connection each). */
  insertsPerShard: number;
  /** Rows per multi-row INSERT, at most. */
  batchRows: number;
  /** Rows per range SELECT. */
  selectRows: number;
  /** How long a reader that found nothing (or a gap) waits before it looks again. */
  idlePollMs: number;
  /** A gap in the ids this old is a hole for good (src/broker/gaps.ts), not a commit in flight. */
  maxGapAgeMs: number;
}

export const CEILING_DEFAULTS: CeilingOptions = {
  insertsPerShard: 4,
  batchRows: 2000,
  selectRows: 5000,
  idlePollMs: 2,
  maxGapAgeMs: 5000,
};

interface Pending {
  payload: string;
  resolve(): void;
  reject(err: unknown): void;
}

/** Table ids far above any topic id, so ceiling tables never meet a broker's topics. */
let nextTable = 900_000;

/**
 * What the shards can do without a broker: the benchmark process itself groups publishes into
 * multi-row INSERTs (same table layout, same rows) straight into the shard primaries, and reads
 * them back with primary-key range SELECTs for each group. No HTTP, no JSON, no offsets.
 */
export class CeilingSystem implements BenchSystem {
  readonly name = 'ceiling';
  readonly title = 'INSERT ceiling (same shards, no broker)';
  readonly durability = 'the same as mysqlmq: the same shards, semi-sync and fsync settings';
  readonly setup: string;
  private pools: mysql.Pool[] = [];
  private mariadb = 'unknown';

  constructor(
    private readonly shards: SharedShards,
    private readonly options: CeilingOptions = CEILING_DEFAULTS,
  ) {
    this.setup =
      `mysql2 in the benchmark process: publishes grouped into multi-row INSERTs of up to ${options.batchRows} rows ` +
      `(rendered and sent as bytes as the broker does), ` +
      `${options.insertsPerShard} in flight per shard (one connection each), round-robin over the 2 shard primaries; ` +
      `each group reads every shard with \`SELECT ... WHERE id > ? ORDER BY id LIMIT ${options.selectRows}\` ` +
      `on a connection of its own (polling every ${options.idlePollMs} ms when caught up), taking rows only up to ` +
      `the first gap in the ids, as the broker does (a transaction with lower ids may still commit: see src/broker/gaps.ts)`;
  }

  async start(): Promise<void> {
    const shards = await this.shards.get();
    this.pools = shards.shards.map((s) =>
      mysql.createPool({
        ...s.primary.endpoint,
        ...shards.secrets.broker,
        database: 'mq',
        connectionLimit: this.options.insertsPerShard + 16,
        queryFormat,
      }),
    );
    const [rows] = await this.pools[0].query('SELECT VERSION() AS v');
    this.mariadb = String((rows as { v: string }[])[0]?.v ?? 'unknown');
  }

  version(): string {
    return `MariaDB ${this.mariadb}`;
  }

  storagePids(): number[] {
    return this.shards.mariadbPids();
  }

  serverPids(): number[] {
    // No broker: the shards' own memory is reported separately.
    return [];
  }

  async session(): Promise<Session> {
    const tableId = nextTable++;
    const table = messageTable(tableId);
    await Promise.all(this.pools.map((p) => p.query(createMessageTableSql(tableId))));
    const o = this.options;
    const pools = this.pools;
    const queue: Pending[] = [];
    const inflight = pools.map(() => 0);
    let nextShard = 0;

    const pump = () => {
      while (queue.length > 0) {
        // The next shard round-robin that has an INSERT slot free.
        let shard = -1;
        for (let k = 0; k < pools.length; k++) {
          const s = (nextShard + k) % pools.length;
          if (inflight[s] < o.insertsPerShard) {
            shard = s;
            break;
          }
        }
        if (shard < 0) return;
        nextShard = (shard + 1) % pools.length;
        const batch = queue.splice(0, o.batchRows);
        inflight[shard]++;
        queryBytes(
          pools[shard],
          insertStatement(
            table,
            batch.map((p) => p.payload),
          ),
        )
          .then(
            () => batch.forEach((p) => p.resolve()),
            (err) => batch.forEach((p) => p.reject(err)),
          )
          .finally(() => {
            inflight[shard]--;
            pump();
          });
      }
    };

    let stopped = false;
    let loops: Promise<void>[] = [];
    return {
      publish: (value: string) =>
        new Promise<void>((resolve, reject) => {
          queue.push({ payload: value, resolve, reject });
          // Let the current burst of publishes queue up before a batch is cut.
          if (queue.length === 1) queueMicrotask(pump);
        }),
      startConsumers: async (groups: number, deliver: (group: number, values: Delivered) => void) => {
        stopped = false;
        loops = [];
        for (let g = 0; g < groups; g++) {
          for (const pool of pools) {
            loops.push(
              (async () => {
                const conn = await pool.getConnection();
                try {
                  let after = 0;
                  while (!stopped) {
                    const now = Date.now();
                    const [result] = await conn.query(
                      `SELECT id, published_at, payload FROM ${table} WHERE id > ? ORDER BY id LIMIT ?`,
                      [after, o.selectRows],
                    );
                    const rows = (result as { id: number; published_at: number; payload: Buffer }[]).map(
                      (r) => ({ id: Number(r.id), publishedAt: Number(r.published_at), payload: r.payload }),
                    );
                    const n = readableCount(rows, after, now, o.maxGapAgeMs);
                    if (n === 0) {
                      await sleep(o.idlePollMs);
                      continue;
                    }
                    after = rows[n - 1].id;
                    deliver(
                      g,
                      rows.slice(0, n).map((r) => r.payload),
                    );
                  }
                } finally {
                  conn.release();
                }
              })(),
            );
          }
        }
      },
      stopConsumers: async () => {
        stopped = true;
        await Promise.all(loops);
      },
      close: async () => {
        // The broker user may not drop tables; the shards' admin may.
        const shards = await this.shards.get();
        await Promise.all(
          shards.shards.map((s) =>
            withAdmin(s.primary.endpoint, shards.secrets.admin, (c) =>
              c.query(`DROP TABLE IF EXISTS ${table}`),
            ),
          ),
        );
      },
    };
  }

  async stop(): Promise<void> {
    await Promise.all(this.pools.map((p) => p.end().catch(() => undefined)));
    this.pools = [];
  }
}
