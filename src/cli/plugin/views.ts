import type { MessageQueueCluster } from '../../operator/api/types.js';
import { formatTable } from '../table.js';
import type { EventInfo, PodInfo, TopicResource } from './kube.js';

/** What `kubectl mqc` prints, computed from API objects. Pure. */

export const brokerSelector = (cluster: string) =>
  `mysqlmq.io/cluster=${cluster},app.kubernetes.io/component=broker`;
export const mysqlSelector = (cluster: string) =>
  `mysqlmq.io/cluster=${cluster},app.kubernetes.io/component=mysql`;

const podReady = (p: PodInfo) =>
  p.status?.phase === 'Running' && (p.status.containerStatuses ?? []).every((c) => c.ready);

/**
 * The broker pods' base URLs (ready pods with an IP), sorted by pod name: https:// where the
 * broker port is named `https` (spec.brokers.tls).
 */
export function brokerUrls(pods: readonly PodInfo[]): string[] {
  return [...pods]
    .filter((p) => podReady(p) && p.status?.podIP)
    .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))
    .map((p) => {
      const ports = (p.spec?.containers ?? []).flatMap((c) => c.ports ?? []);
      const named = ports.find((x) => x.name === 'http' || x.name === 'https');
      const port = named?.containerPort ?? ports[0]?.containerPort ?? 8080;
      return `${named?.name === 'https' ? 'https' : 'http'}://${p.status!.podIP}:${port}`;
    });
}

const where = (pod: string | undefined, pods: Map<string, PodInfo>) => {
  if (!pod) return null;
  const p = pods.get(pod);
  const node = p?.spec?.nodeName;
  return `${pod}${node ? ` (${node})` : ''}${p && !podReady(p) ? ' NOT READY' : ''}`;
};

/** The cluster summary, a per-shard table (roles, lag, writable/readable) and the brokers. */
export function statusView(
  cluster: MessageQueueCluster,
  mysqlPods: readonly PodInfo[],
  brokerPods: readonly PodInfo[],
): string {
  const status = cluster.status ?? {};
  const ready = status.conditions?.find((c) => c.type === 'Ready');
  const pods = new Map(mysqlPods.map((p) => [p.metadata.name, p]));
  const notReady =
    ready?.status === 'True'
      ? ''
      : ` (Ready=${ready?.status ?? 'Unknown'}${ready?.reason ? `, ${ready.reason}` : ''})`;
  const head = [
    `Cluster ${cluster.metadata.namespace}/${cluster.metadata.name}: ${status.phase ?? 'Unknown'}${notReady}`,
    `Shards ready ${status.shardsReady ?? 0}/${status.shardsTotal ?? 0}, writable ${status.writableShards ?? 0}; brokers ready ${status.brokersReady ?? 0}/${status.brokerReplicas ?? 0}; routing v${status.routingVersion ?? 0}`,
  ];
  if (ready?.status !== 'True' && ready?.message) head.push(`  ${ready.message}`);
  const last = status.lastSwitchover;
  if (last) {
    const paused = last.writesPausedMs > 0 ? `, writes paused ${last.writesPausedMs} ms` : '';
    head.push(
      `Last switchover: ${last.shard} ${last.from} -> ${last.to} ${last.result} at ${last.time}${paused}${last.result === 'Failed' ? `: ${last.message}` : ''}`,
    );
  }
  const shardRows = (status.shards ?? []).map((s) => [
    s.name,
    s.phase,
    where(s.primaryPod, pods),
    where(s.standbyPod, pods),
    s.writable ? 'yes' : 'NO',
    s.readsFrom === 'none' ? 'NO' : `yes (${s.readsFrom})`,
    s.replicationLagSeconds === null || s.replicationLagSeconds === undefined
      ? null
      : `${s.replicationLagSeconds}s`,
    s.semiSync,
  ]);
  const shards = formatTable(
    ['SHARD', 'PHASE', 'PRIMARY', 'STANDBY', 'WRITABLE', 'READABLE', 'LAG', 'SEMI-SYNC'],
    shardRows,
  );
  const brokerRows = [...brokerPods]
    .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))
    .map((p) => [p.metadata.name, p.spec?.nodeName, p.status?.podIP, podReady(p) ? 'yes' : 'NO']);
  const brokers = formatTable(['BROKER', 'NODE', 'IP', 'READY'], brokerRows);
  return [...head, '', shards, '', brokers].join('\n');
}

/**
 * The cluster's topics: MessageQueueTopic objects naming it, and what the brokers know (topics
 * made over HTTP or mqctl appear there only). `resources` undefined: the CRD is not installed.
 */
export function topicsView(
  cluster: string,
  resources: readonly TopicResource[] | undefined,
  brokerTopics: readonly string[] | undefined,
): string {
  const mine = (resources ?? []).filter((r) => r.spec?.cluster === cluster);
  const byTopic = new Map(mine.map((r) => [r.spec?.topicName ?? r.metadata.name, r]));
  const names = [...new Set([...byTopic.keys(), ...(brokerTopics ?? [])])].sort();
  const rows = names.map((name) => {
    const r = byTopic.get(name);
    const ready = r?.status?.conditions?.find((c) => c.type === 'Ready');
    const retention = r?.spec?.retention;
    return [
      name,
      r ? r.metadata.name : null,
      r ? (ready?.status ?? r.status?.phase) : null,
      brokerTopics === undefined ? '?' : brokerTopics.includes(name) ? 'yes' : 'no',
      retention?.maxAgeHours !== undefined ? `${retention.maxAgeHours}h` : null,
      r?.spec?.maxDeliveries,
    ];
  });
  const notes: string[] = [];
  if (resources === undefined)
    notes.push("(the MessageQueueTopic CRD is not installed: brokers' topics only)");
  if (brokerTopics === undefined) notes.push('(no broker answered: MessageQueueTopic objects only)');
  const table = formatTable(['TOPIC', 'RESOURCE', 'READY', 'ON SHARDS', 'RETENTION', 'MAX DELIVERIES'], rows);
  return [table, ...notes].join('\n');
}

/** How many times each switchover Event has been emitted so far (Events are deduplicated by count). */
export function switchoverEventCounts(events: readonly EventInfo[]): Map<string, number> {
  return new Map(
    events
      .filter((e) => e.reason === 'Switchover' || e.reason === 'SwitchoverFailed')
      .map((e) => [e.metadata.name, e.count ?? 1]),
  );
}

/** A Switchover or SwitchoverFailed Event emitted after `before` was taken, if any. */
export function newSwitchoverEvent(
  before: ReadonlyMap<string, number>,
  events: readonly EventInfo[],
): EventInfo | undefined {
  return events.find(
    (e) =>
      (e.reason === 'Switchover' || e.reason === 'SwitchoverFailed') &&
      (e.count ?? 1) > (before.get(e.metadata.name) ?? 0),
  );
}
