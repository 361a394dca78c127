/**
 * A list+watch cache of one resource collection (optionally label/field-selected), with
 * client-go reflector semantics, written over ./rest.ts instead of client-node's
 * `makeInformer`/`ListWatch`.
 *
 * Why not wrap client-node 1.4's ListWatch: it stops for good on any non-410 error, has no
 * connect/inactivity timeout (a hung watch never returns), sends no bookmarks or server
 * timeout and has no resync (research §1.5); fixing that needs a custom Watch adapter *and*
 * restart logic around ListWatch's own state. One loop that owns all of it is shorter and
 * has a single place where restarts can happen, so duplicate watches are impossible.
 *
 * Loop: LIST (paginated, consistent read) → diff into the cache → WATCH from the list's
 * resourceVersion with `allowWatchBookmarks` and a randomised 5-10 min `timeoutSeconds`
 * (client-go's spread, so replicas don't reconnect in step) → when the server ends the
 * watch, WATCH again from the last seen resourceVersion. "410 Gone" (an HTTP status or an
 * ERROR event) means that resourceVersion left the server's window: LIST again and emit the
 * differences. Every other failure (connection refused/reset, 5xx, 403, idle timeout) is
 * retried after a jittered exponential backoff, forever, until stop().
 *
 * Cached objects are the API server's plain JSON, not client-node model instances: with
 * `Informer<V1Pod>`, `metadata.creationTimestamp` is typed Date but is really an ISO string.
 * Treat cached objects as read-only (handlers and get() share them).
 */
import { ApiException } from '@kubernetes/client-node';
import { WakeableSleep } from '../common/deadline.js';
import { createLogger, type Logger } from '../common/logger.js';
import { Backoff, type BackoffOptions } from './backoff.js';
import { errorSummary, isGone } from './client.js';
import { timeoutError, type KubeRest } from './rest.js';
import { type KubeObject, objectKey } from './resources.js';

export type InformerEventType = 'add' | 'update' | 'delete' | 'resync';

export interface InformerEvent<T> {
  type: InformerEventType;
  obj: T;
  /** The previously cached object, for 'update'. */
  old?: T;
}

export type InformerHandler<T> = (ev: InformerEvent<T>) => void;

export interface InformerOptions {
  rest: KubeRest;
  /** Collection path, e.g. resourcePath({ apiVersion: 'v1', kind: 'ConfigMap', namespace }). */
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Names the informer in logs. Default: the path. */
  name?: string;
  /** Every this many ms, emit 'resync' for every cached object (0 = never). Default 10 min. */
  resyncPeriodMs?: number;
  /** Lower bound of the random server-side watch timeout (upper = 2×). Default 300 s. */
  minWatchTimeoutSeconds?: number;
  /**
   * Restart a watch that delivered no byte for this long (a half-open TCP connection looks
   * exactly like a quiet resource). Default 180 s. Kubernetes ≥ 1.23 sends a BOOKMARK about
   * every minute; 1.20 only shortly before timeoutSeconds, so on 1.20 a quiet watch is
   * simply re-opened from its last resourceVersion, which costs one request.
   */
  inactivityTimeoutMs?: number;
  /** Deadline of each LIST page request. Default 60 s. */
  listTimeoutMs?: number;
  /** LIST page size (limit/continue). Default 500. */
  pageSize?: number;
  backoff?: BackoffOptions;
  logger?: Logger;
  /** Randomness for the watch timeout and backoff jitter; tests pass a constant. */
  random?: () => number;
}

interface ListResponse<T> {
  apiVersion?: string;
  kind?: string;
  metadata?: { resourceVersion?: string; continue?: string };
  items?: T[];
}

interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T & { code?: number; reason?: string; message?: string };
}

/** Thrown into the loop by restartWatch(): re-watch at once, no backoff, not an error. */
class RestartRequested extends Error {
  override name = 'RestartRequested';
}

/** A watch that lives shorter than this and ends without events counts as a failure. */
const MIN_HEALTHY_WATCH_MS = 1_000;

export class Informer<T extends KubeObject> {
  private readonly cache = new Map<string, T>();
  private readonly handlers = new Set<InformerHandler<T>>();
  private readonly log: Logger;
  private readonly name: string;
  private readonly random: () => number;

