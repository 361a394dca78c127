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
import type { MessageQueueCluster } from '../../src/operator/api/types.js';
import type { TestKubelet } from '../../tools/local/kubelet/index.js';
import { EmbeddedStack, type OperatorProcess } from '../../tools/local/stack.js';
import type { Kube } from './kube.js';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));

export { sleep } from '../../src/common/deadline.js';
/** Builds dist/ when a source is newer (the global setup does it once per run already). */
export { default as ensureBuilt } from './global-setup.js';
export { waitFor } from '../../tools/local/wait.js';
export type { OperatorProcess };

export interface Env {
  kube: Kube;
  kubelet: TestKubelet;
  stateDir: string;
  kubeconfig: string;
  kubectl(args: string[], input?: string): Promise<string>;
  apply(yaml: string): Promise<string>;
  getCluster(namespace: string, name: string): Promise<MessageQueueCluster>;
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
  return {
    kube: stack.kube,
    kubelet: stack.kubelet,
    stateDir,
    kubeconfig: stack.kubeconfig,
    kubectl,
    apply: (yaml) => kubectl(['apply', '-f', '-'], yaml),
    async getCluster(namespace, name) {
      return JSON.parse(
        await kubectl(['get', 'mqc', name, '-n', namespace, '-o', 'json']),
      ) as MessageQueueCluster;
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
