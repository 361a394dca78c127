import type mysql from 'mysql2/promise';
import type { Credentials } from '../../shard/connection.js';
import { queryRows, withAdmin } from '../../shard/connection.js';
import { QUEUE_DATABASE, messageTable } from '../../shard/schema.js';
import { errorMessage } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import type { DefaultedCluster } from '../api/types.js';
import type { EventRecorder, EventSubject } from '../events.js';
import type { ShardOutcome } from '../shards/manager.js';

/**
 * Dead letters as Kubernetes Events. Brokers have no Kubernetes API rights, and their counter
 * (`mq_broker_dead_lettered_messages_total`) resets with each broker and says nothing of the
 * message: instead the operator reads the copies themselves, the new rows of every `<topic>.dlq`
 * on each shard's read instance, and writes one Warning Event `DeadLettered` per message on the
 * topic's MessageQueueTopic (on the cluster when there is none).
 */

/** Seconds between two passes over the shards. */
export const DEAD_LETTER_SCAN_MS = 5_000;
/** Rows read per dead-letter topic and shard in one pass; the rest wait for the next. */
const ROWS_PER_PASS = 100;
/** Events per pass and cluster; the rest are summed up in one more. */
const EVENTS_PER_PASS = 10;
/**
 * Ids below the highest seen are read again this far back: concurrent publishes commit out of id
 * order, so a lower id can appear after a higher one was read.
 */
const REREAD_WINDOW = 64;

export const DLQ_SUFFIX = '.dlq';

/** What the broker wrote into `<topic>.dlq` (src/broker/dead-letters.ts `deadLetterBody`). */
export interface DeadLetterCopy {
  topic: string;
  group: string;
  shard: string;
  id: number;
  reason: string;
  deliveries: number;
  error: string | null;
}

/** The copy's JSON body; undefined for anything else (a message someone published there by hand). Pure. */
export function parseDeadLetter(body: string): DeadLetterCopy | undefined {
  try {
    const v = JSON.parse(body) as Record<string, unknown>;
    if (typeof v.topic !== 'string' || typeof v.group !== 'string' || typeof v.shard !== 'string') return;
    if (typeof v.id !== 'number') return;
    return {
      topic: v.topic,
      group: v.group,
      shard: v.shard,
      id: v.id,
      reason: typeof v.reason === 'string' ? v.reason : 'unknown',
      deliveries: typeof v.deliveries === 'number' ? v.deliveries : 0,
      error: typeof v.error === 'string' ? v.error : null,
    };
  } catch {
    return undefined;
  }
}

/** The Event text a person reads in `kubectl describe mqt`. Pure. */
export function deadLetterMessage(d: DeadLetterCopy): string {
  const why =
    d.reason === 'handler_failed'
      ? `the handler failed ${d.deliveries} times`
      : d.reason === 'not_committed'
        ? `fetched ${d.deliveries} times without a commit`
        : d.reason;
  const error = d.error ? `; last error: ${d.error}` : '';
  return `message ${d.shard}/${d.id} of topic ${d.topic} set aside for group ${d.group}: ${why}${error}; the copy is in ${d.topic}${DLQ_SUFFIX}`;
}

export interface DeadLetterWatchDeps {
  admin: Credentials;
  events: EventRecorder;
  /** The MessageQueueTopic of a topic of this cluster, if one exists. */
  topicResource(topic: string): EventSubject | undefined;
  log: Logger;
  /** Copies older than this (ms since the epoch) are not announced: the operator's start. */
  since?: number;
}

/** Per dead-letter topic and shard: what was announced above the floor. */
interface Seen {
  floor: number;
  ids: Set<number>;
}

export class DeadLetterWatch {
  private readonly seen = new Map<string, Seen>();
  private running = false;
  private lastStart = 0;
  private readonly since: number;

  constructor(private readonly deps: DeadLetterWatchDeps) {
    this.since = deps.since ?? Date.now();
  }

  /** Starts a pass when the last one is done and old enough; never waits for it. */
  maybeRun(cr: DefaultedCluster, outcomes: ShardOutcome[], now = Date.now()): void {
    if (this.running || now - this.lastStart < DEAD_LETTER_SCAN_MS) return;
    this.running = true;
    this.lastStart = now;
    void this.pass(cr, outcomes).finally(() => (this.running = false));
  }

  private async pass(cr: DefaultedCluster, outcomes: ShardOutcome[]): Promise<void> {
    const found: DeadLetterCopy[] = [];
    for (const o of outcomes) {
      if (!o.route.read) continue;
      try {
        found.push(...(await withAdmin(o.route.read, this.deps.admin, (conn) => this.scan(conn, o.shard))));
      } catch (err) {
        this.deps.log.debug('dead-letter scan failed', { shard: o.shard, error: errorMessage(err) });
      }
    }
    for (const d of found.slice(0, EVENTS_PER_PASS)) {
      const subject = this.deps.topicResource(d.topic) ?? cr;
      void this.deps.events.record(subject, 'Warning', 'DeadLettered', deadLetterMessage(d), {
        transition: true,
      });
    }
    if (found.length > EVENTS_PER_PASS) {
      void this.deps.events.record(
        cr,
        'Warning',
        'DeadLettered',
        `${found.length - EVENTS_PER_PASS} more messages set aside in the last ${DEAD_LETTER_SCAN_MS / 1000} s (topics ${[
          ...new Set(found.slice(EVENTS_PER_PASS).map((d) => d.topic)),
        ].join(', ')}); read the .dlq topics`,
        { transition: true },
      );
    }
  }

  /** New copies in the shard's dead-letter topics, each once. */
  private async scan(conn: mysql.Connection, shard: string): Promise<DeadLetterCopy[]> {
    const topics = await queryRows(conn, `SELECT id, name FROM ${QUEUE_DATABASE}.topics WHERE name LIKE ?`, [
      `%${DLQ_SUFFIX}`,
    ]);
    const found: DeadLetterCopy[] = [];
    for (const t of topics) {
      const key = `${shard}/${String(t.name)}`;
      const table = messageTable(Number(t.id));
      let seen = this.seen.get(key);
      if (!seen) {
        // First sight: start near the end, not at the first copy ever made (those are older
        // than this operator and were announced by its predecessor, or not at all).
        const [last] = await queryRows(conn, `SELECT MAX(id) AS id FROM ${table}`);
        seen = { floor: Math.max(0, Number(last?.id ?? 0) - ROWS_PER_PASS), ids: new Set<number>() };
        this.seen.set(key, seen);
      }
      const rows = await queryRows(
        conn,
        `SELECT id, published_at, payload FROM ${table} WHERE id > ? ORDER BY id LIMIT ${ROWS_PER_PASS + REREAD_WINDOW}`,
        [seen.floor],
      );
      let highest = seen.floor;
      for (const r of rows) {
        const id = Number(r.id);
        highest = Math.max(highest, id);
        if (seen.ids.has(id)) continue;
        seen.ids.add(id);
        if (Number(r.published_at) < this.since) continue;
        const copy = parseDeadLetter(Buffer.from(r.payload as Buffer).toString('utf8'));
        if (copy) found.push(copy);
      }
      seen.floor = Math.max(seen.floor, highest - REREAD_WINDOW);
      for (const id of seen.ids) if (id <= seen.floor) seen.ids.delete(id);
    }
    return found;
  }
}
