import { unavailable } from '../common/errors.js';
import { endpointKey } from '../shard/connection.js';
import type { ShardView } from './shard-router.js';

/**
 * Deadlines for work against one shard. A hung instance (SIGSTOP, a frozen VM) accepts TCP but
 * never answers, and its queries wait with no error; a fetch waiting for every shard would wait
 * for that one. Work that overruns its deadline is abandoned, and further work under the same key
 * fails at once until the overdue work has settled (the instance answers again), so the hung
 * instance costs one deadline rather than one per request, and its queries do not pile up.
 *
 * A busy instance is not a hung one: while other work under the key keeps finishing (hundreds of
 * long-polls queued on a few pooled connections, say), overrunning work keeps waiting its turn. A
 * hung instance finishes nothing, so its work is abandoned within two deadlines.
 */
export class ShardDeadlines {
  /** Key -> overdue works still pending. */
  private readonly overdue = new Map<string, number>();
  /** Key -> when work under it last settled (the instance answered something). */
  private readonly lastAnswer = new Map<string, number>();

  constructor(private readonly timeoutMs: number) {}

  /** Whether work under `key` is failed at once (some earlier work is still overdue). */
  stalled(key: string): boolean {
    return this.overdue.has(key);
  }

  /** Runs `work` unless `key` is stalled; rejects with a 503 once the instance stops answering. */
  async run<T>(key: string, what: string, work: () => Promise<T>): Promise<T> {
    if (this.overdue.has(key)) throw unresponsive(what, 'an earlier request has not been answered');
    const answered = () => this.lastAnswer.set(key, Date.now());
    const running = work();
    running.then(answered, answered);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      const check = () => {
        const quietMs = Date.now() - (this.lastAnswer.get(key) ?? 0);
        if (quietMs < this.timeoutMs) {
          timer = setTimeout(check, this.timeoutMs - quietMs);
          return;
        }
        this.overdue.set(key, (this.overdue.get(key) ?? 0) + 1);
        const settled = () => {
          const left = (this.overdue.get(key) ?? 1) - 1;
          if (left > 0) this.overdue.set(key, left);
          else this.overdue.delete(key);
        };
        running.then(settled, settled);
        reject(unresponsive(what, `no answer within ${this.timeoutMs} ms`));
      };
      timer = setTimeout(check, this.timeoutMs);
    });
    try {
      return await Promise.race([running, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

const unresponsive = (what: string, why: string) =>
  unavailable('shard_unresponsive', `${what}: ${why}; try again later`);

/** The instances a shard read touches: its read instance, and its primary for the lease. */
export const readKey = (s: ShardView) =>
  `${s.name}\u0000${endpointKey(s.route.read!)}\u0000${s.writable ? endpointKey(s.route.write!) : ''}`;

/** A write on a shard's primary (offsets, pending records): stalls there never fail its reads. */
export const writeKey = (s: ShardView) => `${s.name}\u0000\u0000${endpointKey(s.route.write!)}`;
