import type { GroupInfo, ResetTarget } from '../client/index.js';
import { formatTable } from './table.js';

/** One row per group and shard, as Kafka's consumer-group tool shows partitions. Pure. */
export function groupsTable(groups: readonly GroupInfo[]): string {
  const rows = groups.flatMap((g) =>
    Object.entries(g.shards).map(([shard, s]) => [
      g.name,
      shard,
      s.committed,
      s.newest,
      s.lag,
      s.owner ?? (s.error ? `error: ${s.error}` : null),
    ]),
  );
  return formatTable(['GROUP', 'SHARD', 'COMMITTED', 'NEWEST', 'LAG', 'OWNER'], rows);
}

/** The reset flags in node:util parseArgs form, for mqctl and kubectl-mqc alike. */
export const RESET_OPTIONS = {
  force: { type: 'boolean' },
  'to-earliest': { type: 'boolean' },
  'to-latest': { type: 'boolean' },
  'to-timestamp': { type: 'string' },
  'to-offsets': { type: 'string' },
} as const;

export interface ResetFlags {
  'to-earliest'?: boolean;
  'to-latest'?: boolean;
  'to-timestamp'?: string;
  'to-offsets'?: string;
}

/** The one `--to-*` flag given, as the broker's reset target; throws a usage message. Pure. */
export function parseResetFlags(flags: ResetFlags): ResetTarget {
  const given = (['to-earliest', 'to-latest', 'to-timestamp', 'to-offsets'] as const).filter(
    (f) => flags[f] !== undefined && flags[f] !== false,
  );
  if (given.length !== 1) {
    throw new Error(
      'give exactly one of --to-earliest, --to-latest, --to-timestamp ISO, --to-offsets shard-0=41,...',
    );
  }
  if (flags['to-earliest']) return 'earliest';
  if (flags['to-latest']) return 'latest';
  if (flags['to-timestamp'] !== undefined) {
    const text = flags['to-timestamp'];
    const ms = /^\d+$/.test(text) ? Number(text) : Date.parse(text);
    if (!Number.isSafeInteger(ms) || ms < 0) {
      throw new Error(
        `--to-timestamp ${JSON.stringify(text)} is not an ISO 8601 time (or ms since the epoch)`,
      );
    }
    return { timestamp: ms };
  }
  const offsets: Record<string, number> = {};
  for (const part of flags['to-offsets']!.split(',').filter(Boolean)) {
    const m = /^([^=]+)=(\d+)$/.exec(part.trim());
    if (!m) throw new Error(`--to-offsets: "${part}" is not SHARD=ID (e.g. shard-0=41)`);
    offsets[m[1]] = Number(m[2]);
  }
  if (Object.keys(offsets).length === 0) throw new Error('--to-offsets needs at least one SHARD=ID');
  return { offsets };
}
