import { describe, expect, it } from 'vitest';
import {
  type InstanceView,
  type ShardMemory,
  type ShardPolicy,
  decideShard,
  initialMemory,
} from '../../../src/operator/shards/decide.js';
import { parseGtidList } from '../../../src/shard/gtid.js';
import type { InstanceProbe } from '../../../src/shard/probe.js';

const policy: ShardPolicy = {
  durability: 'required',
  failureThreshold: 3,
  promoteStandbyForReads: true,
  promoteForWritesAfterMs: null,
  cloneAgentPort: null,
};
const now = new Date('2026-11-23T12:00:00Z');

function primaryProbe(over: Partial<InstanceProbe> = {}): InstanceProbe {
  return {
    readOnly: false,
    serverId: 1,
    gtidBinlogPos: parseGtidList('0-1-100'),
    gtidCurrentPos: parseGtidList('0-1-100'),
    gtidBinlogState: parseGtidList('0-1-100'),
    semiSyncPrimaryEnabled: true,
    semiSyncPrimaryActive: true,
    semiSyncStandbys: 1,
    ...over,
  };
}

function standbyProbe(over: Partial<InstanceProbe> = {}): InstanceProbe {
  return {
    readOnly: true,
    serverId: 2,
    gtidBinlogPos: parseGtidList('0-1-100'),
    gtidCurrentPos: parseGtidList('0-1-100'),
    gtidBinlogState: parseGtidList('0-1-100'),
    semiSyncPrimaryEnabled: false,
    semiSyncPrimaryActive: false,
    semiSyncStandbys: 0,
    replica: {
      sourceHost: '127.1.0.1',
      sourcePort: 3306,
      ioRunning: true,
      sqlRunning: true,
      secondsBehind: 0,
      lastError: '',
    },
    ...over,
  };
}

function instance(index: number, over: Partial<InstanceView> = {}): InstanceView {
  return {
    index,
    podName: `c-shard-0-${index}`,
    podIP: `127.1.0.${index + 1}`,
    podPhase: 'Running',
    podReady: true,
    deleting: false,
    probe: index === 0 ? primaryProbe() : standbyProbe(),
    ...over,
  };
}

const healthy: ShardMemory = {
  ...initialMemory(),
  bootstrapped: true,
  readsFrom: 'primary',
  phase: 'Healthy',
};
const decide = (instances: InstanceView[], memory: ShardMemory = healthy, p: ShardPolicy = policy) =>
  decideShard('shard-0', instances, memory, p, now);

describe('provisioning', () => {
  it('waits for both instances, then bootstraps', () => {
    const waiting = decide(
      [instance(0), instance(1, { podReady: false, probe: undefined })],
      initialMemory(),
    );
    expect(waiting.actions).toEqual([]);
    expect(waiting.route).toMatchObject({ write: null, read: null });
    expect(waiting.message).toContain('c-shard-0-1');

    const start = decide(
      [instance(0, { probe: primaryProbe({ readOnly: true }) }), instance(1)],
      initialMemory(),
    );
    expect(start.actions).toEqual([{ kind: 'bootstrap' }]);
    expect(start.memory.bootstrapped).toBe(true);
    expect(start.events[0].reason).toBe('ShardBootstrapped');
  });

  it('routes writes to a protected primary', () => {
    const d = decide([instance(0), instance(1)]);
    expect(d.route).toEqual({ write: 'primary', read: 'primary', requireStandbyAck: true });
    expect(d.memory.phase).toBe('Healthy');
    expect(d.actions).toEqual([]);
  });

  it('re-attaches a standby that follows nobody and enables semi-sync after a primary restart', () => {
    const d = decide([
      instance(0, {
        probe: primaryProbe({ semiSyncPrimaryEnabled: false, semiSyncStandbys: 0, readOnly: true }),
      }),
      instance(1, { probe: standbyProbe({ replica: undefined }) }),
    ]);
    expect(d.actions).toEqual([{ kind: 'enableSemiSync' }, { kind: 'attachStandby' }]);
    expect(d.route.write).toBeNull();
  });
});

