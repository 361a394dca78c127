/**
 * The embedded stack, started one way for `make run` (tools/demo/kube-run.ts), the failover
 * benchmark (tools/bench/failover/stack.ts) and the end-to-end tests (test/support/operator.ts):
 * the control plane of hack/kube, the test kubelet (pods as local processes on loopback IPs), the
 * CRD, and the operator as a child process (`node dist/operator/main.js`), exactly as a user runs
 * it against a cluster. Callers differ only in options: where state and logs go, how big
 * mariadbd's buffers are, how the operator is configured and how hard it is stopped.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import winston from 'winston';
import { createLogger } from '../../src/common/logger.js';
import { type Kube, type StartKubeOptions, startKube } from './kube-control-plane.js';
import { kubectl } from './kubectl.js';
import { TestKubelet } from './kubelet/index.js';
import { REPO_ROOT, productMain } from './paths.js';

const CRDS = ['messagequeueclusters.mysqlmq.io', 'messagequeuetopics.mysqlmq.io'];

export interface EmbeddedStackOptions {
  /** Where kubelet.log and the operators' logs go. */
  stateDir: string;
  /** The test kubelet's state (pods, volumes, logs); default `<stateDir>/kubelet`. */
  kubeletStateDir?: string;
  /** Pod IPs are `<addressPrefix>.x`. */
  addressPrefix: string;
  /** my.cnf overrides of every mariadbd the kubelet runs (small buffers on a shared machine). */
  mariadbOverrides: Record<string, string>;
  kube?: StartKubeOptions;
  /** Progress, one line per phase (default: silent). */
  step?(text: string): void;
  /** Called between phases; throws to abandon the start (e.g. after Ctrl-C). */
  checkpoint?(): void;
}

export interface StartOperatorOptions {
  /** Added to (and overriding) the process env, KUBECONFIG and POD_IP. */
  env?: Record<string, string>;
  args?: string[];
  /** Default: the embedded control plane's admin kubeconfig. */
  kubeconfig?: string;
  /** Default: `<stateDir>/operator-<n>.log`. */
  logFile?: string;
  /** Its own process group, so a terminal's Ctrl-C reaches only the program that started it. */
  detached?: boolean;
}

export interface OperatorProcess {
  readonly child: ChildProcess;
  readonly logFile: string;
  /** Resolves with the exit code (null after a signal) once the process has exited. */
  readonly exited: Promise<number | null>;
  /** `code N` or `signal S`, once the process has exited. */
  readonly exitedHow: Promise<string>;
  /** Sends `signal` (SIGTERM: SIGKILL after `graceMs`) and waits until the process has exited. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
  logs(): string;
}

export const OPERATOR_MAIN = productMain('operator');

/** The control plane, the test kubelet and the CRD; operators are started with `startOperator`. */
export class EmbeddedStack {
  readonly operators: OperatorProcess[] = [];
  private stopping?: Promise<void>;

  private constructor(
    readonly opts: EmbeddedStackOptions,
    readonly kube: Kube,
    readonly kubelet: TestKubelet,
  ) {}

  get kubeconfig(): string {
    return this.kube.kubeconfigPath;
  }

  get stateDir(): string {
    return this.opts.stateDir;
  }

  kubectl(args: string[], input?: string): Promise<string> {
    return kubectl(this.kubeconfig, args, input);
  }

