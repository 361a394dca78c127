import { withDeadline } from '../common/deadline.js';
import type { Logger } from '../common/logger.js';
import { errorMessage } from '../common/errors.js';
import type { Endpoint } from '../shard/connection.js';
import type { ShardPools } from './shard-pools.js';
import { type RoutingDocument, type ShardRoute } from '../api/routing.js';
import { type WriteProbe, writeEligible } from './shard-health.js';

export interface ShardView {
  name: string;
  route: ShardRoute;
  /** Routing names a write instance, and the broker's last probe or write found it usable. */
  writable: boolean;
  readable: boolean;
  lastError?: string;
}

/**
 * The broker's live picture of the shards: the operator's routing document plus what this broker
 * saw itself. A failed write takes a shard out of the write rotation at once; the probe loop puts it
 * back when the instance is writable again, so producers never wait for the operator.
 */
export class ShardRouter {
  private doc: RoutingDocument;
  private readonly writeOk = new Map<string, boolean>();
  private readonly lastError = new Map<string, string>();
  private rr = 0;
  private probeTimer?: NodeJS.Timeout;
  private readonly listeners: (() => void)[] = [];

  constructor(
    initial: RoutingDocument,
    private readonly pools: ShardPools,
    private readonly log: Logger,
  ) {
    this.doc = initial;
    this.retainPools();
  }

  get version(): number {
    return this.doc.version;
  }

  get routing(): RoutingDocument {
    return this.doc;
  }

  /** Applies a routing document if it is newer; returns whether it was applied. */
  update(doc: RoutingDocument): boolean {
    if (doc.version <= this.doc.version) return false;
    const previous = this.doc;
    this.doc = doc;
    for (const shard of doc.shards) {
      const before = previous.shards.find((s) => s.name === shard.name);
      // A new write instance is trusted until a probe or write says otherwise.
      if (JSON.stringify(before?.write) !== JSON.stringify(shard.write)) this.writeOk.delete(shard.name);
    }
    this.retainPools();
    this.log.info('routing applied', { version: doc.version, shards: doc.shards.map((s) => s.name) });
    for (const listener of this.listeners) listener();
    return true;
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  shards(): ShardView[] {
    return this.doc.shards.map((route) => ({
      name: route.name,
      route,
      writable: route.write !== null && this.writeOk.get(route.name) !== false,
      readable: route.read !== null,
      lastError: this.lastError.get(route.name),
    }));
  }

  writableShards(): ShardView[] {
    return this.shards().filter((s) => s.writable);
  }

  readableShards(): ShardView[] {
    return this.shards().filter((s) => s.readable);
  }

  /** The writable shards in round-robin order, starting a new place on every call. */
  writeOrder(): ShardView[] {
    const writable = this.writableShards();
    if (writable.length === 0) return [];
    const start = this.rr++ % writable.length;
    return [...writable.slice(start), ...writable.slice(0, start)];
  }

  /** Called when a write failed: the shard leaves the rotation until a probe finds it usable. */
  markWriteFailed(name: string, err: unknown): void {
    if (this.writeOk.get(name) !== false) {
      this.log.warn('shard taken out of write rotation', { shard: name, error: errorMessage(err) });
    }
    this.writeOk.set(name, false);
    this.lastError.set(name, errorMessage(err));
  }

  startProbing(intervalMs: number): void {
    const loop = async () => {
      await Promise.all(this.doc.shards.map((s) => this.probe(s)));
      this.probeTimer = setTimeout(loop, intervalMs);
      this.probeTimer.unref();
    };
    void loop();
  }

  stopProbing(): void {
    clearTimeout(this.probeTimer);
    this.probeTimer = undefined;
  }

  private async probe(route: ShardRoute): Promise<void> {
    if (!route.write) return;
    const probe = await this.probeWrite(route);
    const ok = writeEligible(probe.result, route.requireStandbyAck);
    const was = this.writeOk.get(route.name);
    if (ok !== was) {
      const detail = { shard: route.name, ...probe.result, error: probe.error };
      if (ok) this.log.info('shard writable', detail);
      else this.log.warn('shard not writable', detail);
    }
    this.writeOk.set(route.name, ok);
    if (ok) this.lastError.delete(route.name);
    else this.lastError.set(route.name, probe.error ?? describeProbe(probe.result));
  }

  private async probeWrite(route: ShardRoute): Promise<{ result: WriteProbe; error?: string }> {
    try {
      // A hung instance never answers: without a deadline one shard's probe holds up every shard's.
      const [rows] = await withDeadline(
        this.pools.get(route.write!).query(
          `SELECT @@read_only AS ro,
             (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS
               WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_STATUS') AS ss,
             (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS
               WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_CLIENTS') AS clients`,
        ),
        PROBE_TIMEOUT_MS,
        `probe of ${route.name}`,
        () => undefined,
      );
      const row = (rows as Record<string, unknown>[])[0];
      return {
        result: {
          reachable: true,
          readOnly: Number(row.ro) === 1,
          semiSyncActive: row.ss === 'ON',
          semiSyncStandbys: Number(row.clients ?? 0),
        },
      };
    } catch (err) {
      return {
        result: { reachable: false, readOnly: true, semiSyncActive: false, semiSyncStandbys: 0 },
        error: errorMessage(err),
      };
    }
  }

  /** Every instance the routing names. */
  endpoints(): Endpoint[] {
    return this.doc.shards.flatMap((s) => [s.write, s.read].filter((e) => e !== null));
  }

  private retainPools(): void {
    this.pools.retainOnly(this.endpoints());
  }
}

const PROBE_TIMEOUT_MS = 2000;

function describeProbe(p: WriteProbe): string {
  if (p.readOnly) return 'instance is read-only';
  return `semi-sync not active (standbys connected: ${p.semiSyncStandbys})`;
}
