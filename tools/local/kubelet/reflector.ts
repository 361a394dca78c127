import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../../../src/common/logger.js';
import { Informer } from '../../../src/k8s/informer.js';
import { type KubeObject as ApiObject, objectKey } from '../../../src/k8s/resources.js';
import { KubeRest } from '../../../src/k8s/rest.js';

export interface KubeObject {
  metadata?: { name?: string; namespace?: string; uid?: string; resourceVersion?: string };
}

export interface ReflectorOptions<T> {
  kc: KubeConfig;
  /** Collection path, e.g. `/api/v1/pods`. */
  path: string;
  log: Logger;
  /** Called with the newest object, or undefined when it is gone. Level-triggered: may repeat. */
  onChange: (key: string, obj: T | undefined) => void;
}

/**
 * The test kubelet's (and the failover benchmark's) view of one collection: the operator's own
 * list-watch (src/k8s/informer.ts over rest.ts) with a `namespace/name -> object` callback, so the
 * kubelet exercises the same client code as the operator. Resyncs are delivered as changes too.
 */
export class Reflector<T extends KubeObject> {
  private readonly informer: Informer<ApiObject>;
  private wakeStart?: () => void;

  constructor(options: ReflectorOptions<T>) {
    this.informer = new Informer<ApiObject>({
      rest: new KubeRest(options.kc),
      path: options.path,
      logger: options.log,
    });
    this.informer.onChange((ev) => {
      options.onChange(objectKey(ev.obj), ev.type === 'delete' ? undefined : (ev.obj as unknown as T));
    });
  }

  /** The cached objects by `namespace/name`. */
  readonly store = {
    get: (key: string): T | undefined => this.informer.get(key) as unknown as T | undefined,
    values: (): T[] => this.informer.list() as unknown as T[],
  };

  /** Starts the loop; resolves once the first list has been delivered (or on stop()). */
  start(): Promise<void> {
    this.informer.start();
    return Promise.race([this.informer.synced, new Promise<void>((resolve) => (this.wakeStart = resolve))]);
  }

  async stop(): Promise<void> {
    this.wakeStart?.();
    await this.informer.stop();
  }
}
