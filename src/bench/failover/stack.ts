/**
 * The embedded stack of the failover benchmark, as `make run` starts it (src/demo/kube-run.ts):
 * the control plane of hack/kube, the test kubelet (pods as local processes on loopback IPs), the
 * CRD, the operator as a child process (`node dist/operator/main.js`) and one cluster. Watches of
 * the cluster's pods and of the cluster object keep their latest state here, with the time each
 * change arrived.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { join } from 'node:path';
import winston from 'winston';
import { type Logger, createLogger } from '../../common/logger.js';
import { type Kube, REPO_ROOT, startKube } from '../../local/kube-control-plane.js';
import { TestKubelet } from '../../local/kubelet/index.js';
import { freePort, kubectl } from '../../local/kubectl.js';
import { Reflector } from '../../local/kubelet/reflector.js';
import type { MessageQueueCluster } from '../../operator/api/types.js';

export const OPERATOR_MAIN = join(REPO_ROOT, 'dist/operator/main.js');
const CRD = 'messagequeueclusters.mysqlmq.io';

export interface PodJson {
  metadata: { name: string; labels?: Record<string, string>; deletionTimestamp?: string };
  status?: {
    phase?: string;
    podIP?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: {
      name: string;
      ready: boolean;
      restartCount: number;
      state?: { running?: { startedAt?: string } };
    }[];
  };
}

export const podReady = (pod: PodJson | undefined): boolean =>
  pod?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

/** One observed change of a watched object, stamped when it arrived here. */
export interface Observed<T> {
  at: number;
  obj: T | undefined;
}

export interface StackOptions {
  stateDir: string;
  addressPrefix: string;
  namespace: string;
  cluster: string;
  /** Written to `<stateDir>/operator.log`; parsed by the trials. */
  operatorLogLevel: string;
  step(text: string): void;
}

export class Stack {
  kube?: Kube;
  kubelet?: TestKubelet;
  operator?: ChildProcess;
  operatorExited?: Promise<string>;
  operatorLog = '';
  private metricsPort = 0;
  private healthPort = 0;
  metricsUrl = '';
  /** Latest pod objects of the namespace, by name. */
  readonly pods = new Map<string, PodJson>();
  cluster?: MessageQueueCluster;
  private podListeners: ((name: string, o: Observed<PodJson>) => void)[] = [];
  private clusterListeners: ((o: Observed<MessageQueueCluster>) => void)[] = [];
  private podReflector?: Reflector<PodJson & { metadata: { namespace?: string } }>;
  private clusterReflector?: Reflector<MessageQueueCluster>;
  private readonly log: Logger;
  private stopping?: Promise<void>;

  constructor(readonly opts: StackOptions) {
    this.log = createLogger('bench-failover', 'warn');
  }

  get kubeconfig(): string {
    return this.kube!.kubeconfigPath;
  }

  kubectl(args: string[], input?: string): Promise<string> {
    return kubectl(this.kubeconfig, args, input);
  }

  onPod(listener: (name: string, o: Observed<PodJson>) => void): () => void {
    this.podListeners.push(listener);
    return () => (this.podListeners = this.podListeners.filter((l) => l !== listener));
  }

  onCluster(listener: (o: Observed<MessageQueueCluster>) => void): () => void {
    this.clusterListeners.push(listener);
    return () => (this.clusterListeners = this.clusterListeners.filter((l) => l !== listener));
  }

