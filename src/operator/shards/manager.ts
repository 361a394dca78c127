import type { RoutingDocument, ShardRoute } from '../../api/routing.js';
import { withDeadline } from '../../common/deadline.js';
import { errorMessage } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import {
  REQUIRED_SEMI_SYNC,
  type SemiSyncPolicy,
  type ShardSecrets,
  attachStandby,
  bootstrapShard,
  configurePrimarySemiSync,
  setReadOnly,
  upgradeShardSchema,
} from '../../shard/bootstrap.js';
import { accessDenied, ensureLocalAccounts } from '../../shard/accounts.js';
import { type Endpoint, endpointKey } from '../../shard/connection.js';
import { probeInstance } from '../../shard/probe.js';
import { promoteStandby, rejoinAsStandby, tryFence } from '../../shard/promote.js';
import { SwitchoverError, switchover } from '../../shard/switchover.js';
import {
  type InstanceView,
  type ShardAction,
  type ShardDecision,
  type ShardMemory,
  type ShardPolicy,
  type SwitchoverRequest,
  decideShard,
  initialMemory,
} from './decide.js';
import type { ShardRetentionView } from '../retention/loop.js';

export const MYSQL_PORT = 3306;

/** What Kubernetes says about one shard's two instance pods; the manager adds the MySQL probes. */
export interface ObservedShard {
  name: string;
  instances: Omit<InstanceView, 'probe' | 'probeError'>[];
}

export interface ManagerPolicy extends ShardPolicy {
  /** Semi-sync timeout under `preferred` durability. */
  semiSyncTimeoutMs: number;
}

export interface ShardOutcome {
  shard: string;
  decision: ShardDecision;
  instances: InstanceView[];
  /** The action that failed this tick, if any; writes are withheld until it succeeds. */
  actionError?: string;
  route: ShardRoute;
  /** Added by the retention loop (src/operator/retention/loop.ts). */
  retention?: ShardRetentionView;
}

/**
 * The MySQL side of the control plane for one cluster: probe every instance, decide each shard with
 * the pure state machine, carry out its actions, and say how brokers should route. It never talks to
 * Kubernetes; the caller feeds it pod observations and publishes what it returns.
 */
export class ShardManager {
  private readonly memory = new Map<string, ShardMemory>();
  /** Shards whose schema upgrade this process started or finished (once per operator start suffices). */
  private readonly schemaChecked = new Set<string>();
  /** Instances (`host:port`) known to have the admin user (`ensureLocalAccounts`), once per address. */
  private readonly accountsChecked = new Set<string>();

  constructor(
    private readonly secrets: ShardSecrets,
    private readonly log: Logger,
    private readonly probeTimeoutMs = 2000,
  ) {}

  /** Seeds what a previous operator decided (from the CR status), so a restart resumes. */
  remember(shard: string, memory: ShardMemory): void {
    if (!this.memory.has(shard)) this.memory.set(shard, memory);
  }

  memoryOf(shard: string): ShardMemory {
    return this.memory.get(shard) ?? initialMemory();
  }

  /** `switchovers`: the shards a planned switchover was asked for, and what the others allow. */
  async tick(
    observed: ObservedShard[],
    policy: ManagerPolicy,
    now = new Date(),
    switchovers: Map<string, SwitchoverRequest> = new Map(),
  ): Promise<ShardOutcome[]> {
    return Promise.all(
      observed.map((shard) => this.tickShard(shard, policy, now, switchovers.get(shard.name))),
    );
  }

  /** Whether a shard is out of the write rotation for a switchover that the next tick carries out. */
  switchoverPending(): boolean {
    return [...this.memory.values()].some((m) => m.switchoverWritesPaused);
  }

  private async tickShard(
    observed: ObservedShard,
    policy: ManagerPolicy,
    now: Date,
    request: SwitchoverRequest | undefined,
  ): Promise<ShardOutcome> {
    const instances = await Promise.all(observed.instances.map((i) => this.probe(i)));
    const previous = this.memoryOf(observed.name);
    let decision = decideShard(observed.name, instances, previous, policy, now, request);
    const primary = instances.find((i) => i.index === decision.memory.primaryIndex)!;
    const standby = instances.find((i) => i.index !== decision.memory.primaryIndex)!;
    let actionError: string | undefined;
    let kept = decision.memory;
    for (const action of decision.actions) {
      try {
        await this.act(action, endpointOf(primary), endpointOf(standby), policy);
      } catch (err) {
        actionError = `${action.kind} failed: ${errorMessage(err)}`;
        this.log.warn('shard action failed', {
          shard: observed.name,
          action: action.kind,
          error: errorMessage(err),
        });
        // A failed action leaves the shard as it was, except that it takes no writes meanwhile;
        // a switchover that got as far as promoting keeps the new roles and rejoins the old primary.
        const promoted = err instanceof SwitchoverError && err.promoted;
        kept = promoted
          ? { ...decision.memory, standbyMustRejoin: true }
          : {
              ...previous,
              switchoverWritesPaused: undefined,
              primaryProbeFailures: decision.memory.primaryProbeFailures,
            };
        if (decision.switchover) {
          decision = {
            ...decision,
            switchover: promoted
              ? { ...decision.switchover, message: `${decision.switchover.message} (${errorMessage(err)})` }
              : { ...decision.switchover, result: 'Failed', message: errorMessage(err) },
          };
        }
        break;
      }
    }
    this.memory.set(observed.name, kept);
    const choice = decision.route;
    // A switchover that failed before promoting leaves the old primary in place, and routes say so.
    const roles = decision.switchover ? kept : decision.memory;
    const routedPrimary = instances.find((i) => i.index === roles.primaryIndex)!;
    const routedStandby = instances.find((i) => i.index !== roles.primaryIndex)!;
    const route: ShardRoute = {
      name: observed.name,
      write: !actionError && choice.write === 'primary' ? endpointOf(routedPrimary) : null,
      read:
        choice.read === 'primary'
          ? endpointOf(routedPrimary)
          : choice.read === 'standby'
            ? endpointOf(routedStandby)
            : null,
      requireStandbyAck: choice.requireStandbyAck,
    };
    if (route.write && !this.schemaChecked.has(observed.name)) this.upgradeSchema(observed.name, route.write);
    // Status (and an operator that restarts from it) must see what is true: after a failed
    // promotion, say, the old primary is still the primary.
    return { shard: observed.name, decision: { ...decision, memory: kept }, instances, actionError, route };
  }

