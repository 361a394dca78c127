import { binlogHolds, describeGtidList, hasDiverged, transactionsBehind } from '../../shard/gtid.js';
import type { InstanceProbe } from '../../shard/probe.js';

/**
 * The shard state machine, as a pure function of what the operator observes: the two instance pods,
 * the MySQL probe of each, and what it remembered from the last decision (kept in the CR status so
 * an operator restart picks up where the last one stopped). It returns what to do, how brokers
 * should route, and what to tell people. It never does I/O, so every transition is unit-tested.
 */
export interface InstanceView {
  index: number;
  podName: string;
  podIP?: string;
  /** Undefined when the pod does not exist. */
  podPhase?: string;
  podReady: boolean;
  deleting: boolean;
  /** Undefined when the probe failed or could not run. */
  probe?: InstanceProbe;
  probeError?: string;
  /** The rebuild request this pod was created for (its `mysqlmq.io/seed-id` annotation). */
  seedId?: string;
}

/**
 * A standby being re-seeded with a physical copy of its primary: the reconciler replaces its pod
 * with one whose init step pulls the copy from `source` (the primary's agent) for request `id`.
 */
export interface RebuildRequest {
  index: number;
  id: string;
  /** `host:port` of the primary's agent when the request was made. */
  source: string;
  reason: string;
  since: string;
}

export type ReadsFrom = 'primary' | 'standby' | 'none';

export interface ShardMemory {
  primaryIndex: number;
  bootstrapped: boolean;
  readsFrom: ReadsFrom;
  /** Consecutive failed MySQL probes of the primary. */
  primaryProbeFailures: number;
  phase: ShardPhase;
  lastTransitionTime?: string;
  failedOverAt?: string;
  /**
   * Whether the standby held every acknowledged transaction when the primary failed: always under
   * durability "required", and under "preferred" only if semi-sync was active. Promotion for writes
   * needs it.
   */
  failedOverProtected?: boolean;
  /** The standby is a former primary that must be fenced and rejoined (or rebuilt) before it follows. */
  standbyMustRejoin?: boolean;
  /** A rebuild by physical clone in progress. */
  rebuild?: RebuildRequest;
  /**
   * A planned switchover has taken this shard out of the write rotation; the next decision swaps
   * the roles (or gives up). Never persisted: an operator that restarts mid-switchover reopens
   * writes on the primary it finds in status, or adopts the swapped roles (`rolesAsObserved`).
   */
  switchoverWritesPaused?: boolean;
}

export type ShardPhase =
  | 'Provisioning'
  | 'Healthy'
  | 'StandbyUnavailable'
  | 'Unprotected'
  | 'FailedOver'
  | 'Promoting'
  | 'Recovering'
  | 'Diverged'
  | 'Rebuilding'
  | 'Unavailable'
  | 'SwitchingOver';

export interface ShardPolicy {
  durability: 'required' | 'preferred';
  failureThreshold: number;
  promoteStandbyForReads: boolean;
  /** How long a failed primary may stay down before its standby becomes the primary; null: never. */
  promoteForWritesAfterMs: number | null;
  /**
   * Where a standby that cannot follow pulls a physical copy from: the port of the agent next to
   * every instance. Null where instances run without an agent (then a diverged former primary is
   * wiped and replays the primary's binlog, and other standbys that cannot follow stay broken).
   */
  cloneAgentPort: number | null;
}

export type ShardAction =
  | { kind: 'bootstrap' }
  | { kind: 'enableSemiSync' }
  | { kind: 'attachStandby' }
  | { kind: 'openWrites' }
  /** Make the (new) primary one: apply what it received, stop replicating; fence the old one. */
  | { kind: 'promote' }
  /** Fence the former primary and make it follow; `rebuild` wipes and re-replicates it first. */
  | { kind: 'rejoinStandby'; rebuild: boolean }
  /** Cut the standby's broker connections and make it read-only (it is about to be rebuilt). */
  | { kind: 'fenceStandby' }
  /**
   * Planned switchover, run while the shard is out of the write rotation: fence the primary, wait
   * until the standby applied everything it has, promote the standby, make the old primary follow
   * it, open writes. In the decision's memory the roles are already swapped.
   */
  | { kind: 'switchover' };

export interface ShardRouteChoice {
  write: 'primary' | null;
  read: 'primary' | 'standby' | null;
  requireStandbyAck: boolean;
}