describe('detection and promotion for reads', () => {
  it('fails over at once when the primary pod is NotReady or gone', () => {
    for (const down of [
      { podReady: false },
      { podPhase: undefined },
      { podPhase: 'Failed' },
      { deleting: true },
    ]) {
      const d = decide([instance(0, { ...down, probe: undefined }), instance(1)]);
      expect(d.route).toEqual({ write: null, read: 'standby', requireStandbyAck: true });
      expect(d.memory.readsFrom).toBe('standby');
      expect(d.memory.failedOverAt).toBe(now.toISOString());
      expect(d.events.map((e) => e.reason)).toEqual(['FailedOver']);
    }
  });

  it('does not fail over on one slow probe, but does after the threshold', () => {
    let memory = healthy;
    for (let i = 1; i <= 2; i++) {
      const d = decide([instance(0, { probe: undefined, probeError: 'timeout' }), instance(1)], memory);
      expect(d.route.read).toBe('primary');
      expect(d.route.write).toBe('primary');
      memory = d.memory;
    }
    const third = decide([instance(0, { probe: undefined, probeError: 'timeout' }), instance(1)], memory);
    expect(third.route.read).toBe('standby');
    expect(third.memory.phase).toBe('FailedOver');
  });

  it('leaves the shard unreadable when promotion for reads is off', () => {
    const d = decide([instance(0, { podReady: false }), instance(1)], healthy, {
      ...policy,
      promoteStandbyForReads: false,
    });
    expect(d.route).toMatchObject({ write: null, read: null });
    expect(d.memory.phase).toBe('Unavailable');
  });
});

describe('recovery', () => {
  const failedOver: ShardMemory = { ...healthy, readsFrom: 'standby', phase: 'FailedOver' };
  const returned = (over: Partial<InstanceProbe> = {}) =>
    instance(0, {
      probe: primaryProbe({ readOnly: true, semiSyncPrimaryEnabled: false, semiSyncStandbys: 0, ...over }),
    });

  it('keeps reads on the standby until it follows the returned primary and has caught up', () => {
    const d = decide([returned(), instance(1, { probe: standbyProbe({ replica: undefined }) })], failedOver);
    expect(d.actions).toEqual([{ kind: 'enableSemiSync' }, { kind: 'attachStandby' }]);
    expect(d.route).toMatchObject({ write: null, read: 'standby' });
    expect(d.memory.phase).toBe('Recovering');

    const behind = decide(
      [
        returned({ semiSyncPrimaryEnabled: true }),
        instance(1, { probe: standbyProbe({ gtidCurrentPos: parseGtidList('0-1-90') }) }),
      ],
      d.memory,
    );
    expect(behind.route.read).toBe('standby');
    expect(behind.lagTransactions).toBe(10);
  });

  it('returns the shard to the primary once caught up and acknowledged', () => {
    const d = decide(
      [
        returned({ semiSyncPrimaryEnabled: true, semiSyncPrimaryActive: true, semiSyncStandbys: 1 }),
        instance(1),
      ],
      {
        ...failedOver,
        phase: 'Recovering',
      },
    );
    expect(d.actions).toEqual([{ kind: 'openWrites' }]);
    expect(d.route).toEqual({ write: 'primary', read: 'primary', requireStandbyAck: true });
    expect(d.events.map((e) => e.reason)).toEqual(['Recovered']);
    expect(d.memory.readsFrom).toBe('primary');
  });

  it('accepts a primary that is ahead (unacknowledged transactions) but never one that lost data', () => {
    const ahead = decide([returned({ gtidBinlogPos: parseGtidList('0-1-101') }), instance(1)], failedOver);
    expect(ahead.memory.phase).not.toBe('Diverged');

    const lost = decide([returned({ gtidBinlogPos: parseGtidList('0-1-40') }), instance(1)], failedOver);
    expect(lost.memory.phase).toBe('Diverged');
    expect(lost.route).toMatchObject({ write: null, read: 'standby' });
    expect(lost.message).toContain('rebuild');
    expect(lost.events.map((e) => e.reason)).toEqual(['PrimaryDiverged']);
  });
});

