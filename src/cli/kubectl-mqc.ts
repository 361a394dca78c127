#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { Admin, MqClientError } from '../client/index.js';
import { Transport, type TransportOptions } from '../client/transport.js';
import { errorSummary, isApiException } from '../k8s/client.js';
import { brokersServeTls } from '../operator/api/defaults.js';
import {
  ANNOTATION_SWITCHOVER as SWITCHOVER_ANNOTATION,
  type MessageQueueCluster,
} from '../operator/api/types.js';
import { readCaFile } from './ca-file.js';
import { RESET_OPTIONS, groupsTable, parseResetFlags } from './groups.js';
import { PluginKube } from './plugin/kube.js';
import {
  brokerSelector,
  brokerUrls,
  mysqlSelector,
  newSwitchoverEvent,
  statusView,
  switchoverEventCounts,
  topicsView,
} from './plugin/views.js';
import { Progress } from './progress.js';
import { formatTable } from './table.js';

const HELP = `kubectl mqc: operate mysqlmq MessageQueueClusters (a kubectl plugin)

Usage: kubectl mqc <command> CLUSTER [args] [flags]

Commands:
  status CLUSTER                     shards (primary, standby, node, lag, writable, readable) and brokers
  switchover CLUSTER SHARD           swap the shard's primary and standby, wait for the operator's Event
  topics CLUSTER                     MessageQueueTopic resources of the cluster and the brokers' topics
  groups CLUSTER TOPIC               consumer groups of a topic: members, committed, lag per shard
  reset CLUSTER TOPIC GROUP --to-earliest|--to-latest|--to-timestamp ISO|--to-offsets shard-0=41,... [--force]
                                     move a consumer group (refused while it has members unless --force)

Flags:
  -n, --namespace NS   the cluster's namespace (default: the context's, else "default")
  --kubeconfig FILE    as kubectl (default: $KUBECONFIG, else ~/.kube/config)
  --context NAME       kubeconfig context to use
  --brokers URLS       broker URLs to use instead of the broker pods' IPs (e.g. after a port-forward)
  --token TOKEN        broker token (env MQ_TOKEN; default: Secret NAME-user-admin)
  --ca FILE            CA certificate (PEM) of HTTPS brokers (env MQ_CA; default: ca.crt of the
                       cluster's TLS Secret, NAME-broker-tls or spec.brokers.tls.secretName, else NAME-ca)
  --timeout SECONDS    switchover: how long to wait for the operator (default 120)
  --no-wait            switchover: set the annotation and return
  --json               groups: print the brokers' JSON answer
`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      namespace: { type: 'string', short: 'n' },
      kubeconfig: { type: 'string' },
      context: { type: 'string' },
      brokers: { type: 'string' },
      token: { type: 'string' },
      ca: { type: 'string' },
      timeout: { type: 'string' },
      'no-wait': { type: 'boolean' },
      json: { type: 'boolean' },
      ...RESET_OPTIONS,
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command, clusterName, ...args] = positionals;
  if (values.help || !command || !clusterName) {
    process.stdout.write(HELP);
    return values.help ? 0 : 2;
  }
  const kube = new PluginKube(values);
  const cluster = await kube.cluster(clusterName);

  /** The brokers' HTTP API: given URLs, or the ready broker pods of the cluster. */
  const brokerOptions = async () => {
    const brokers = values.brokers
      ? values.brokers.split(',').filter(Boolean)
      : brokerUrls(await kube.pods(brokerSelector(clusterName)));
    if (brokers.length === 0)
      throw new Error(`cluster ${clusterName} has no ready broker pod (or pass --brokers)`);
    return {
      brokers,
      token: await brokerToken(kube, cluster, values.token),
      timeoutMs: 10_000,
      ...(await brokerTrust(kube, cluster, values.ca, !values.brokers)),
    };
  };

  switch (command) {
    case 'status': {
      const [mysqlPods, brokerPods] = await Promise.all([
        kube.pods(mysqlSelector(clusterName)),
        kube.pods(brokerSelector(clusterName)),
      ]);
      console.log(statusView(cluster, mysqlPods, brokerPods));
      return 0;
    }
    case 'topics': {
      const resources = await kube.topicResources();
      let brokerTopics: string[] | undefined;
      try {
        const transport = new Transport(await brokerOptions());
        brokerTopics = (await transport.call<{ topics: string[] }>('GET', '/v1/topics')).topics;
      } catch (err) {
        console.error(`kubectl mqc: brokers: ${(err as Error).message}`);
      }
      console.log(topicsView(clusterName, resources, brokerTopics));
      return 0;
    }
    case 'groups': {
      const [topic] = args;
      if (!topic) return usage('groups CLUSTER TOPIC');
      const groups = await new Admin(await brokerOptions()).listGroups(topic);
      if (values.json) console.log(JSON.stringify({ groups }, null, 2));
      else if (groups.length === 0) console.error(`topic ${topic} has no consumer groups`);
      else console.log(groupsTable(groups));
      return 0;
    }
    case 'reset': {
      const [topic, group] = args;
      if (!topic || !group) return usage('reset CLUSTER TOPIC GROUP --to-...');
      const to = parseResetFlags(values);
      const progress = new Progress(`reset ${group}`, undefined);
      const timer = setInterval(() => progress.advance(), 100);
      try {
        const offsets = await new Admin(await brokerOptions()).resetGroup(topic, group, to, {
          force: values.force,
        });
        progress.finish();
        console.log(formatTable(['SHARD', 'COMMITTED'], Object.entries(offsets)));
      } finally {
        clearInterval(timer);
        progress.finish();
      }
      return 0;
    }
    case 'switchover': {
      const [shard] = args;
      if (!shard) return usage('switchover CLUSTER SHARD');
      return switchover(kube, cluster, shard, values['no-wait'] ? 0 : seconds(values.timeout, 120));
    }
    default:
      console.error(`kubectl mqc: unknown command "${command}"\n`);
      process.stderr.write(HELP);
      return 2;
  }
}

