import { type KubeConfig, Watch } from '@kubernetes/client-node';
import type { Logger } from '../../../src/common/logger.js';
import { apiErrorMessage as errorMessage, errorCode, getJson } from './api.js';

export interface KubeObject {
  metadata?: { name?: string; namespace?: string; uid?: string; resourceVersion?: string };
}

export const objectKey = (o: KubeObject) =>
  o.metadata?.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : (o.metadata?.name ?? '');

export interface ReflectorOptions<T> {
  kc: KubeConfig;
  /** Collection path, e.g. `/api/v1/pods`. */
  path: string;
  log: Logger;
  /** Called with the newest object, or undefined when it is gone. Level-triggered: may repeat. */
  onChange: (key: string, obj: T | undefined) => void;
}

interface ListBody<T> {
  items?: T[];
  metadata?: { resourceVersion?: string; continue?: string };
}

const MIN_BACKOFF_MS = 200;
const MAX_BACKOFF_MS = 5000;

/**
 * List + watch of one collection into a local store, as client-go's reflector does: the watch
 * resumes from the last resourceVersion after any error (with backoff), and a full relist replaces
 * the store when the apiserver answers 410 Gone (the version is too old).
 */
export class Reflector<T extends KubeObject> {
  readonly store = new Map<string, T>();
  private stopped = false;
  private abort?: AbortController;
  private resourceVersion?: string;
  private readonly watcher: Watch;
  private firstSync?: { resolve: () => void; promise: Promise<void> };
  private loop?: Promise<void>;
  private wakeUp?: () => void;

  constructor(private readonly options: ReflectorOptions<T>) {
    this.watcher = new Watch(options.kc);
  }

  /** Starts the loop; resolves once the first list has been delivered. */
  start(): Promise<void> {
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    this.firstSync = { resolve, promise };
    this.loop = this.run();
    return promise;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort?.abort();
    this.wakeUp?.();
    this.firstSync?.resolve();
    await this.loop;
  }

  private async run(): Promise<void> {
    const { log, path } = this.options;
    let backoff = MIN_BACKOFF_MS;
    let needList = true;
    while (!this.stopped) {
      try {
        if (needList) {
          await this.list();
          needList = false;
          this.firstSync?.resolve();
        }
        const started = Date.now();
        const ended = await this.watchOnce();
        if (ended === 'expired') {
          log.info('watch expired; relisting', { path });
          needList = true;
        }
        // A watch that closes at once again and again must not spin.
        if (Date.now() - started < 1000) await this.pause(backoff);
        backoff = MIN_BACKOFF_MS;
      } catch (err) {
        if (this.stopped) break;
        if (errorCode(err) === 410) needList = true;
        log.warn('list/watch failed; retrying', { path, error: errorMessage(err), retryInMs: backoff });
        await this.pause(backoff);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      }
    }
  }

  /** Sleeps, but returns at once on stop(). */
  private pause(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.wakeUp = undefined;
        resolve();
      }, ms);
      this.wakeUp = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  private async list(): Promise<void> {
    const items: T[] = [];
    let cont: string | undefined;
    let rv: string | undefined;
    do {
      const q = new URLSearchParams({ limit: '500' });
      if (cont) q.set('continue', cont);
      const body = await getJson<ListBody<T>>(this.options.kc, `${this.options.path}?${q}`);
      items.push(...(body.items ?? []));
      cont = body.metadata?.continue || undefined;
      rv = body.metadata?.resourceVersion;
    } while (cont && !this.stopped);
    if (this.stopped) return;
    this.resourceVersion = rv;
    const seen = new Set<string>();
    for (const item of items) {
      const key = objectKey(item);
      seen.add(key);
      this.store.set(key, item);
    }
    for (const key of [...this.store.keys()]) {
      if (!seen.has(key)) {
        this.store.delete(key);
        this.emit(key, undefined);
      }
    }
    for (const item of items) this.emit(objectKey(item), item);
  }

  private watchOnce(): Promise<'closed' | 'expired'> {
    return new Promise((resolve, reject) => {
      let expired = false;
      let failure: Error | undefined;
      const onEvent = (type: string, obj: T & { code?: number; message?: string }) => {
        if (type === 'ERROR') {
          if (obj.code === 410) expired = true;
          else failure = new Error(`watch error ${obj.code ?? ''}: ${obj.message ?? 'unknown'}`);
          this.abort?.abort();
          return;
        }
        const rv = obj.metadata?.resourceVersion;
        if (rv) this.resourceVersion = rv;
        if (type === 'BOOKMARK') return;
        const key = objectKey(obj);
        if (type === 'DELETED') {
          this.store.delete(key);
          this.emit(key, undefined);
        } else {
          this.store.set(key, obj);
          this.emit(key, obj);
        }
      };
      const onDone = (err: unknown) => {
        this.abort = undefined;
        if (expired) resolve('expired');
        else if (this.stopped) resolve('closed');
        else if (failure) reject(failure);
        else if (err) reject(err);
        else resolve('closed');
      };
      this.watcher
        .watch(
          this.options.path,
          { resourceVersion: this.resourceVersion, allowWatchBookmarks: true, timeoutSeconds: 300 },
          onEvent,
          onDone,
        )
        .then(
          (controller) => {
            if (this.stopped) controller.abort();
            else this.abort = controller;
          },
          (err: unknown) => onDone(err),
        );
    });
  }

  private emit(key: string, obj: T | undefined): void {
    try {
      this.options.onChange(key, obj);
    } catch (err) {
      this.options.log.error('event handler failed', { key, error: errorMessage(err) });
    }
  }
}
