import { randomBytes } from 'node:crypto';
import { errorMessage } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { KubeRest } from '../k8s/rest.js';
import { API_VERSION, KIND } from './api/types.js';

/** The object an Event is about: a MessageQueueCluster unless `kind` says otherwise. */
export interface EventSubject {
  kind?: string;
  metadata: { name: string; namespace: string; uid?: string; resourceVersion?: string };
}

export type EventType = 'Normal' | 'Warning';

/**
 * Writes core/v1 Events about a cluster, so `kubectl describe` tells what happened and why. The
 * same reason and message within a minute is written once: reconciles repeat, people should not
 * read the same line twenty times.
 */
export class EventRecorder {
  private readonly recent = new Map<string, number>();

  constructor(
    private readonly rest: KubeRest,
    private readonly log: Logger,
    private readonly component = 'mysqlmq-operator',
  ) {}

  /**
   * `transition`: the event reports a state change that happened again (a second failover of the
   * same pod), never a repeated observation, so it is always written.
   */
  async record(
    cr: EventSubject,
    type: EventType,
    reason: string,
    message: string,
    opts: { transition?: boolean } = {},
  ): Promise<void> {
    const key = `${cr.metadata.uid}/${type}/${reason}/${message}`;
    const now = Date.now();
    if (!opts.transition && (this.recent.get(key) ?? 0) > now - 60_000) return;
    this.recent.set(key, now);
    if (this.recent.size > 5000) this.recent.clear();
    const at = new Date(now).toISOString();
    this.log.info('event', {
      cluster: cr.metadata.name,
      namespace: cr.metadata.namespace,
      type,
      reason,
      eventMessage: message,
    });
    try {
      await this.rest.request({
        method: 'POST',
        path: `/api/v1/namespaces/${cr.metadata.namespace}/events`,
        body: {
          apiVersion: 'v1',
          kind: 'Event',
          metadata: {
            name: `${cr.metadata.name}.${randomBytes(8).toString('hex')}`,
            namespace: cr.metadata.namespace,
          },
          involvedObject: {
            apiVersion: API_VERSION,
            kind: cr.kind ?? KIND,
            name: cr.metadata.name,
            namespace: cr.metadata.namespace,
            uid: cr.metadata.uid,
            resourceVersion: cr.metadata.resourceVersion,
          },
          type,
          reason,
          message: message.slice(0, 1024),
          source: { component: this.component },
          reportingComponent: this.component,
          firstTimestamp: at,
          lastTimestamp: at,
          count: 1,
        },
      });
    } catch (err) {
      // An event that cannot be written must not fail the reconcile that reported it.
      this.log.warn('could not write event', { reason, error: errorMessage(err) });
    }
  }
}
