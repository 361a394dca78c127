import { AGENT_PORT } from '../../agent/contract.js';
import {
  COMPONENT_BROKER,
  COMPONENT_MYSQL,
  type DefaultedCluster,
  LABEL_CLUSTER,
  LABEL_COMPONENT,
} from '../api/types.js';
import { type DesiredObject, names, objectMeta } from './meta.js';
import { MYSQL_PORT } from './shard.js';

/** Port of the MariaDB metrics exporter sidecar, open to any scraper. */
export const MYSQL_METRICS_PORT = 9104;

/** The operator's own Pods, as the NetworkPolicy selects them (from the chart, see main.ts). */
export interface OperatorPeer {
  namespace: string;
  podLabels: Record<string, string>;
}

/**
 * `k=v,k=v` (the chart's NETWORK_POLICY_OPERATOR_LABELS) as labels. Throws on an entry without
 * `=` or with an empty key, so a typo stops the operator at start rather than locking it out.
 */
export function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const entry of text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const eq = entry.indexOf('=');
    if (eq <= 0) throw new Error(`invalid label ${JSON.stringify(entry)}: use key=value[,key=value]`);
    labels[entry.slice(0, eq).trim()] = entry.slice(eq + 1).trim();
  }
  if (!Object.keys(labels).length) throw new Error('no labels given: use key=value[,key=value]');
  return labels;
}

const clusterPods = (cr: DefaultedCluster, component: string) => ({
  podSelector: { matchLabels: { [LABEL_CLUSTER]: cr.metadata.name, [LABEL_COMPONENT]: component } },
});

/**
 * The operator as a NetworkPolicy peer: its Pods by label, in its own namespace. A peer in
 * another namespace is selected by the `kubernetes.io/metadata.name` label, which Kubernetes puts
 * on every namespace from 1.21 on (older clusters: label the operator's namespace so by hand).
 */
function operatorPeer(cr: DefaultedCluster, operator: OperatorPeer): Record<string, unknown> {
  const podSelector = { matchLabels: { ...operator.podLabels } };
  return operator.namespace === cr.metadata.namespace
    ? { podSelector }
    : {
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': operator.namespace } },
        podSelector,
      };
}

const tcp = (port: number) => ({ protocol: 'TCP', port });

/**
 * NetworkPolicy `NAME-mysql` on the cluster's MariaDB Pods: MariaDB (3306) only from the
 * cluster's brokers, its other instances (replication) and the operator (bootstrap, probes,
 * failover, retention, topics); the agent (clone streams of the whole data directory) only from
 * the cluster's instances, whose seed step pulls from it; the exporter's metrics port from
 * anywhere. Everything else to these Pods is dropped where a NetworkPolicy controller runs.
 */
export function mysqlNetworkPolicy(cr: DefaultedCluster, operator: OperatorPeer): DesiredObject {
  const instances = clusterPods(cr, COMPONENT_MYSQL);
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: objectMeta(cr, names.networkPolicy(cr.metadata.name), COMPONENT_MYSQL),
    spec: {
      podSelector: instances.podSelector,
      policyTypes: ['Ingress'],
      ingress: [
        {
          from: [clusterPods(cr, COMPONENT_BROKER), instances, operatorPeer(cr, operator)],
          ports: [tcp(MYSQL_PORT)],
        },
        { from: [instances], ports: [tcp(AGENT_PORT)] },
        { ports: [tcp(MYSQL_METRICS_PORT)] },
      ],
    },
  };
}