  /** Control plane, kubelet, CRD, operator; `checkpoint` throws when the run was interrupted. */
  async start(checkpoint: () => void): Promise<void> {
    const { stateDir, step } = this.opts;
    if (!existsSync(OPERATOR_MAIN)) throw new Error(`${OPERATOR_MAIN} is missing: run npm run build first`);
    step('starting the control plane (etcd, kube-apiserver, kube-controller-manager)');
    this.kube = await startKube({
      stateDir: join(stateDir, 'kube'),
      keepStateDir: true,
      // Its own process group: a Ctrl-C reaches this program only, which stops it in order.
      detached: true,
      onInstallOutput: (chunk) => process.stdout.write(chunk),
    });
    checkpoint();

    const kubeletLog = createLogger('test-kubelet', 'info');
    kubeletLog.clear();
    kubeletLog.add(new winston.transports.File({ filename: join(stateDir, 'kubelet.log') }));
    step(`starting the test kubelet: nodes node-a, node-b; pod IPs ${this.opts.addressPrefix}.x`);
    this.kubelet = await TestKubelet.start({
      kc: this.kube.kc,
      stateDir: join(stateDir, 'kubelet'),
      addressPrefix: this.opts.addressPrefix,
      nodes: ['node-a', 'node-b'],
      log: kubeletLog,
      // As `make run`: four mariadbd share a 2-core machine.
      mariadbOverrides: { innodb_buffer_pool_size: '64M', innodb_log_file_size: '32M' },
    });
    checkpoint();

    step('installing the CRD');
    await this.kubectl(['apply', '-f', join(REPO_ROOT, 'crds')]);
    await this.kubectl(['wait', '--for=condition=Established', '--timeout=60s', `crd/${CRD}`]);
    await this.kubectl(['create', 'namespace', this.opts.namespace]);
    checkpoint();

    this.metricsPort = await freePort();
    this.healthPort = await freePort();
    this.metricsUrl = `http://127.0.0.1:${this.metricsPort}/metrics`;
    this.operatorLog = join(stateDir, 'operator.log');
    this.startOperator();

    const ns = this.opts.namespace;
    this.podReflector = new Reflector({
      kc: this.kube.kc,
      path: `/api/v1/namespaces/${ns}/pods`,
      log: this.log,
      onChange: (key, pod) => {
        const at = Date.now();
        const name = key.split('/')[1] ?? key;
        if (pod) this.pods.set(name, pod);
        else this.pods.delete(name);
        for (const l of this.podListeners) l(name, { at, obj: pod });
      },
    });
    this.clusterReflector = new Reflector<MessageQueueCluster>({
      kc: this.kube.kc,
      path: `/apis/mysqlmq.io/v1alpha1/namespaces/${ns}/messagequeueclusters`,
      log: this.log,
      onChange: (key, cr) => {
        if (key !== `${ns}/${this.opts.cluster}`) return;
        const at = Date.now();
        this.cluster = cr;
        for (const l of this.clusterListeners) l({ at, obj: cr });
      },
    });
    await Promise.all([this.podReflector.start(), this.clusterReflector.start()]);
  }

  /** Starts `node dist/operator/main.js`, appending to the operator log. */
  startOperator(): void {
    this.opts.step(`starting the operator (node dist/operator/main.js; log ${this.operatorLog})`);
    const fd = openSync(this.operatorLog, 'a');
    const child = spawn(process.execPath, [OPERATOR_MAIN], {
      env: {
        ...process.env,
        KUBECONFIG: this.kubeconfig,
        POD_IP: '127.0.0.1',
        METRICS_PORT: String(this.metricsPort),
        HEALTH_PORT: String(this.healthPort),
        WATCH_NAMESPACES: this.opts.namespace,
        MQ_LOG_LEVEL: this.opts.operatorLogLevel,
      },
      detached: true,
      stdio: ['ignore', fd, fd],
    });
    closeSync(fd);
    this.operator = child;
    this.operatorExited = new Promise((resolve) =>
      child.on('exit', (code, signal) => resolve(signal ? `signal ${signal}` : `code ${code}`)),
    );
    process.once('exit', () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
  }

  /** kill -9 of the operator; resolves once it is gone. */
  async killOperator(): Promise<void> {
    this.operator?.kill('SIGKILL');
    await this.operatorExited;
  }

  /** Stops everything this stack started; safe to call twice and after a partial start. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await Promise.all([this.podReflector?.stop(), this.clusterReflector?.stop()]);
      const op = this.operator;
      const stopOperator = async () => {
        if (!op || op.exitCode !== null || op.signalCode !== null) return;
        this.opts.step('stopping the operator');
        op.kill('SIGTERM');
        const killer = setTimeout(() => op.kill('SIGKILL'), 25_000);
        await this.operatorExited;
        clearTimeout(killer);
      };
      const stopKubelet = async () => {
        if (!this.kubelet) return;
        this.opts.step('stopping the test kubelet and every mariadbd and broker it runs');
        await this.kubelet.stop();
      };
      await Promise.all([stopOperator(), stopKubelet()]).catch((err: unknown) =>
        console.error(`==> stopping failed: ${(err as Error).message}`),
      );
      if (this.kube) {
        this.opts.step('stopping the control plane');
        await this.kube.stop().catch((err: unknown) => console.error(`==> ${(err as Error).message}`));
      }
    })();
    return this.stopping;
  }

  /** The pod IP of a pod, from the watch. */
  podIP(name: string): string | undefined {
    return this.pods.get(name)?.status?.podIP || undefined;
  }

  /** Base URLs of the cluster's broker pods that have an IP. */
  brokerUrls(port: number): string[] {
    return [...this.pods.values()]
      .filter(
        (p) =>
          p.metadata.labels?.['app.kubernetes.io/component'] === 'broker' &&
          p.metadata.labels?.['mysqlmq.io/cluster'] === this.opts.cluster &&
          !p.metadata.deletionTimestamp &&
          p.status?.podIP,
      )
      .map((p) => `http://${p.status!.podIP}:${port}`)
      .sort();
  }

  /** Text of the operator's Prometheus metrics, or '' when it does not answer. */
  async operatorMetrics(): Promise<string> {
    try {
      const res = await fetch(this.metricsUrl, { signal: AbortSignal.timeout(5000) });
      return await res.text();
    } catch {
      return '';
    }
  }
}