describe('standby failure', () => {
  const standbyDown = instance(1, { podReady: false, probe: undefined });
  const unacked = instance(0, { probe: primaryProbe({ semiSyncPrimaryActive: true, semiSyncStandbys: 0 }) });

  it('stops writes under durability "required"', () => {
    const d = decide([unacked, standbyDown]);
    expect(d.route).toEqual({ write: null, read: 'primary', requireStandbyAck: true });
    expect(d.memory.phase).toBe('StandbyUnavailable');
    expect(d.message).toContain('required');
  });

  it('keeps writing under "preferred" and says writes are unprotected', () => {
    const d = decide([unacked, standbyDown], healthy, { ...policy, durability: 'preferred' });
    expect(d.route).toEqual({ write: 'primary', read: 'primary', requireStandbyAck: false });
    expect(d.memory.phase).toBe('Unprotected');
    expect(d.message).toContain('not acknowledging');
  });
});

describe('promotion for writes', () => {
  const promoting: ShardPolicy = { ...policy, promoteForWritesAfterMs: 60_000 };
  const minutesAgo = (m: number) => new Date(now.getTime() - m * 60_000).toISOString();
  const failedOver = (over: Partial<ShardMemory> = {}): ShardMemory => ({
    ...healthy,
    readsFrom: 'standby',
    phase: 'FailedOver',
    failedOverAt: minutesAgo(2),
    failedOverProtected: true,
    ...over,
  });
  const primaryDown = instance(0, { podReady: false, probe: undefined });

  it('records at failover whether the standby held every acknowledged message', () => {
    expect(decide([primaryDown, instance(1)], healthy, promoting).memory.failedOverProtected).toBe(true);
    const preferred = { ...promoting, durability: 'preferred' as const };
    const unprotected = { ...healthy, phase: 'Unprotected' as const };
    expect(decide([primaryDown, instance(1)], unprotected, preferred).memory.failedOverProtected).toBe(false);
    expect(decide([primaryDown, instance(1)], healthy, preferred).memory.failedOverProtected).toBe(true);
  });

  it('is off by default and waits for the delay', () => {
    expect(decide([primaryDown, instance(1)], failedOver(), policy).memory.phase).toBe('FailedOver');
    const early = decide(
      [primaryDown, instance(1)],
      failedOver({ failedOverAt: minutesAgo(0.5) }),
      promoting,
    );
    expect(early.memory.phase).toBe('FailedOver');
    expect(early.actions).toEqual([]);
  });

  it('promotes the standby once the primary has been down past the delay', () => {
    const d = decide([primaryDown, instance(1)], failedOver(), promoting);
    expect(d.actions).toEqual([{ kind: 'promote' }]);
    expect(d.memory).toMatchObject({ primaryIndex: 1, readsFrom: 'primary', standbyMustRejoin: true });
    expect(d.memory.phase).toBe('Promoting');
    // "primary" is now instance 1, the standby that already served reads; no writes until it is one.
    expect(d.route).toEqual({ write: null, read: 'primary', requireStandbyAck: true });
    expect(d.events.map((e) => e.reason)).toEqual(['PromotedForWrites']);
  });

  it('never promotes a standby that may lack acknowledged messages', () => {
    const d = decide([primaryDown, instance(1)], failedOver({ failedOverProtected: false }), {
      ...promoting,
      durability: 'preferred',
    });
    expect(d.actions).toEqual([]);
    expect(d.memory.primaryIndex).toBe(0);
    expect(d.message).toContain('not promoted for writes');
  });

  describe('after promotion', () => {
    const promoted: ShardMemory = {
      ...healthy,
      primaryIndex: 1,
      phase: 'Promoting',
      failedOverAt: minutesAgo(2),
      failedOverProtected: true,
      standbyMustRejoin: true,
    };
    // Instance 1 after `promote`: replicates from nobody, semi-sync enabled, still read-only.
    const newPrimary = (over: Partial<InstanceProbe> = {}) =>
      instance(1, {
        probe: standbyProbe({
          replica: undefined,
          semiSyncPrimaryEnabled: true,
          semiSyncPrimaryActive: true,
          gtidBinlogPos: parseGtidList('0-2-110'),
          gtidCurrentPos: parseGtidList('0-2-110'),
          gtidBinlogState: parseGtidList('0-1-100,0-2-110'),
          ...over,
        }),
      });
    const formerPrimary = (binlog: string) =>
      instance(0, {
        probe: primaryProbe({ gtidBinlogPos: parseGtidList(binlog), semiSyncStandbys: 0 }),
      });

    it('keeps writes closed under "required" while the former primary is away', () => {
      const d = decide([primaryDown, newPrimary()], promoted, promoting);
      expect(d.route).toEqual({ write: null, read: 'primary', requireStandbyAck: true });
      expect(d.memory.phase).toBe('StandbyUnavailable');
    });

    it('opens writes at once under "preferred", saying they are unprotected', () => {
      const d = decide([primaryDown, newPrimary()], promoted, { ...promoting, durability: 'preferred' });
      expect(d.actions).toEqual([{ kind: 'openWrites' }]);
      expect(d.route).toEqual({ write: 'primary', read: 'primary', requireStandbyAck: false });
      expect(d.memory.phase).toBe('Unprotected');
    });

    it('fences the returning former primary and has it follow when it holds nothing extra', () => {
      const d = decide([formerPrimary('0-1-100'), newPrimary()], promoted, promoting);
      expect(d.actions).toEqual([{ kind: 'rejoinStandby', rebuild: false }]);
      expect(d.events.map((e) => e.reason)).toEqual(['StandbyRejoined']);
      expect(d.route.write).toBeNull();
    });

    it('rebuilds a former primary that holds a transaction its successor never received', () => {
      const d = decide([formerPrimary('0-1-101'), newPrimary()], promoted, promoting);
      expect(d.actions).toEqual([{ kind: 'rejoinStandby', rebuild: true }]);
      expect(d.events[0]).toMatchObject({ type: 'Warning', reason: 'StandbyRebuilt' });
      expect(d.events[0]!.message).toContain('0-1-101');
    });

    it('is an ordinary healthy shard once the former primary follows', () => {
      const following = instance(0, {
        probe: standbyProbe({
          serverId: 1,
          gtidBinlogPos: parseGtidList('0-2-110'),
          gtidCurrentPos: parseGtidList('0-2-110'),
          replica: { ...standbyProbe().replica!, sourceHost: '127.1.0.2' },
        }),
      });
      const d = decide(
        [following, newPrimary({ readOnly: false, semiSyncStandbys: 1 })],
        { ...promoted, phase: 'StandbyUnavailable' },
        promoting,
      );
      expect(d.actions).toEqual([]);
      expect(d.memory.standbyMustRejoin).toBe(false);
      expect(d.memory.phase).toBe('Healthy');
      expect(d.route).toEqual({ write: 'primary', read: 'primary', requireStandbyAck: true });
    });
  });
});