export interface ShardEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export interface ShardDecision {
  memory: ShardMemory;
  actions: ShardAction[];
  route: ShardRouteChoice;
  message: string;
  events: ShardEvent[];
  lagTransactions: number | null;
  lagSeconds: number | null;
  semiSync: 'active' | 'waiting' | 'off';
  /** Set when this decision ends a requested switchover, either way. */
  switchover?: SwitchoverVerdict;
}

export interface SwitchoverVerdict {
  result: 'Succeeded' | 'Failed';
  /** The primary before and (if it succeeds) after. */
  from: string;
  to: string;
  message: string;
}

/** Whether a planned switchover was asked for this shard, and what the other shards allow. */
export interface SwitchoverRequest {
  /** Why the other shards cannot take this shard's writes for a moment; undefined when they can. */
  blockedBy?: string;
}

/**
 * The standby may be at most this many transactions behind for a switchover to start: it must
 * apply them while writes are paused, and the pause is meant to stay under two seconds.
 */
export const SWITCHOVER_MAX_LAG_TRANSACTIONS = 200;

export const initialMemory = (): ShardMemory => ({
  primaryIndex: 0,
  bootstrapped: false,
  readsFrom: 'none',
  primaryProbeFailures: 0,
  phase: 'Provisioning',
});

const podServing = (i: InstanceView) => i.podPhase === 'Running' && i.podReady && !i.deleting;
const usable = (i: InstanceView) => podServing(i) && i.probe !== undefined;

export function decideShard(
  shard: string,
  instances: InstanceView[],
  previous: ShardMemory,
  policy: ShardPolicy,
  now: Date,
  switchover?: SwitchoverRequest,
): ShardDecision {
  const adopted = rolesAsObserved(shard, instances, previous, now);
  const remembered = adopted?.memory ?? previous;
  const health = decideHealth(
    shard,
    instances,
    { ...remembered, switchoverWritesPaused: undefined },
    policy,
    now,
  );
  if (adopted) health.events.unshift(adopted.event);
  return withSwitchover(shard, instances, remembered, health, now, switchover);
}

/**
 * The roles as the instances show them, when they contradict what was remembered: the remembered
 * primary replicates from the remembered standby, which replicates from nobody. Only a swap that
 * finished without being recorded leaves that (an operator killed mid-switchover, or between a
 * promotion and its status write): `attachStandby` points an instance only at the primary of the
 * moment. Turning the roles back would make two writable primaries out of one.
 */
function rolesAsObserved(
  shard: string,
  instances: InstanceView[],
  previous: ShardMemory,
  now: Date,
): { memory: ShardMemory; event: ShardEvent } | undefined {
  if (!previous.bootstrapped) return undefined;
  const primary = instances.find((i) => i.index === previous.primaryIndex)!;
  const standby = instances.find((i) => i.index !== previous.primaryIndex)!;
  const followsStandby = standby.podIP !== undefined && primary.probe?.replica?.sourceHost === standby.podIP;
  if (!followsStandby || standby.probe?.replica) return undefined;
  return {
    memory: {
      ...previous,
      primaryIndex: standby.index,
      primaryProbeFailures: 0,
      standbyMustRejoin: false,
      rebuild: undefined,
      lastTransitionTime: now.toISOString(),
    },
    event: {
      type: 'Normal',
      reason: 'RolesAdopted',
      message: `${shard}: ${primary.podName} replicates from ${standby.podName}, so ${standby.podName} is the primary (a role change finished without being recorded, e.g. an operator stopped mid-switchover)`,
    },
  };
}

/**
 * The planned switchover, on top of what the health state machine decided. Two decisions: the first
 * (on request, only for a Healthy shard whose standby is in sync) takes the shard out of the write
 * rotation, so brokers send its writes to the other shards while the roles change; the next swaps
 * the roles, or reports why it cannot if anything changed meanwhile.
 */