  /** Bumped by start()/stop(): anything started under an older generation is stale. */
  private generation = 0;
  private loop: Promise<void> | undefined;
  private current: AbortController | undefined;
  private readonly pause = new WakeableSleep();
  private resyncTimer: NodeJS.Timeout | undefined;
  private resourceVersion: string | undefined;
  private syncedFlag = false;
  private resolveSynced!: () => void;
  private watching = false;
  private lastEventAt = 0;

  /** Resolves once the first LIST has filled the cache (readiness). Never rejects. */
  readonly synced: Promise<void>;

  constructor(private readonly opts: InformerOptions) {
    this.name = opts.name ?? opts.path;
    this.log = opts.logger ?? createLogger('informer');
    this.random = opts.random ?? Math.random;
    this.synced = new Promise((resolve) => (this.resolveSynced = resolve));
  }

  // ---- cache reads ---------------------------------------------------------------------------

  /** The cached object with this `namespace/name` key (or `name` for cluster-scoped). */
  get(key: string): T | undefined;
  get(name: string, namespace: string | undefined): T | undefined;
  get(keyOrName: string, namespace?: string): T | undefined {
    return this.cache.get(namespace ? `${namespace}/${keyOrName}` : keyOrName);
  }

  /** All cached objects, or those of one namespace. */
  list(namespace?: string): T[] {
    const all = [...this.cache.values()];
    return namespace === undefined ? all : all.filter((o) => o.metadata?.namespace === namespace);
  }

  keys(): string[] {
    return [...this.cache.keys()];
  }

  hasSynced(): boolean {
    return this.syncedFlag;
  }

  /** True while a watch stream is open. */
  isWatching(): boolean {
    return this.watching;
  }

  /** Epoch ms of the last byte-level sign of life (list, watch event or bookmark). */
  lastActivity(): number {
    return this.lastEventAt;
  }

  /** The resourceVersion the next watch resumes from (undefined = a LIST comes next). */
  lastResourceVersion(): string | undefined {
    return this.resourceVersion;
  }

  // ---- handlers ------------------------------------------------------------------------------

  /** Registers a handler for every event; returns an unsubscribe function. */
  onChange(handler: InformerHandler<T>): () => void {
    this.handlers.add(handler);
    return () => this.handlers.delete(handler);
  }

  onAdd(fn: (obj: T) => void): () => void {
    return this.onChange((ev) => ev.type === 'add' && fn(ev.obj));
  }

  onUpdate(fn: (obj: T, old: T) => void): () => void {
    return this.onChange((ev) => ev.type === 'update' && fn(ev.obj, ev.old!));
  }

  onDelete(fn: (obj: T) => void): () => void {
    return this.onChange((ev) => ev.type === 'delete' && fn(ev.obj));
  }

  onResync(fn: (obj: T) => void): () => void {
    return this.onChange((ev) => ev.type === 'resync' && fn(ev.obj));
  }

  // ---- lifecycle -----------------------------------------------------------------------------

  /**
   * Starts the list/watch loop. Idempotent (single flight): while a loop runs, further
   * calls do nothing, so racing restarts can never open a second watch.
   */
  start(): void {
    if (this.loop) return;
    const gen = ++this.generation;
    // A restart after stop() relists: the cache is kept, so the LIST is diffed against it
    // and only real changes are emitted.
    this.resourceVersion = undefined;
    this.scheduleResync(gen);
    this.loop = this.run(gen).finally(() => {
      if (this.generation === gen) this.loop = undefined;
    });
  }

  /** Stops the loop, closes the open request and waits until the loop has exited. */
  async stop(): Promise<void> {
    this.generation++;
    if (this.resyncTimer) clearTimeout(this.resyncTimer);
    this.current?.abort();
    this.pause.wake();
    const loop = this.loop;
    this.loop = undefined;
    await loop;
  }

  /** Closes the current watch; the loop re-watches at once from the last resourceVersion. */
  restartWatch(): void {
    this.current?.abort(new RestartRequested('watch restart requested'));
  }

  // ---- the loop ------------------------------------------------------------------------------