describe('rebuild by physical clone', () => {
  const cloning: ShardPolicy = { ...policy, cloneAgentPort: 9080 };
  const notFollowing = (over: Partial<InstanceProbe>) =>
    instance(1, {
      probe: standbyProbe({
        ...over,
        replica: { ...standbyProbe().replica!, ioRunning: false, sqlRunning: false, ...over.replica },
      }),
    });
  const primaryWithoutStandby = instance(0, { probe: primaryProbe({ semiSyncStandbys: 0 }) });
  const purged = notFollowing({
    gtidBinlogPos: parseGtidList('0-1-40'),
    gtidCurrentPos: parseGtidList('0-1-40'),
    replica: {
      ...standbyProbe().replica!,
      ioRunning: false,
      lastError:
        "Got fatal error 1236 from master when reading data from binary log: 'Could not find GTID state requested by slave in any binlog files'",
    },
  });

  it('rebuilds a standby whose primary purged the binlogs it needs', () => {
    const d = decide([primaryWithoutStandby, purged], healthy, cloning);
    expect(d.memory.rebuild).toMatchObject({ index: 1, source: '127.1.0.1:9080' });
    expect(d.memory.rebuild!.reason).toContain('binlogs');
    expect(d.actions).toEqual([{ kind: 'fenceStandby' }]);
    expect(d.events).toEqual([expect.objectContaining({ type: 'Warning', reason: 'RebuildingStandby' })]);
    expect(d.memory.phase).toBe('Rebuilding');
    // Under "required", the shard's writes go elsewhere until the copy follows.
    expect(d.route).toEqual({ write: null, read: 'primary', requireStandbyAck: true });
  });

  it('rebuilds a standby with errant transactions, and one that lost its data', () => {
    const errant = notFollowing({
      gtidBinlogPos: parseGtidList('0-2-101'),
      gtidCurrentPos: parseGtidList('0-2-101'),
    });
    expect(decide([primaryWithoutStandby, errant], healthy, cloning).memory.rebuild?.reason).toContain(
      'errant transactions',
    );
    const empty = notFollowing({ gtidBinlogPos: [], gtidCurrentPos: [], gtidBinlogState: [] });
    expect(decide([primaryWithoutStandby, empty], healthy, cloning).memory.rebuild?.reason).toContain(
      'lost its data',
    );
  });

  it('rebuilds a standby whose SQL thread stopped on an error, also a rebuilt one', () => {
    const broken = notFollowing({
      gtidBinlogPos: parseGtidList('0-1-90'),
      gtidCurrentPos: parseGtidList('0-1-90'),
      replica: {
        ...standbyProbe().replica!,
        ioRunning: true,
        sqlRunning: false,
        lastError: "Error 'Table 'm_9' already exists' on query",
      },
    });
    const first = decide([primaryWithoutStandby, broken], healthy, cloning).memory;
    expect(first.rebuild?.reason).toContain('cannot apply');
    const again = decideShard(
      'shard-0',
      [primaryWithoutStandby, { ...broken, seedId: first.rebuild!.id }],
      first,
      cloning,
      new Date(now.getTime() + 60_000),
    );
    expect(again.memory.rebuild?.id).not.toBe(first.rebuild!.id);
  });

  it('attaches a standby that can follow instead of rebuilding it', () => {
    const behind = notFollowing({
      gtidBinlogPos: parseGtidList('0-1-40'),
      gtidCurrentPos: parseGtidList('0-1-40'),
    });
    const d = decide([primaryWithoutStandby, behind], healthy, cloning);
    expect(d.memory.rebuild).toBeUndefined();
    expect(d.actions).toEqual([{ kind: 'attachStandby' }]);
  });

  it('without an agent (no clone source) it never asks for a rebuild', () => {
    const d = decide([primaryWithoutStandby, purged], healthy, policy);
    expect(d.memory.rebuild).toBeUndefined();
  });

  it('waits for the rebuilt pod, attaches it, and reports the rebuild once it follows', () => {
    const requested = decide([primaryWithoutStandby, purged], healthy, cloning).memory;
    const id = requested.rebuild!.id;
    // The old pod is still there: nothing is attached to it.
    const waiting = decide([primaryWithoutStandby, purged], requested, cloning);
    expect(waiting.actions).toEqual([]);
    expect(waiting.memory.rebuild?.id).toBe(id);
    // The new pod (seeded for this request) runs: it is attached.
    const seeded = notFollowing({ gtidBinlogPos: [], gtidCurrentPos: parseGtidList('0-1-90') });
    const attach = decide([primaryWithoutStandby, { ...seeded, seedId: id }], waiting.memory, cloning);
    expect(attach.actions).toEqual([{ kind: 'attachStandby' }]);
    expect(attach.memory.phase).toBe('Rebuilding');
    // It follows: the rebuild is over, the shard is healthy again.
    const done = decide([instance(0), instance(1, { seedId: id })], attach.memory, cloning);
    expect(done.memory.rebuild).toBeUndefined();
    expect(done.events.map((e) => e.reason)).toEqual(['StandbyRebuilt']);
    expect(done.memory.phase).toBe('Healthy');
  });

  it('asks again when the primary moved before the copy started', () => {
    const requested = decide([primaryWithoutStandby, purged], healthy, cloning).memory;
    const moved = instance(0, { podIP: '127.1.0.9', probe: primaryProbe({ semiSyncStandbys: 0 }) });
    const later = new Date(now.getTime() + 60_000);
    const d = decideShard(
      'shard-0',
      [moved, instance(1, { podPhase: 'Pending', podReady: false, probe: undefined })],
      requested,
      cloning,
      later,
    );
    expect(d.memory.rebuild?.source).toBe('127.1.0.9:9080');
    expect(d.memory.rebuild?.id).not.toBe(requested.rebuild!.id);
  });

  it('rebuilds a former primary with unacknowledged transactions by clone, not by replay', () => {
    const promoted: ShardMemory = {
      ...healthy,
      primaryIndex: 1,
      standbyMustRejoin: true,
      phase: 'StandbyUnavailable',
    };
    const newPrimary = instance(1, {
      probe: primaryProbe({
        serverId: 2,
        gtidBinlogState: parseGtidList('0-1-100,0-2-110'),
        gtidBinlogPos: parseGtidList('0-2-110'),
        gtidCurrentPos: parseGtidList('0-2-110'),
        semiSyncStandbys: 0,
      }),
    });
    const former = instance(0, {
      probe: primaryProbe({ gtidBinlogPos: parseGtidList('0-1-101'), semiSyncStandbys: 0 }),
    });
    const d = decide([former, newPrimary], promoted, cloning);
    expect(d.actions).toEqual([{ kind: 'fenceStandby' }]);
    expect(d.memory.rebuild).toMatchObject({ index: 0, source: '127.1.0.2:9080' });
    expect(d.memory.rebuild!.reason).toContain('never received');
  });
});