  /**
   * Shards bootstrapped by an older operator lack newer tables and grants; bootstrap never runs on
   * them again. It runs beside the tick, so it never holds up routing.
   */
  private upgradeSchema(shard: string, primary: Endpoint): void {
    // Marked at once so ticks do not start it twice; a failure unmarks it for the next tick.
    this.schemaChecked.add(shard);
    withDeadline(upgradeShardSchema(primary, this.secrets), 10_000, 'schema upgrade', () => undefined).catch(
      (err: unknown) => {
        this.schemaChecked.delete(shard);
        this.log.warn('schema upgrade failed; retried on the next tick', { shard, error: errorMessage(err) });
      },
    );
  }

  private async probe(view: ObservedShard['instances'][number]): Promise<InstanceView> {
    if (!view.podIP || view.podPhase !== 'Running') return { ...view, probeError: 'no running pod' };
    const endpoint = { host: view.podIP, port: MYSQL_PORT };
    try {
      const probe = await withDeadline(
        this.ensureAccounts(endpoint).then(() => probeInstance(endpoint, this.secrets.monitor)),
        this.probeTimeoutMs,
        'MySQL probe',
        () => undefined,
      );
      return { ...view, probe };
    } catch (err) {
      return { ...view, probeError: errorMessage(err) };
    }
  }

  /**
   * An instance an older operator initialised has `root@'%'` and no admin user until its Pod is
   * replaced: create the admin and monitor users there first, so every admin connection works.
   * Checked once per instance address; a failure is logged and retried on the next tick, and the
   * probe runs anyway (an instance that is down fails it).
   */
  private async ensureAccounts(endpoint: Endpoint): Promise<void> {
    const key = endpointKey(endpoint);
    if (this.accountsChecked.has(key)) return;
    try {
      if (await ensureLocalAccounts(endpoint, this.secrets))
        this.log.info('created the admin and monitor users on an instance an older operator initialised', {
          instance: endpoint.host,
        });
      this.accountsChecked.add(key);
    } catch (err) {
      // An instance that is down says so in its probe; only a refusal is worth a warning.
      if (accessDenied(err))
        this.log.warn('the instance refuses both the admin user and root', {
          instance: endpoint.host,
          error: errorMessage(err),
        });
    }
  }

  private async act(
    action: ShardAction,
    primary: Endpoint | null,
    standby: Endpoint | null,
    policy: ManagerPolicy,
  ) {
    if (!primary) throw new Error('primary has no address');
    const semiSync: SemiSyncPolicy =
      policy.durability === 'required'
        ? REQUIRED_SEMI_SYNC
        : { timeoutMs: policy.semiSyncTimeoutMs, waitWithoutStandby: false };
    switch (action.kind) {
      case 'bootstrap':
        if (!standby) throw new Error('standby has no address');
        return bootstrapShard(primary, standby, this.secrets, semiSync, 10_000);
      case 'enableSemiSync':
        return configurePrimarySemiSync(primary, this.secrets.admin, semiSync);
      case 'attachStandby':
        if (!standby) throw new Error('standby has no address');
        return attachStandby(standby, primary, this.secrets);
      case 'openWrites':
        return setReadOnly(primary, this.secrets.admin, false);
      case 'promote':
        // The old primary (now at the standby's place) is usually unreachable; when it answers, it
        // is fenced now rather than when it returns.
        if (standby && !(await tryFence(standby, this.secrets, 1000)))
          this.log.info('former primary not reachable to fence; it is fenced when it returns', {
            instance: standby.host,
          });
        return promoteStandby(primary, this.secrets.admin, semiSync);
      case 'fenceStandby':
        if (standby && !(await tryFence(standby, this.secrets, 1000)))
          this.log.info('standby not reachable to fence before its rebuild', { instance: standby.host });
        return;
      case 'rejoinStandby':
        if (!standby) throw new Error('standby has no address');
        return rejoinAsStandby(standby, primary, this.secrets, action.rebuild);
      case 'switchover':
        // The roles are already swapped in the decision: `standby` is the primary being replaced.
        if (!standby) throw new Error('the primary has no address');
        this.log.info('switchover done', {
          from: standby.host,
          to: primary.host,
          stepsMs: await switchover(standby, primary, this.secrets, semiSync),
        });
        return;
    }
  }
}

function endpointOf(view: InstanceView): Endpoint | null {
  return view.podIP ? { host: view.podIP, port: MYSQL_PORT } : null;
}

/** The routing document brokers get; `version` must grow (see `nextRoutingVersion`). */
export function routingDocument(outcomes: ShardOutcome[], version: number): RoutingDocument {
  return { version, shards: outcomes.map((o) => o.route) };
}

/** Versions grow across operator restarts: at least the wall clock in ms, always above the last. */
export function nextRoutingVersion(previous: number, now = Date.now()): number {
  return Math.max(previous + 1, now);
}