  /**
   * Starts everything but the operator. On a failure (or a throwing checkpoint) what was started
   * is stopped again before the error is rethrown.
   */
  static async start(opts: EmbeddedStackOptions): Promise<EmbeddedStack> {
    const step = opts.step ?? (() => undefined);
    const checkpoint = opts.checkpoint ?? (() => undefined);
    if (!existsSync(OPERATOR_MAIN)) throw new Error(`${OPERATOR_MAIN} is missing: run npm run build first`);
    step('starting the control plane (etcd, kube-apiserver, kube-controller-manager)');
    const kube = await startKube(opts.kube);
    let kubelet: TestKubelet | undefined;
    try {
      checkpoint();
      const kubeletLog = createLogger('test-kubelet', 'info');
      kubeletLog.clear();
      kubeletLog.add(new winston.transports.File({ filename: join(opts.stateDir, 'kubelet.log') }));
      step(`starting the test kubelet: nodes node-a, node-b; pod IPs ${opts.addressPrefix}.x`);
      kubelet = await TestKubelet.start({
        kc: kube.kc,
        stateDir: opts.kubeletStateDir ?? join(opts.stateDir, 'kubelet'),
        addressPrefix: opts.addressPrefix,
        nodes: ['node-a', 'node-b'],
        log: kubeletLog,
        mariadbOverrides: opts.mariadbOverrides,
      });
      checkpoint();
      step('installing the CRD (kubectl apply -f crds/)');
      await installCrd(kube.kubeconfigPath);
      checkpoint();
      return new EmbeddedStack(opts, kube, kubelet);
    } catch (err) {
      await kubelet?.stop().catch(() => undefined);
      await kube.stop().catch(() => undefined);
      throw err;
    }
  }

  startOperator(opts: StartOperatorOptions = {}): OperatorProcess {
    const logFile = opts.logFile ?? join(this.stateDir, `operator-${this.operators.length + 1}.log`);
    const op = spawnOperator({ kubeconfig: this.kubeconfig, ...opts, logFile });
    this.operators.push(op);
    return op;
  }

  /**
   * Stops the operators (with `operatorSignal`) and the kubelet (every mariadbd and broker) at
   * once, as neither needs the other, then the control plane. Safe to call twice.
   */
  stop(operatorSignal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    this.stopping ??= (async () => {
      const step = this.opts.step ?? (() => undefined);
      const stopOperators = async () => {
        const running = this.operators.filter(
          (o) => o.child.exitCode === null && o.child.signalCode === null,
        );
        if (running.length > 0) step('stopping the operator');
        await Promise.all(running.map((o) => o.stop(operatorSignal)));
      };
      const stopKubelet = async () => {
        step('stopping the test kubelet and every mariadbd and broker process it runs');
        await this.kubelet.stop();
      };
      await Promise.all([stopOperators(), stopKubelet()]).catch((err: unknown) =>
        console.error(`==> stopping failed: ${(err as Error).message}`),
      );
      step('stopping the control plane (kube-controller-manager, kube-apiserver, etcd)');
      await this.kube.stop().catch((err: unknown) => console.error(`==> ${(err as Error).message}`));
    })();
    return this.stopping;
  }
}

/** Applies crds/ and waits until its CRDs are Established. */
export async function installCrd(kubeconfig: string | undefined): Promise<void> {
  await kubectl(kubeconfig, ['apply', '-f', join(REPO_ROOT, 'crds')]);
  await kubectl(kubeconfig, [
    'wait',
    '--for=condition=Established',
    '--timeout=60s',
    ...CRDS.map((c) => `crd/${c}`),
  ]);
}

/**
 * `node dist/operator/main.js` with stdout and stderr in `logFile`, POD_IP 127.0.0.1 unless the
 * env says otherwise. Killed when this process exits.
 */
export function spawnOperator(opts: StartOperatorOptions & { logFile: string }): OperatorProcess {
  const { logFile } = opts;
  const fd = openSync(logFile, 'a');
  const child = spawn(process.execPath, [OPERATOR_MAIN, ...(opts.args ?? [])], {
    env: {
      ...process.env,
      ...(opts.kubeconfig ? { KUBECONFIG: opts.kubeconfig } : {}),
      POD_IP: '127.0.0.1',
      ...opts.env,
    },
    detached: opts.detached ?? false,
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  const status = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const killOnExit = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  void status.then(() => process.off('exit', killOnExit));
  return {
    child,
    logFile,
    exited: status.then((s) => s.code),
    exitedHow: status.then((s) => (s.signal ? `signal ${s.signal}` : `code ${s.code}`)),
    async stop(signal = 'SIGTERM', graceMs = 25_000) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const killer = signal === 'SIGKILL' ? undefined : setTimeout(() => child.kill('SIGKILL'), graceMs);
      await status;
      clearTimeout(killer);
    },
    logs: () => readFileSync(logFile, 'utf8'),
  };
}