  private async run(gen: number): Promise<void> {
    const backoff = new Backoff({ random: this.random, ...this.opts.backoff });
    let goneInARow = 0;
    while (this.generation === gen) {
      let delay = 0;
      try {
        if (this.resourceVersion === undefined) await this.relist(gen);
        if (this.generation !== gen) break;
        const { lastedMs, events } = await this.watch(gen);
        goneInARow = 0;
        // The server ended the watch (timeoutSeconds). A watch that ends at once without
        // events is a misbehaving server or proxy: back off instead of spinning.
        if (lastedMs < MIN_HEALTHY_WATCH_MS && events === 0) delay = backoff.next();
        else backoff.reset();
      } catch (err) {
        this.watching = false;
        if (this.generation !== gen) break;
        if (err instanceof RestartRequested) continue;
        if (isGone(err)) {
          // Our resourceVersion is too old for the server (compaction, apiserver restart):
          // relist at once; back off only if that keeps happening.
          this.log.info('resourceVersion expired, relisting', {
            informer: this.name,
            rv: this.resourceVersion,
          });
          this.resourceVersion = undefined;
          if (++goneInARow > 1) delay = backoff.next();
        } else {
          const lasted = (err as { watchLastedMs?: number }).watchLastedMs ?? 0;
          if (lasted >= MIN_HEALTHY_WATCH_MS) backoff.reset(); // a long healthy watch then a drop
          delay = backoff.next();
          const quiet = err instanceof Error && err.name === 'TimeoutError' && lasted >= MIN_HEALTHY_WATCH_MS;
          this.log[quiet ? 'debug' : 'warn']('list/watch failed, retrying', {
            informer: this.name,
            error: errorSummary(err),
            retryInMs: delay,
          });
        }
      }
      if (delay > 0 && this.generation === gen) await this.pause.sleep(delay);
    }
    this.watching = false;
  }

