/**
 * MariaDB GTID positions: `domain-server-seq` entries, comma separated, one per domain.
 * Pure helpers used to measure lag and to tell whether an instance has diverged.
 */
export interface Gtid {
  domain: number;
  server: number;
  seq: number;
}

export function parseGtidList(text: string | null | undefined): Gtid[] {
  if (!text) return [];
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((entry) => {
      const m = /^(\d+)-(\d+)-(\d+)$/.exec(entry);
      if (!m) throw new Error(`malformed GTID "${entry}"`);
      return { domain: Number(m[1]), server: Number(m[2]), seq: Number(m[3]) };
    });
}

/** Transactions `behind` lacks compared with `ahead`, summed over domains (0 when caught up). */
export function transactionsBehind(ahead: Gtid[], behind: Gtid[]): number {
  let total = 0;
  for (const a of ahead) {
    const b = behind.find((g) => g.domain === a.domain);
    total += Math.max(0, a.seq - (b?.seq ?? 0));
  }
  return total;
}

/**
 * True when `candidate` holds a transaction `reference` never had: a domain it is ahead in, or a
 * different server id at a sequence number `reference` has already passed (in strict mode the
 * sequence increases monotonically within a domain, so equal seq with another server means a
 * different transaction).
 */
export function hasDiverged(reference: Gtid[], candidate: Gtid[]): boolean {
  return candidate.some((c) => {
    const r = reference.find((g) => g.domain === c.domain);
    if (!r) return c.seq > 0;
    if (c.seq > r.seq) return true;
    return c.seq === r.seq && c.server !== r.server;
  });
}

/**
 * True when every transaction up to `position` (an instance's `gtid_binlog_pos`) is in the binlog
 * whose `gtid_binlog_state` is `state`. The state keeps the last sequence number per domain and
 * server, and in strict mode one server's transactions are numbered in order, so the test is exact:
 * a former primary whose last transaction its successor never received has diverged from it.
 */
export function binlogHolds(state: Gtid[], position: Gtid[]): boolean {
  return position.every((p) => {
    if (p.seq === 0) return true;
    const s = state.find((g) => g.domain === p.domain && g.server === p.server);
    return s !== undefined && s.seq >= p.seq;
  });
}

/** A GTID list as people read it in status and Events. */
export function describeGtidList(list: Gtid[]): string {
  return list.map((g) => `${g.domain}-${g.server}-${g.seq}`).join(',') || 'empty';
}
