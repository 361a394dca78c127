/**
 * The operator end to end: the embedded stack of tools/local/stack.ts (control plane, test
 * kubelet running pods as local processes, CRD) and the operator as a child process
 * (`node dist/operator/main.js`), exactly as a user runs it against a cluster. dist/ is rebuilt
 * when stale by test/support/global-setup.ts.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  DEFAULTS,
  brokersServeTls,
  defaultCluster,
  instancesRequireTls,
} from '../../src/operator/api/defaults.js';
import { CA_CERT_KEY } from '../../src/operator/desired/broker-tls.js';
import { MYSQL_ADMIN_USER } from '../../src/operator/desired/credentials.js';
import { mysqlServerName } from '../../src/operator/desired/mysql-tls.js';
import type { Credentials } from '../../src/shard/connection.js';
import {
  COMPONENT_BROKER,
  LABEL_CLUSTER,
  LABEL_COMPONENT,
  type MessageQueueCluster,
} from '../../src/operator/api/types.js';
import { names } from '../../src/operator/desired/meta.js';
import { TOKEN_KEY } from '../../src/operator/desired/users.js';
import type { TestKubelet } from '../../tools/local/kubelet/index.js';
import { EmbeddedStack, type OperatorProcess } from '../../tools/local/stack.js';
import type { Kube } from './kube.js';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));

export { sleep } from '../../src/common/deadline.js';
/** Builds dist/ when a source is newer (the global setup does it once per run already). */
export { default as ensureBuilt } from './global-setup.js';
export { waitFor } from '../../tools/local/wait.js';
export type { OperatorProcess };

/** A Pod as the tests read it (`kubectl get pods -o json`): the fields they look at. */
export interface PodJson {
  metadata: {
    name: string;
    uid: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    deletionTimestamp?: string;
  };
  spec: {
    nodeName?: string;
    affinity?: { podAntiAffinity?: Record<string, unknown> };
    containers: {
      name: string;
      image?: string;
      args?: string[];
      ports?: { name?: string; containerPort: number }[];
    }[];
  };
  status?: {
    phase?: string;
    podIP?: string;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
    containerStatuses?: { name: string; ready: boolean; restartCount: number }[];
    initContainerStatuses?: { name: string; state?: { terminated?: { exitCode: number } } }[];
  };
}

/** What a client of an operator-made cluster needs: its brokers' URLs and the admin user's token. */
export interface BrokerClient {
  brokers: string[];
  token: string;
  /** With HTTPS brokers: the CA to verify them and the Service name their certificate carries. */
  ca?: string;
  serverName?: string;
}

export interface Env {
  kube: Kube;
  kubelet: TestKubelet;
  stateDir: string;
  kubeconfig: string;
  kubectl(args: string[], input?: string): Promise<string>;
  apply(yaml: string): Promise<string>;
  getCluster(namespace: string, name: string): Promise<MessageQueueCluster>;
  /** Pods of `namespace` matching a label selector, terminating ones included. */
  pods(namespace: string, selector: string): Promise<PodJson[]>;
  /** Key `key` of Secret `name`, decoded; throws when the Secret or key is missing. */
  secretValue(namespace: string, name: string, key: string): Promise<string>;
  /**
   * The cluster's broker Pods that have an IP (`ready`: only Running ones whose containers are
   * ready), as URLs on the cluster's scheme and port, and the token of its `admin` user (Secret
   * `NAME-user-admin`): authentication is on by default, so every client needs one.
   */
  brokerClient(namespace: string, cluster: string, opts?: { ready?: boolean }): Promise<BrokerClient>;
  /**
   * How a test logs in to the cluster's instances as `user` (password from key `passwordKey` of
   * `NAME-credentials`): with the CA and server name when they require TLS (`connectionOptions`).
   */
  mysqlCredentials(
    namespace: string,
    cluster: string,
    user?: string,
    passwordKey?: string,
  ): Promise<Credentials>;
  startOperator(opts?: {
    env?: Record<string, string>;
    args?: string[];
    kubeconfig?: string;
  }): OperatorProcess;
  stop(): Promise<void>;
}

/**
 * Starts the control plane, a 2-node test kubelet handing out pod IPs from `addressPrefix`, and
 * installs the CRD (tools/local/stack.ts). The operator is started separately (tests restart and
 * kill it).
 */