function withSwitchover(
  shard: string,
  instances: InstanceView[],
  previous: ShardMemory,
  health: ShardDecision,
  now: Date,
  request: SwitchoverRequest | undefined,
): ShardDecision {
  const primary = instances.find((i) => i.index === previous.primaryIndex)!;
  const standby = instances.find((i) => i.index !== previous.primaryIndex)!;
  const verdict = (result: SwitchoverVerdict['result'], message: string): SwitchoverVerdict => ({
    result,
    from: primary.podName,
    to: standby.podName,
    message,
  });
  const inSync = health.lagTransactions !== null && health.lagTransactions <= SWITCHOVER_MAX_LAG_TRANSACTIONS;
  const ready = health.memory.phase === 'Healthy' && health.actions.length === 0 && usable(standby);

  if (previous.switchoverWritesPaused) {
    if (!ready) {
      return {
        ...health,
        switchover: verdict(
          'Failed',
          `${shard} changed while its writes were paused: ${usable(standby) ? health.message : describeDown(standby)}`,
        ),
      };
    }
    const memory: ShardMemory = {
      ...health.memory,
      primaryIndex: standby.index,
      lastTransitionTime: now.toISOString(),
      phase: 'Healthy',
    };
    return {
      ...health,
      memory,
      actions: [{ kind: 'switchover' }],
      route: { ...health.route, write: 'primary', read: 'primary' },
      message: `${standby.podName} primary, ${primary.podName} semi-sync standby`,
      switchover: verdict(
        'Succeeded',
        `${shard}: ${standby.podName} is the primary, ${primary.podName} its semi-sync standby`,
      ),
    };
  }
  if (!request) return health;
  const refusal =
    request.blockedBy ??
    (!ready
      ? `${shard} is ${health.memory.phase}: ${usable(standby) ? health.message : describeDown(standby)}`
      : !inSync
        ? `standby ${standby.podName} is not in sync with ${primary.podName} (${health.lagTransactions ?? 'unknown'} transactions behind, at most ${SWITCHOVER_MAX_LAG_TRANSACTIONS} allowed)`
        : undefined);
  if (refusal) return { ...health, switchover: verdict('Failed', refusal) };
  return {
    ...health,
    memory: {
      ...health.memory,
      switchoverWritesPaused: true,
      phase: 'SwitchingOver',
      lastTransitionTime: now.toISOString(),
    },
    route: { ...health.route, write: null },
    message: `switching over to ${standby.podName}: writes go to the other shards meanwhile`,
  };
}