/**
 * Sets the switchover annotation, then waits for the operator's Switchover (done) or
 * SwitchoverFailed Event, newer than any seen before the request. `waitSeconds` 0: return at once.
 */
async function switchover(
  kube: PluginKube,
  cluster: MessageQueueCluster,
  shard: string,
  waitSeconds: number,
): Promise<number> {
  const name = cluster.metadata.name!;
  const shards = (cluster.status?.shards ?? []).map((s) => s.name);
  if (!shards.includes(shard)) {
    throw new Error(`cluster ${name} has no shard "${shard}" (shards: ${shards.join(', ') || 'none yet'})`);
  }
  const pending = cluster.metadata.annotations?.[SWITCHOVER_ANNOTATION];
  if (pending) throw new Error(`a switchover of ${pending} is already pending on cluster ${name}`);
  const before = switchoverEventCounts(await kube.clusterEvents(name));
  await kube.annotateCluster(name, { [SWITCHOVER_ANNOTATION]: shard });
  const status = cluster.status?.shards?.find((s) => s.name === shard);
  console.log(
    `switchover of ${shard} requested (primary ${status?.primaryPod ?? '?'}, standby ${status?.standbyPod ?? '?'})`,
  );
  if (waitSeconds === 0) return 0;

  const progress = new Progress(`switchover ${shard}`, undefined);
  const deadline = Date.now() + waitSeconds * 1000;
  try {
    while (Date.now() < deadline) {
      const event = newSwitchoverEvent(before, await kube.clusterEvents(name));
      if (event) {
        progress.finish();
        console.log(`${event.reason}: ${event.message ?? ''}`);
        return event.reason === 'Switchover' ? 0 : 1;
      }
      for (let i = 0; i < 5; i++) {
        progress.advance(0, 'waiting for the operator');
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } finally {
    progress.finish();
  }
  console.error(
    `kubectl mqc: no Switchover event after ${waitSeconds}s; the request stays on the cluster ` +
      `(annotation ${SWITCHOVER_ANNOTATION}); see kubectl describe mqc ${name}`,
  );
  return 1;
}

async function brokerToken(
  kube: PluginKube,
  cluster: MessageQueueCluster,
  given: string | undefined,
): Promise<string | undefined> {
  const token = given ?? process.env.MQ_TOKEN;
  if (token) return token;
  // The admin user's Secret (every cluster with authentication on has one); else the deprecated shared token.
  const admin = await kube.secretValue(`${cluster.metadata.name}-user-admin`, 'token');
  if (admin) return admin;
  const secret = cluster.spec?.brokers?.authSecretName;
  return secret ? kube.secretValue(secret, 'token') : undefined;
}

/**
 * How to verify HTTPS brokers: the CA from --ca or MQ_CA, else from the cluster's Secrets; and,
 * when dialling pod IPs (which no certificate names), the broker Service's name to check instead.
 */
async function brokerTrust(
  kube: PluginKube,
  cluster: MessageQueueCluster,
  caFile: string | undefined,
  dialsPods: boolean,
): Promise<Pick<TransportOptions, 'ca' | 'serverName'>> {
  if (!brokersServeTls(cluster)) return {};
  const tls = cluster.spec?.brokers?.tls;
  const name = cluster.metadata.name;
  const file = caFile ?? process.env.MQ_CA;
  const ca = file
    ? readCaFile(file)
    : ((await kube.secretValue(tls?.secretName ?? `${name}-broker-tls`, 'ca.crt')) ??
      (await kube.secretValue(`${name}-ca`, 'ca.crt')));
  return {
    ...(ca ? { ca } : {}),
    ...(dialsPods ? { serverName: `${name}-broker.${kube.namespace}.svc` } : {}),
  };
}

function seconds(value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value.replace(/s$/, ''));
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--timeout must be a positive number of seconds`);
  return n;
}

function usage(form: string): number {
  console.error(`usage: kubectl mqc ${form}`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof MqClientError) console.error(`kubectl mqc: ${err.code}: ${err.message}`);
    else if (isApiException(err)) console.error(`kubectl mqc: ${errorSummary(err)}`);
    else console.error(`kubectl mqc: ${(err as Error).message}`);
    process.exit(1);
  },
);