describe('planned switchover', () => {
  const ask = (instances: InstanceView[], memory: ShardMemory = healthy, blockedBy?: string) =>
    decideShard('shard-0', instances, memory, policy, now, { blockedBy });

  it('first takes the shard out of the write rotation, then swaps the roles', () => {
    const pause = ask([instance(0), instance(1)]);
    expect(pause.route).toEqual({ write: null, read: 'primary', requireStandbyAck: true });
    expect(pause.actions).toEqual([]);
    expect(pause.memory).toMatchObject({
      switchoverWritesPaused: true,
      phase: 'SwitchingOver',
      primaryIndex: 0,
    });
    expect(pause.switchover).toBeUndefined();

    const swap = ask([instance(0), instance(1)], pause.memory);
    expect(swap.actions).toEqual([{ kind: 'switchover' }]);
    expect(swap.memory.primaryIndex).toBe(1);
    expect(swap.memory.switchoverWritesPaused).toBeUndefined();
    expect(swap.memory.phase).toBe('Healthy');
    expect(swap.route).toEqual({ write: 'primary', read: 'primary', requireStandbyAck: true });
    expect(swap.switchover).toMatchObject({ result: 'Succeeded', from: 'c-shard-0-0', to: 'c-shard-0-1' });
  });

  it('carries out a paused switchover even once the request is gone', () => {
    const paused = { ...healthy, switchoverWritesPaused: true, phase: 'SwitchingOver' as const };
    const swap = decide([instance(0), instance(1)], paused);
    expect(swap.actions).toEqual([{ kind: 'switchover' }]);
  });

  it('refuses when the standby is not in sync', () => {
    const behind = decide([instance(0), instance(1)]);
    expect(behind.lagTransactions).toBe(0);
    const d = ask([
      instance(0, { probe: primaryProbe({ gtidBinlogPos: parseGtidList('0-1-1000') }) }),
      instance(1),
    ]);
    expect(d.switchover?.result).toBe('Failed');
    expect(d.switchover?.message).toContain('not in sync');
    expect(d.route.write).toBe('primary');
    expect(d.memory.switchoverWritesPaused).toBeUndefined();
  });

  it('refuses when the standby does not follow or the shard is not Healthy', () => {
    const notFollowing = ask([instance(0), instance(1, { probe: standbyProbe({ replica: undefined }) })]);
    expect(notFollowing.switchover?.result).toBe('Failed');
    expect(notFollowing.actions).toEqual([{ kind: 'attachStandby' }]);
    const failedOver = ask([instance(0, { podReady: false }), instance(1)]);
    expect(failedOver.switchover).toMatchObject({ result: 'Failed' });
    expect(failedOver.switchover!.message).toContain('FailedOver');
  });

  it('refuses when the other shards cannot take the writes meanwhile', () => {
    const d = ask([instance(0), instance(1)], healthy, 'shard-1 is FailedOver');
    expect(d.switchover).toMatchObject({ result: 'Failed', message: 'shard-1 is FailedOver' });
    expect(d.route.write).toBe('primary');
  });

  it('gives up and reopens writes when the standby fails while writes are paused', () => {
    const paused = { ...healthy, switchoverWritesPaused: true, phase: 'SwitchingOver' as const };
    const d = ask([instance(0), instance(1, { podReady: false, probe: undefined })], paused);
    expect(d.switchover?.result).toBe('Failed');
    expect(d.actions).not.toContainEqual({ kind: 'switchover' });
    expect(d.memory.primaryIndex).toBe(0);
    expect(d.memory.switchoverWritesPaused).toBeUndefined();
  });
});

