/**
 * The consumer-group administration contract: what `GET /v1/topics/{topic}/groups` answers and
 * where `POST .../groups/{group}/reset` puts a group. Shared by the broker and the SDK.
 */

/** Where a reset puts a group: every shard's oldest or newest message, a time, or given ids. */
export type ResetTarget = 'earliest' | 'latest' | { timestamp: number } | { offsets: Record<string, number> };

export interface GroupShard {
  committed: number | null;
  newest: number | null;
  lag: number | null;
  /** The consumer holding an unexpired lease on this shard, or null. */
  owner: string | null;
  /** Why the shard could not be read (then the numbers are null). */
  error?: string;
}

export interface GroupInfo {
  name: string;
  /** Consumers holding unexpired leases on some shard of the topic. */
  members: string[];
  shards: Record<string, GroupShard>;
}
