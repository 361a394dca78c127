import { ANNOTATION_SEED_ID } from '../../agent/contract.js';
import { names } from '../desired/meta.js';
import type { ObservedShard } from './manager.js';

/** The parts of a Pod the shard loop reads (plain JSON or a client-node object alike). */
export interface PodLike {
  metadata?: {
    name?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    deletionTimestamp?: unknown;
  };
  spec?: { nodeName?: string };
  status?: { phase?: string; podIP?: string; conditions?: { type: string; status: string }[] };
}

/** Turns the cluster's MariaDB pods into what the shard state machine observes. Pure. */
export function observeShards(cluster: string, shards: number, pods: PodLike[]): ObservedShard[] {
  return Array.from({ length: shards }, (_, s) => ({
    name: names.shard(s),
    instances: [0, 1].map((index) => {
      const podName = names.pod(cluster, s, index);
      const pod = pods.find((p) => p.metadata?.name === podName);
      return {
        index,
        podName,
        podIP: pod?.status?.podIP || undefined,
        podPhase: pod ? (pod.status?.phase ?? 'Pending') : undefined,
        podReady: pod?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
        deleting: Boolean(pod?.metadata?.deletionTimestamp),
        seedId: pod?.metadata?.annotations?.[ANNOTATION_SEED_ID],
      };
    }),
  }));
}
