/** What the broker's probe of a shard's write instance saw. */
export interface WriteProbe {
  reachable: boolean;
  readOnly: boolean;
  semiSyncActive: boolean;
  semiSyncStandbys: number;
}

/**
 * Whether the broker may write to a shard now. Under the `required` policy a primary without a
 * connected semi-sync standby would block every commit, and one that fell back to async would
 * acknowledge messages held on one server only: both are skipped.
 */
export function writeEligible(probe: WriteProbe, requireStandbyAck: boolean): boolean {
  if (!probe.reachable || probe.readOnly) return false;
  if (!requireStandbyAck) return true;
  return probe.semiSyncActive && probe.semiSyncStandbys >= 1;
}