function decideHealth(
  shard: string,
  instances: InstanceView[],
  previous: ShardMemory,
  policy: ShardPolicy,
  now: Date,
): ShardDecision {
  const primary = instances.find((i) => i.index === previous.primaryIndex)!;
  const standby = instances.find((i) => i.index !== previous.primaryIndex)!;
  const memory: ShardMemory = {
    ...previous,
    primaryProbeFailures: primary.probe ? 0 : previous.primaryProbeFailures + 1,
  };
  const events: ShardEvent[] = [];
  const requireStandbyAck = policy.durability === 'required';
  const lag = replicationLag(primary, standby);
  const base = {
    lagTransactions: lag.transactions,
    lagSeconds: lag.seconds,
    semiSync: semiSyncState(primary),
  };

  const finish = (
    phase: ShardPhase,
    route: ShardRouteChoice,
    message: string,
    actions: ShardAction[] = [],
  ): ShardDecision => {
    if (phase !== previous.phase) memory.lastTransitionTime = now.toISOString();
    memory.phase = phase;
    return { memory, actions, route, message, events, ...base };
  };

  if (!previous.bootstrapped) {
    if (usable(primary) && usable(standby)) {
      memory.bootstrapped = true;
      memory.readsFrom = 'primary';
      events.push({
        type: 'Normal',
        reason: 'ShardBootstrapped',
        message: `${shard}: created users and schema on ${primary.podName}, attached ${standby.podName} as its semi-sync standby`,
      });
      return finish(
        'Provisioning',
        { write: null, read: 'primary', requireStandbyAck },
        'bootstrapping replication',
        [{ kind: 'bootstrap' }],
      );
    }
    return finish(
      'Provisioning',
      { write: null, read: null, requireStandbyAck },
      `waiting for ${[primary, standby]
        .filter((i) => !usable(i))
        .map(describeDown)
        .join(' and ')}`,
    );
  }

  // Detection: a pod that is gone, failed or NotReady counts at once; MySQL probes count only after
  // `failureThreshold` failures in a row, so one slow probe is not a failover.
  const primaryFailed = !podServing(primary) || memory.primaryProbeFailures >= policy.failureThreshold;
  if (primaryFailed) {
    const readFromStandby = policy.promoteStandbyForReads && usable(standby);
    const readsFrom: ReadsFrom = readFromStandby ? 'standby' : 'none';
    if (previous.readsFrom === 'primary') {
      memory.failedOverAt = now.toISOString();
      memory.failedOverProtected = requireStandbyAck || previous.phase === 'Healthy';
      events.push({
        type: 'Warning',
        reason: readFromStandby ? 'FailedOver' : 'ShardUnavailable',
        message: `${shard}: primary ${primary.podName} failed (${describeDown(primary)}); ${
          readFromStandby
            ? `standby ${standby.podName} serves reads, writes go to the other shards`
            : 'no standby can serve reads, the shard is unreadable until one returns'
        }`,
      });
    }
    memory.readsFrom = readsFrom;
    const promotion = readFromStandby ? promotionFor(memory, policy, now) : 'off';
    if (promotion === 'due') {
      memory.primaryIndex = standby.index;
      memory.readsFrom = 'primary';
      memory.primaryProbeFailures = 0;
      memory.standbyMustRejoin = true;
      events.push({
        type: 'Warning',
        reason: 'PromotedForWrites',
        message: `${shard}: primary ${primary.podName} has been down since ${memory.failedOverAt}; standby ${standby.podName} is now the primary. ${primary.podName} is fenced and rejoins as the standby when it returns`,
      });
      return finish(
        'Promoting',
        { write: null, read: 'primary', requireStandbyAck },
        `promoting ${standby.podName} to primary; ${primary.podName} (${describeDown(primary)}) is fenced until it rejoins as the standby`,
        [{ kind: 'promote' }],
      );
    }
    const refusal =
      promotion === 'unsafe'
        ? `; not promoted for writes: writes were not protected by semi-sync when it failed (durability "preferred"), so the standby may lack acknowledged messages`
        : '';
    return finish(
      readFromStandby ? 'FailedOver' : 'Unavailable',
      { write: null, read: readFromStandby ? 'standby' : null, requireStandbyAck },
      readFromStandby
        ? `primary ${primary.podName} is down (${describeDown(primary)}); reads from standby ${standby.podName}, no writes${refusal}`
        : `primary ${primary.podName} is down (${describeDown(primary)}) and no standby serves reads`,
    );
  }

  if (!primary.probe) {
    // Probe failures below the threshold: keep the routing as it is and look again.
    return finish(
      previous.phase,
      {
        write: previous.phase === 'Healthy' || previous.phase === 'Unprotected' ? 'primary' : null,
        read: previous.readsFrom === 'none' ? null : previous.readsFrom,
        requireStandbyAck,
      },
      `probe of ${primary.podName} failed (${memory.primaryProbeFailures}/${policy.failureThreshold}): ${primary.probeError ?? 'no answer'}`,
    );
  }
  const p = primary.probe;
  const s = usable(standby) ? standby.probe! : undefined;
  const recovering = previous.readsFrom !== 'primary';

  // A returning primary that lacks transactions its standby holds lost acknowledged data: it is
  // never re-admitted silently.
  if (recovering && s && hasDiverged(p.gtidBinlogPos, s.gtidCurrentPos)) {
    if (previous.phase !== 'Diverged') {
      events.push({
        type: 'Warning',
        reason: 'PrimaryDiverged',
        message: `${shard}: ${primary.podName} returned without transactions its standby has; it is not re-admitted`,
      });
    }
    memory.readsFrom = 'standby';
    return finish(
      'Diverged',
      { write: null, read: 'standby', requireStandbyAck },
      `${primary.podName} returned lacking transactions that ${standby.podName} holds (primary ${describeGtidList(p.gtidBinlogPos)}, standby ${describeGtidList(s.gtidCurrentPos)}). Reads stay on the standby. To recover, rebuild ${primary.podName} from the standby (delete its PVC and pod) once a backup of its data is taken.`,
    );
  }

  const actions: ShardAction[] = [];
  if (!p.semiSyncPrimaryEnabled) actions.push({ kind: 'enableSemiSync' });
  const following = s?.replica?.ioRunning && s.replica.sqlRunning && s.replica.sourceHost === primary.podIP;
  const source =
    policy.cloneAgentPort !== null && primary.podIP ? `${primary.podIP}:${policy.cloneAgentPort}` : null;
  const rebuilding = previous.rebuild?.index === standby.index ? previous.rebuild : undefined;
  const rebuilt = rebuilding !== undefined && standby.seedId === rebuilding.id && s !== undefined;
  // A rebuilt standby is asked again only if it fails to replicate (a copy that does not fit).
  const cannotFollow =
    s && !following && source && (!rebuilt || s.replica?.lastError)
      ? whyCannotFollow(p, s, previous)
      : undefined;
  if (rebuilding && !rebuilt) {
    // The reconciler replaces the standby's pod; a request whose source moved is made again.
    if (source && rebuilding.source !== source && !standby.podReady) {
      memory.rebuild = { ...rebuilding, id: rebuildId(now), source, since: now.toISOString() };
    }
  } else if (cannotFollow && source) {
    memory.rebuild = {
      index: standby.index,
      id: rebuildId(now),
      source,
      reason: cannotFollow,
      since: now.toISOString(),
    };
    memory.standbyMustRejoin = false;
    actions.push({ kind: 'fenceStandby' });
    events.push({
      type: 'Warning',
      reason: 'RebuildingStandby',
      message: `${shard}: ${standby.podName} ${cannotFollow}; it is re-seeded with a physical copy of ${primary.podName}`,
    });
  } else if (s && !following && previous.standbyMustRejoin) {
    // The former primary is back. Whatever it holds beyond what its successor received was never
    // acknowledged (AFTER_SYNC semi-sync); it is wiped rather than replicated around.
    const rebuild = !binlogHolds(p.gtidBinlogState, s.gtidBinlogPos);
    actions.push({ kind: 'rejoinStandby', rebuild });
    events.push(
      rebuild
        ? {
            type: 'Warning',
            reason: 'StandbyRebuilt',
            message: `${shard}: former primary ${standby.podName} holds transactions ${primary.podName} never received (${describeGtidList(s.gtidBinlogPos)}, none acknowledged); it is wiped and replicates ${primary.podName} from the start`,
          }
        : {
            type: 'Normal',
            reason: 'StandbyRejoined',
            message: `${shard}: former primary ${standby.podName} is fenced and follows ${primary.podName} as its standby`,
          },
    );
  } else if (s && !following) {
    actions.push({ kind: 'attachStandby' });
  }
  if (following) memory.standbyMustRejoin = false;
  if (rebuilt && following && rebuilding) {
    memory.rebuild = undefined;
    const seconds = Math.round((now.getTime() - Date.parse(rebuilding.since)) / 1000);
    events.push({
      type: 'Normal',
      reason: 'StandbyRebuilt',
      message: `${shard}: ${standby.podName} was re-seeded with a physical copy of ${primary.podName} and follows it (${seconds} s after it ${rebuilding.reason})`,
    });
  }
  if (memory.rebuild && memory.rebuild.index === standby.index) {
    // Until the copy follows its primary: attached once its pod is the rebuilt one, not before.
    const r = memory.rebuild;
    if (p.readOnly && !requireStandbyAck) actions.push({ kind: 'openWrites' });
    memory.readsFrom = 'primary';
    return finish(
      'Rebuilding',
      { write: requireStandbyAck ? null : 'primary', read: 'primary', requireStandbyAck },
      `rebuilding ${standby.podName} with a physical copy of ${primary.podName} (it ${r.reason}; since ${r.since}); ${
        requireStandbyAck
          ? 'durability "required": writes go to the other shards until it follows'
          : 'durability "preferred": acknowledged writes on this shard are on the primary only until it follows'
      }`,
      rebuilt ? actions : actions.filter((a) => a.kind !== 'attachStandby'),
    );
  }
  const caughtUp =
    s !== undefined && following === true && transactionsBehind(p.gtidBinlogPos, s.gtidCurrentPos) === 0;
  const protectedBySemiSync = p.semiSyncPrimaryEnabled && p.semiSyncPrimaryActive && p.semiSyncStandbys >= 1;

  if (recovering && s && !caughtUp) {
    return finish(
      'Recovering',
      { write: null, read: 'standby', requireStandbyAck },
      `${primary.podName} is back; waiting for ${standby.podName} to follow it and catch up (${lag.transactions ?? '?'} transactions behind)`,
      actions,
    );
  }

  // Steady state needs no catch-up: semi-sync already guarantees the standby received every
  // acknowledged transaction even while its SQL thread applies them later.
  const mayWrite = requireStandbyAck ? protectedBySemiSync : true;
  if (p.readOnly && mayWrite) actions.push({ kind: 'openWrites' });
  if (recovering) {
    events.push({
      type: 'Normal',
      reason: 'Recovered',
      message: `${shard}: ${primary.podName} serves reads${mayWrite ? ' and writes' : ''} again; ${standby.podName} follows it`,
    });
  }
  memory.readsFrom = 'primary';
  // Writes open in the same tick as the action; if it fails the executor withholds the route.
  const route: ShardRouteChoice = { write: mayWrite ? 'primary' : null, read: 'primary', requireStandbyAck };
  if (!mayWrite) {
    return finish(
      s ? 'Provisioning' : 'StandbyUnavailable',
      route,
      s
        ? `waiting for ${standby.podName} to acknowledge as a semi-sync standby`
        : `standby ${standby.podName} is unavailable (${describeDown(standby)}); durability "required" stops writes to this shard until it returns`,
      actions,
    );
  }
  if (!protectedBySemiSync) {
    return finish(
      'Unprotected',
      route,
      `standby ${standby.podName} is not acknowledging (${s ? 'catching up' : describeDown(standby)}); durability "preferred": acknowledged writes on this shard are on the primary only until it returns`,
      actions,
    );
  }
  return finish(
    'Healthy',
    route,
    `${primary.podName} primary, ${standby.podName} semi-sync standby`,
    actions,
  );
}

