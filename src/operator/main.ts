#!/usr/bin/env node
/**
 * The operator process: `node dist/operator/main.js [--leader-elect] [--kubeconfig FILE]`.
 *
 * Environment (the helm chart sets these): WATCH_NAMESPACES (comma-separated; empty = all),
 * POD_NAMESPACE and POD_NAME (the leader-election Lease's namespace and holder), POD_IP (address to
 * bind /metrics and /healthz to; default all addresses), METRICS_PORT (8080), HEALTH_PORT (8081),
 * LEADER_ELECT_LEASE_DURATION / _RENEW_DEADLINE / _RETRY_PERIOD (`15s`, `10s`, `2s`), MQ_LOG_LEVEL,
 * TOPIC_DISCOVERY_PERIOD (`30s`: how often the shards are listed for topics without a resource),
 * NETWORK_POLICY_OPERATOR_LABELS (`k=v,k=v`, the labels of the operator's own Pods in POD_NAMESPACE:
 * when set, every cluster gets a NetworkPolicy that lets only its brokers, its instances and these
 * Pods reach MariaDB; unset: no NetworkPolicies).
 */
import { parseArgs } from 'node:util';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { errorMessage } from '../common/errors.js';
import { createLogger } from '../common/logger.js';
import { installRequestAudit, requestAuditFromEnv } from '../k8s/audit.js';
import { loadKubeConfig } from '../k8s/client.js';
import { KubeRest } from '../k8s/rest.js';
import { Caches } from './caches.js';
import { clusterLoopMetrics } from './cluster-loop.js';
import { type OperatorPeer, parseLabels, pdbApiVersion } from './desired/index.js';
import { EventRecorder } from './events.js';
import { ClusterReconciler } from './reconciler.js';
import { Controller } from './runtime/controller.js';
import { startHealthServer } from './runtime/health-server.js';
import { LeaderElector, coordinationLeaseClient, defaultIdentity } from './runtime/leader-election.js';
import { TopicReconciler } from './topics/reconciler.js';

const LEASE_NAME = 'mysqlmq-operator-leader';

const log = createLogger('operator');

/** `15s`, `500ms`, `1m` or plain seconds → milliseconds. */
export function parseDuration(text: string | undefined, fallbackMs: number): number {
  if (!text) return fallbackMs;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!m) throw new Error(`invalid duration ${JSON.stringify(text)}: use e.g. 15s, 500ms or 1m`);
  const n = Number(m[1]);
  return m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000;
}

/** The API group versions the server offers (discovery), e.g. `policy/v1beta1`. */
async function groupVersions(rest: KubeRest): Promise<string[]> {
  const list = await rest.request<{ groups?: { versions?: { groupVersion: string }[] }[] }>({
    path: '/apis',
  });
  return (list.groups ?? []).flatMap((g) => (g.versions ?? []).map((v) => v.groupVersion));
}