describe('roles a previous operator changed without recording them', () => {
  // Instance 1 is the primary (writable, replicates from nobody); instance 0 follows it.
  const swapped = () => [
    instance(0, {
      probe: standbyProbe({
        serverId: 1,
        replica: { ...standbyProbe().replica!, sourceHost: '127.1.0.2' },
      }),
    }),
    instance(1, { probe: primaryProbe({ serverId: 2 }) }),
  ];

  it('keeps the instance the other replicates from as the primary, and says so', () => {
    const d = decide(swapped());
    expect(d.memory.primaryIndex).toBe(1);
    expect(d.actions).toEqual([]);
    expect(d.route).toEqual({ write: 'primary', read: 'primary', requireStandbyAck: true });
    expect(d.events.map((e) => e.reason)).toEqual(['RolesAdopted']);
    // Recorded once: the next decision starts from the adopted roles.
    expect(decide(swapped(), d.memory).events).toEqual([]);
  });

  it('opens writes on an adopted primary still read-only (cut before the last step)', () => {
    const [follower, promoted] = swapped();
    promoted.probe = { ...promoted.probe!, readOnly: true };
    const d = decide([follower, promoted]);
    expect(d.memory.primaryIndex).toBe(1);
    expect(d.actions).toEqual([{ kind: 'openWrites' }]);
  });

  it('leaves the roles alone while the remembered standby replicates itself', () => {
    const [follower, promoted] = swapped();
    promoted.probe = standbyProbe({ serverId: 2 });
    expect(decide([follower, promoted]).memory.primaryIndex).toBe(0);
  });

  it('does not adopt before the shard was bootstrapped', () => {
    const d = decide(swapped(), initialMemory());
    expect(d.memory.primaryIndex).toBe(0);
  });
});
