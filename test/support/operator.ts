/**
 * The operator end to end: the embedded control plane (test/support/kube.ts), the test kubelet
 * running pods as local processes, the CRD, and the operator as a child process
 * (`node dist/operator/main.js`), exactly as a user runs it against a cluster.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, openSync, closeSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import winston from 'winston';
import { createLogger } from '../../src/common/logger.js';
import { TestKubelet } from '../../tools/local/kubelet/index.js';
import { kubectl as runKubectl } from '../../tools/local/kubectl.js';
import type { MessageQueueCluster } from '../../src/operator/api/types.js';
import { type Kube, startKube } from './kube.js';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
const run = promisify(execFile);
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The operator and broker programs run from dist/: build once when a test run starts without them. */
export async function ensureBuilt(): Promise<void> {
  const mains = ['dist/operator/main.js', 'dist/broker/main.js'].map((f) => join(REPO, f));
  if (mains.every(existsSync)) return;
  await run('npx', ['tsc', '-p', join(REPO, 'tsconfig.json')], { cwd: REPO }).catch(() => undefined);
  for (const m of mains) if (!existsSync(m)) throw new Error(`${m} is missing: run npm run build`);
}

export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 60_000,
  everyMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`,
      );
    }
    await sleep(everyMs);
  }
}

export interface OperatorProcess {
  readonly child: ChildProcess;
  readonly logFile: string;
  /** Resolves with the exit code once the process has exited. */
  readonly exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<void>;
  logs(): string;
}

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

let operatorCount = 0;

/**
 * Starts the control plane, a 2-node test kubelet handing out pod IPs from `addressPrefix`, and
 * installs the CRD. The operator is started separately (tests restart and kill it).
 */
export async function startEnv(addressPrefix: string): Promise<Env> {
  await ensureBuilt();
  const kube = await startKube();
  const stateDir = await mkdtemp(join(tmpdir(), 'mq-e2e-'));
  const kubeletLog = createLogger('test-kubelet', 'info');
  kubeletLog.clear();
  kubeletLog.add(new winston.transports.File({ filename: join(stateDir, 'kubelet.log') }));
  const kubelet = await TestKubelet.start({
    kc: kube.kc,
    stateDir,
    addressPrefix,
    nodes: ['node-a', 'node-b'],
    log: kubeletLog,
    // Small InnoDB buffers: a 2-core test machine runs several clusters' mariadbd at once.
    mariadbOverrides: { innodb_buffer_pool_size: '32M', innodb_log_file_size: '16M' },
  });
  const kubeconfig = kube.kubeconfigPath;
  const kubectl = (args: string[], input?: string) => runKubectl(kubeconfig, args, input);
  await kubectl(['apply', '-f', join(REPO, 'crds')]);
  await waitFor(
    'the CRD to be established',
    async () =>
      (await kubectl([
        'get',
        'crd',
        'messagequeueclusters.mysqlmq.io',
        '-o',
        'jsonpath={.status.conditions[?(@.type=="Established")].status}',
      ])) === 'True',
  );
  const operators: OperatorProcess[] = [];
  const env: Env = {
    kube,
    kubelet,
    stateDir,
    kubeconfig,
    kubectl,
    apply: (yaml) => kubectl(['apply', '-f', '-'], yaml),
    async getCluster(namespace, name) {
      return JSON.parse(
        await kubectl(['get', 'mqc', name, '-n', namespace, '-o', 'json']),
      ) as MessageQueueCluster;
    },
    startOperator(opts = {}) {
      const n = ++operatorCount;
      const logFile = join(stateDir, `operator-${n}.log`);
      const fd = openSync(logFile, 'a');
      const child = spawn(process.execPath, [join(REPO, 'dist/operator/main.js'), ...(opts.args ?? [])], {
        env: {
          ...process.env,
          KUBECONFIG: opts.kubeconfig ?? kubeconfig,
          POD_IP: '127.0.0.1',
          HEALTH_PORT: '0',
          METRICS_PORT: '0',
          MQ_LOG_LEVEL: 'debug',
          ...opts.env,
        },
        stdio: ['ignore', fd, fd],
      });
      closeSync(fd);
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      const op: OperatorProcess = {
        child,
        logFile,
        exited,
        async stop(signal = 'SIGTERM') {
          if (child.exitCode === null && child.signalCode === null) child.kill(signal);
          await exited;
        },
        logs: () => readFileSync(logFile, 'utf8'),
      };
      operators.push(op);
      return op;
    },
    async stop() {
      await Promise.all(operators.map((o) => o.stop('SIGKILL')));
      await kubelet.stop();
      await kube.stop();
      if (!process.env.MQ_KEEP_KUBE) await rm(stateDir, { recursive: true, force: true });
    },
  };
  return env;
}

/** A cluster's condition of a type, from a fetched object. */
export function conditionOf(cr: MessageQueueCluster, type: string) {
  return cr.status?.conditions?.find((c) => c.type === type);
}