export async function startEnv(addressPrefix: string): Promise<Env> {
  const stateDir = await mkdtemp(join(tmpdir(), 'mq-e2e-'));
  const stack = await EmbeddedStack.start({
    stateDir,
    kubeletStateDir: stateDir,
    addressPrefix,
    // Small InnoDB buffers: a 2-core test machine runs several clusters' mariadbd at once.
    mariadbOverrides: { innodb_buffer_pool_size: '32M', innodb_log_file_size: '16M' },
  });
  const kubectl = (args: string[], input?: string) => stack.kubectl(args, input);
  const getCluster = async (namespace: string, name: string) =>
    JSON.parse(await kubectl(['get', 'mqc', name, '-n', namespace, '-o', 'json'])) as MessageQueueCluster;
  const pods = async (namespace: string, selector: string) =>
    (
      JSON.parse(await kubectl(['get', 'pods', '-n', namespace, '-l', selector, '-o', 'json'])) as {
        items: PodJson[];
      }
    ).items;
  const secretValue = async (namespace: string, name: string, key: string) => {
    const encoded = await kubectl([
      'get',
      'secret',
      name,
      '-n',
      namespace,
      '-o',
      `jsonpath={.data.${key.replace(/\./g, '\\.')}}`,
    ]);
    if (!encoded) throw new Error(`Secret ${namespace}/${name} has no key ${key}`);
    return Buffer.from(encoded, 'base64').toString('utf8');
  };
  return {
    kube: stack.kube,
    kubelet: stack.kubelet,
    stateDir,
    kubeconfig: stack.kubeconfig,
    kubectl,
    apply: (yaml) => kubectl(['apply', '-f', '-'], yaml),
    getCluster,
    pods,
    secretValue,
    async brokerClient(namespace, cluster, opts = {}) {
      const [cr, list, token] = await Promise.all([
        getCluster(namespace, cluster),
        pods(namespace, `${LABEL_CLUSTER}=${cluster},${LABEL_COMPONENT}=${COMPONENT_BROKER}`),
        secretValue(namespace, names.userSecret(cluster, DEFAULTS.adminUser.name), TOKEN_KEY),
      ]);
      const tls = brokersServeTls(cr);
      const scheme = tls ? 'https' : 'http';
      const port = cr.spec?.brokers?.port ?? DEFAULTS.brokers.port;
      const brokers = list
        .filter((p) => p.status?.podIP && !p.metadata.deletionTimestamp)
        .filter(
          (p) =>
            !opts.ready ||
            (p.status?.phase === 'Running' && p.status.containerStatuses?.every((c) => c.ready)),
        )
        .map((p) => `${scheme}://${p.status!.podIP}:${port}`);
      if (!tls) return { brokers, token };
      const ca = await secretValue(
        namespace,
        cr.spec?.brokers?.tls?.secretName ?? names.brokerTls(cluster),
        CA_CERT_KEY,
      );
      return { brokers, token, ca, serverName: `${names.broker(cluster)}.${namespace}.svc` };
    },
    async mysqlCredentials(namespace, cluster, user = MYSQL_ADMIN_USER, passwordKey = 'admin-password') {
      const cr = await getCluster(namespace, cluster);
      const password = await secretValue(namespace, names.credentials(cluster), passwordKey);
      if (!instancesRequireTls(cr)) return { user, password };
      const ca = await secretValue(namespace, names.mysqlTls(cluster), CA_CERT_KEY);
      return { user, password, tls: { ca, serverName: mysqlServerName(defaultCluster(cr)) } };
    },
    startOperator: (opts = {}) =>
      stack.startOperator({
        ...opts,
        env: { HEALTH_PORT: '0', METRICS_PORT: '0', MQ_LOG_LEVEL: 'debug', ...opts.env },
      }),
    async stop() {
      await stack.stop('SIGKILL');
      if (!process.env.MQ_KEEP_KUBE) await rm(stateDir, { recursive: true, force: true });
    },
  };
}

/** A cluster's condition of a type, from a fetched object. */
export function conditionOf(cr: MessageQueueCluster, type: string) {
  return cr.status?.conditions?.find((c) => c.type === type);
}