/**
 * Whether a failed-over shard's standby should now become its primary: `off` when the policy says
 * never or the delay has not passed, `unsafe` when the standby may lack acknowledged messages.
 */
function promotionFor(memory: ShardMemory, policy: ShardPolicy, now: Date): 'off' | 'unsafe' | 'due' {
  if (policy.promoteForWritesAfterMs === null || !memory.failedOverAt) return 'off';
  if (now.getTime() - Date.parse(memory.failedOverAt) < policy.promoteForWritesAfterMs) return 'off';
  return memory.failedOverProtected ? 'due' : 'unsafe';
}

/** A fresh id per rebuild request (a pod annotation value). */
const rebuildId = (now: Date) =>
  now
    .toISOString()
    .replace(/[-:.TZ]/g, '')
    .slice(0, 17);

/**
 * Why a standby that does not follow its primary cannot simply be attached, or undefined when it
 * can: a former primary with transactions its successor never received, a standby with errant
 * transactions (written there directly), a standby whose primary purged the binlogs it needs, or an
 * empty standby (a lost volume) of a primary that holds data.
 */
export function whyCannotFollow(
  p: InstanceProbe,
  s: InstanceProbe,
  previous: ShardMemory,
): string | undefined {
  if (!binlogHolds(p.gtidBinlogState, s.gtidBinlogPos)) {
    return previous.standbyMustRejoin
      ? `holds transactions the new primary never received (${describeGtidList(s.gtidBinlogPos)}, none acknowledged)`
      : `holds errant transactions its primary does not have (${describeGtidList(s.gtidBinlogPos)})`;
  }
  const error = s.replica && !s.replica.ioRunning ? s.replica.lastError : '';
  if (/\b1236\b/.test(error))
    return `cannot replicate: its primary no longer has the binlogs it needs (${error})`;
  // Replication retries transient errors itself; a stopped SQL thread means the data disagrees.
  if (s.replica && !s.replica.sqlRunning && s.replica.lastError)
    return `cannot apply its primary's transactions (${s.replica.lastError})`;
  if (s.gtidCurrentPos.length === 0 && p.gtidBinlogPos.length > 0)
    return 'lost its data (empty data directory)';
  return undefined;
}

function replicationLag(
  primary: InstanceView,
  standby: InstanceView,
): { transactions: number | null; seconds: number | null } {
  if (!primary.probe || !standby.probe) return { transactions: null, seconds: null };
  return {
    transactions: transactionsBehind(primary.probe.gtidBinlogPos, standby.probe.gtidCurrentPos),
    seconds: standby.probe.replica?.secondsBehind ?? null,
  };
}

function semiSyncState(primary: InstanceView): 'active' | 'waiting' | 'off' {
  const p = primary.probe;
  if (!p || !p.semiSyncPrimaryEnabled) return 'off';
  return p.semiSyncPrimaryActive && p.semiSyncStandbys >= 1 ? 'active' : 'waiting';
}

function describeDown(i: InstanceView): string {
  if (i.podPhase === undefined) return `${i.podName}: pod missing`;
  if (i.deleting) return `${i.podName}: pod being deleted`;
  if (i.podPhase !== 'Running') return `${i.podName}: pod ${i.podPhase}`;
  if (!i.podReady) return `${i.podName}: pod not ready`;
  if (!i.probe) return `${i.podName}: MySQL probe failed${i.probeError ? `: ${i.probeError}` : ''}`;
  return `${i.podName}: up`;
}