/** The operator's Pods for the clusters' NetworkPolicies, from the chart's environment; undefined: off. */
function networkPolicyPeer(env: NodeJS.ProcessEnv): OperatorPeer | undefined {
  const labels = env.NETWORK_POLICY_OPERATOR_LABELS?.trim();
  if (!labels) return undefined;
  if (!env.POD_NAMESPACE)
    throw new Error("NETWORK_POLICY_OPERATOR_LABELS needs POD_NAMESPACE (the operator's namespace)");
  return { namespace: env.POD_NAMESPACE, podLabels: parseLabels(labels) };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'leader-elect': { type: 'boolean', default: false },
      kubeconfig: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(
      'usage: mysqlmq-operator [--leader-elect] [--kubeconfig FILE]\n' +
        '  --leader-elect   hold a coordination.k8s.io Lease so only one replica acts at a time\n' +
        '  --kubeconfig     kubeconfig file (default: $KUBECONFIG, the in-cluster service account, ~/.kube/config)\n',
    );
    return;
  }
  const env = process.env;
  const namespaces = (env.WATCH_NAMESPACES ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const kc = loadKubeConfig({ kubeconfigPath: values.kubeconfig });
  const rest = new KubeRest(kc);
  // MQ_K8S_AUDIT_LOG: record every API request (the tests derive the chart's RBAC from it).
  const audit = requestAuditFromEnv(env);
  if (audit) installRequestAudit(audit, { rest });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  const pdbVersion = pdbApiVersion(await groupVersions(rest));
  const networkPolicy = networkPolicyPeer(env);
  log.info('starting', {
    namespaces: namespaces.length ? namespaces : 'all',
    server: kc.getCurrentCluster()?.server,
    pdbApiVersion: pdbVersion ?? 'none',
    leaderElect: values['leader-elect'],
    networkPolicy: networkPolicy ?? 'off',
  });

  const caches = new Caches(rest, namespaces, pdbVersion, log, networkPolicy !== undefined);
  let leading = !values['leader-elect'];
  const host = env.POD_IP || '0.0.0.0';
  const health = await startHealthServer({
    port: Number(env.HEALTH_PORT ?? 8081),
    host,
    healthChecks: { process: () => true },
    // A standby replica is ready (it serves probes and waits for the lease); a leader once its
    // caches are filled.
    readyChecks: { caches: () => !leading || caches.hasSynced() },
    logger: log,
  });
  const metricsServer = await startHealthServer({
    port: Number(env.METRICS_PORT ?? 8080),
    host,
    registry,
    logger: log,
  });

  const events = new EventRecorder(rest, log);
  // The controller calls the reconciler, whose shard loops enqueue through the controller.
  const controller: Controller = new Controller({
    name: 'messagequeuecluster',
    reconcile: (key, signal) => reconciler.reconcile(key, signal),
    workers: 2,
    registry,
    logger: log,
  });
  const reconciler = new ClusterReconciler({
    rest,
    caches,
    events,
    loopMetrics: clusterLoopMetrics(registry),
    pdbApiVersion: pdbVersion,
    networkPolicy,
    enqueue: (key) => controller.enqueue(key),
    log,
  });

  const topicController = new Controller({
    name: 'messagequeuetopic',
    reconcile: (key, signal) => topics.reconcile(key, signal),
    workers: 1,
    registry,
    logger: log,
  });
  const topics = new TopicReconciler({
    rest,
    caches,
    events,
    shardAccess: (key) => reconciler.shardAccess(key),
    log,
  });
  const discoveryPeriodMs = parseDuration(env.TOPIC_DISCOVERY_PERIOD, 30_000);
  let discovery: NodeJS.Timeout | undefined;
  const discover = () => {
    discovery = setTimeout(() => {
      topics
        .discover()
        .catch((err: unknown) => log.warn('topic discovery failed', { error: errorMessage(err) }))
        .finally(() => {
          if (discovery) discover();
        });
    }, discoveryPeriodMs);
  };

  const lead = async (signal?: AbortSignal) => {
    leading = true;
    caches.onClusterChange((key) => controller.enqueue(key));
    caches.onTopicChange((key, clusterKey) => {
      topicController.enqueue(key);
      if (clusterKey && caches.cluster(clusterKey)) controller.enqueue(clusterKey);
    });
    caches.start();
    await caches.synced();
    log.info('caches synced; reconciling', { clusters: caches.clusterKeys().length });
    controller.start();
    topicController.start();
    discover();
    if (signal) {
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      await shutdownWork();
    }
  };
  const shutdownWork = async () => {
    clearTimeout(discovery);
    discovery = undefined;
    reconciler.stop();
    await Promise.all([controller.stop(), topicController.stop()]);
    await caches.stop();
  };

  let elector: LeaderElector | undefined;
  if (values['leader-elect']) {
    const namespace = env.POD_NAMESPACE;
    if (!namespace) throw new Error('--leader-elect needs POD_NAMESPACE (the namespace of the Lease)');
    elector = new LeaderElector({
      client: coordinationLeaseClient(rest, namespace, LEASE_NAME),
      identity: env.POD_NAME ? `${env.POD_NAME}_${defaultIdentity().split('_').pop()}` : undefined,
      leaseDurationMs: parseDuration(env.LEADER_ELECT_LEASE_DURATION, 15_000),
      renewDeadlineMs: parseDuration(env.LEADER_ELECT_RENEW_DEADLINE, 10_000),
      retryPeriodMs: parseDuration(env.LEADER_ELECT_RETRY_PERIOD, 2_000),
      onStartedLeading: (signal) => lead(signal),
      onStoppedLeading: ({ lost }) => {
        if (lost) {
          // controller-runtime does the same: a replica that lost the lease cannot know what the
          // new leader did meanwhile; restarting from a clean cache is the safe way back.
          log.error('leader lease lost; exiting');
          process.exit(1);
        }
      },
      logger: log,
    });
    void elector.run();
  } else {
    await lead();
  }

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('stopping', { signal });
    const hardStop = setTimeout(() => process.exit(1), 20_000).unref();
    try {
      if (elector) await elector.stop();
      else await shutdownWork();
      await Promise.all([health.close(), metricsServer.close()]);
    } finally {
      clearTimeout(hardStop);
      process.exit(0);
    }
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((err: unknown) => {
  log.error('operator failed', { error: errorMessage(err) });
  process.exit(1);
});