  /** LIST every page, replace the cache and emit add/update/delete for the differences. */
  private async relist(gen: number): Promise<void> {
    const items: T[] = [];
    let cont: string | undefined;
    let rv: string | undefined;
    const ac = (this.current = new AbortController());
    do {
      const page = await this.opts.rest.request<ListResponse<T>>({
        path: this.opts.path,
        query: {
          labelSelector: this.opts.labelSelector,
          fieldSelector: this.opts.fieldSelector,
          limit: this.opts.pageSize ?? 500,
          continue: cont,
        },
        timeoutMs: this.opts.listTimeoutMs ?? 60_000,
        signal: ac.signal,
      });
      if (this.generation !== gen) return;
      // Items of a LIST carry no apiVersion/kind (watch events do): fill them in so cached
      // objects look the same whichever way they arrived.
      const kind = page.kind?.replace(/List$/, '');
      for (const item of page.items ?? []) {
        items.push(item.kind ? item : ({ apiVersion: page.apiVersion, kind, ...item } as T));
      }
      cont = page.metadata?.continue || undefined;
      rv = page.metadata?.resourceVersion;
    } while (cont);

    const next = new Map<string, T>();
    for (const o of items) next.set(objectKey(o), o);
    const prev = new Map(this.cache);
    this.cache.clear();
    for (const [k, v] of next) this.cache.set(k, v);
    this.resourceVersion = rv;
    this.lastEventAt = Date.now();
    for (const [k, obj] of next) {
      const old = prev.get(k);
      if (!old) this.emit({ type: 'add', obj });
      else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion)
        this.emit({ type: 'update', obj, old });
    }
    for (const [k, obj] of prev) if (!next.has(k)) this.emit({ type: 'delete', obj });
    this.log.debug('listed', { informer: this.name, items: items.length, rv });
    if (!this.syncedFlag) {
      this.syncedFlag = true;
      this.resolveSynced();
    }
  }

  /**
   * One WATCH request. Resolves when the server ends it cleanly; rejects on any failure
   * (with `watchLastedMs` attached so the loop can tell a long healthy watch from a flap).
   */
  private async watch(gen: number): Promise<{ lastedMs: number; events: number }> {
    const min = this.opts.minWatchTimeoutSeconds ?? 300;
    const timeoutSeconds = Math.round(min * (1 + this.random()));
    const ac = (this.current = new AbortController());
    const stream = await this.opts.rest.stream({
      path: this.opts.path,
      query: {
        watch: 1,
        resourceVersion: this.resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds,
        labelSelector: this.opts.labelSelector,
        fieldSelector: this.opts.fieldSelector,
      },
      timeoutMs: this.opts.inactivityTimeoutMs ?? 180_000,
      signal: ac.signal,
    });
    const started = Date.now();
    if (this.generation !== gen) {
      stream.close();
      return { lastedMs: 0, events: 0 };
    }
    this.watching = true;
    this.lastEventAt = started;
    // Backstop in case the server ignores timeoutSeconds while still sending bytes.
    const hardDeadline = setTimeout(
      () => stream.close(timeoutError(`watch exceeded timeoutSeconds=${timeoutSeconds} + 30 s`)),
      (timeoutSeconds + 30) * 1000,
    );
    let events = 0;
    try {
      await new Promise<void>((resolve, reject) => {
        const res = stream.response;
        let buf = '';
        let done = false;
        const finish = (err?: unknown) => {
          if (done) return;
          done = true;
          if (err) {
            stream.close(err instanceof Error ? err : new Error(String(err)));
            reject(err);
          } else resolve();
        };
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (done) return;
          this.lastEventAt = Date.now();
          buf += chunk;
          let nl: number;
          while (!done && (nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (!line) continue;
            try {
              if (this.generation !== gen) return finish(new RestartRequested('stale watch'));
              this.handleEvent(JSON.parse(line) as WatchEvent<T>);
              events++;
            } catch (err) {
              finish(err);
            }
          }
        });
        res.on('end', () => finish());
        res.on('error', (err) => finish(stream.failure() ?? err));
        res.on('close', () => {
          if (!res.complete) finish(stream.failure() ?? new Error('watch connection closed before the end'));
          else finish();
        });
      });
    } catch (err) {
      if (err && typeof err === 'object')
        (err as { watchLastedMs?: number }).watchLastedMs = Date.now() - started;
      throw err;
    } finally {
      clearTimeout(hardDeadline);
      stream.close();
      this.watching = false;
    }
    return { lastedMs: Date.now() - started, events };
  }

  private handleEvent(ev: WatchEvent<T>): void {
    const obj = ev.object;
    const rv = obj?.metadata?.resourceVersion;
    switch (ev.type) {
      case 'ADDED':
      case 'MODIFIED': {
        const key = objectKey(obj);
        const old = this.cache.get(key);
        this.cache.set(key, obj);
        if (rv) this.resourceVersion = rv;
        this.emit(old ? { type: 'update', obj, old } : { type: 'add', obj });
        return;
      }
      case 'DELETED': {
        const key = objectKey(obj);
        this.cache.delete(key);
        if (rv) this.resourceVersion = rv;
        this.emit({ type: 'delete', obj });
        return;
      }
      case 'BOOKMARK':
        // Only the resourceVersion matters: it lets the next watch resume from "now"
        // instead of from the last change of *our* objects, avoiding a 410 + relist.
        if (rv) this.resourceVersion = rv;
        return;
      case 'ERROR': {
        const code = typeof obj?.code === 'number' ? obj.code : 500;
        throw new ApiException<string>(
          code,
          `watch ERROR event: ${obj?.reason ?? ''}`,
          JSON.stringify(obj),
          {},
        );
      }
      default:
        this.log.warn('unknown watch event type', {
          informer: this.name,
          type: (ev as { type?: unknown }).type,
        });
    }
  }

  private emit(ev: InformerEvent<T>): void {
    for (const h of this.handlers) {
      try {
        h(ev);
      } catch (err) {
        // A broken handler must not kill the watch loop or starve the other handlers.
        this.log.error('informer handler threw', { informer: this.name, error: errorSummary(err) });
      }
    }
  }

  private scheduleResync(gen: number): void {
    const period = this.opts.resyncPeriodMs ?? 600_000;
    if (period <= 0) return;
    // ±10 % jitter so the informers of one process don't all resync in the same tick.
    const delay = Math.round(period * (0.9 + 0.2 * this.random()));
    this.resyncTimer = setTimeout(() => {
      if (this.generation !== gen) return;
      if (this.syncedFlag) for (const obj of [...this.cache.values()]) this.emit({ type: 'resync', obj });
      this.scheduleResync(gen);
    }, delay);
    this.resyncTimer.unref?.();
  }
}
