/**
 * The failover benchmark's view of the embedded stack (tools/local/stack.ts, as `make run` starts
 * it) with the operator and one cluster. Watches of the cluster's pods and of the cluster object
 * keep their latest state here, with the time each change arrived.
 */
import { join } from 'node:path';
import { type Logger, createLogger } from '../../../src/common/logger.js';
import { DEFAULTS } from '../../../src/operator/api/defaults.js';
import type { MessageQueueCluster } from '../../../src/operator/api/types.js';
import { names } from '../../../src/operator/desired/meta.js';
import { TOKEN_KEY } from '../../../src/operator/desired/users.js';
import { freePort } from '../../local/kubectl.js';
import type { TestKubelet } from '../../local/kubelet/index.js';
import { Reflector } from '../../local/kubelet/reflector.js';
import { EmbeddedStack, type OperatorProcess } from '../../local/stack.js';

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
  stack?: EmbeddedStack;
  operator?: OperatorProcess;
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

  get kubelet(): TestKubelet | undefined {
    return this.stack?.kubelet;
  }

  kubectl(args: string[], input?: string): Promise<string> {
    return this.stack!.kubectl(args, input);
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
    this.stack = await EmbeddedStack.start({
      stateDir,
      addressPrefix: this.opts.addressPrefix,
      // As `make run`: four mariadbd share a 2-core machine.
      mariadbOverrides: { innodb_buffer_pool_size: '64M', innodb_log_file_size: '32M' },
      kube: {
        stateDir: join(stateDir, 'kube'),
        keepStateDir: true,
        // Its own process group: a Ctrl-C reaches this program only, which stops it in order.
        detached: true,
        onInstallOutput: (chunk) => process.stdout.write(chunk),
      },
      step,
      checkpoint,
    });
    await this.kubectl(['create', 'namespace', this.opts.namespace]);
    checkpoint();

    this.metricsPort = await freePort();
    this.healthPort = await freePort();
    this.metricsUrl = `http://127.0.0.1:${this.metricsPort}/metrics`;
    this.operatorLog = join(stateDir, 'operator.log');
    this.startOperator();

    const ns = this.opts.namespace;
    this.podReflector = new Reflector({
      kc: this.stack.kube.kc,
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
      kc: this.stack.kube.kc,
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
    this.operator = this.stack!.startOperator({
      logFile: this.operatorLog,
      detached: true,
      env: {
        METRICS_PORT: String(this.metricsPort),
        HEALTH_PORT: String(this.healthPort),
        WATCH_NAMESPACES: this.opts.namespace,
        MQ_LOG_LEVEL: this.opts.operatorLogLevel,
      },
    });
  }

  /** kill -9 of the operator; resolves once it is gone. */
  async killOperator(): Promise<void> {
    await this.operator?.stop('SIGKILL');
  }

  /** Stops everything this stack started; safe to call twice and after a partial start. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await Promise.all([this.podReflector?.stop(), this.clusterReflector?.stop()]);
      await this.stack?.stop('SIGTERM');
    })();
    return this.stopping;
  }

  /** The pod IP of a pod, from the watch. */
  podIP(name: string): string | undefined {
    return this.pods.get(name)?.status?.podIP || undefined;
  }

  /** The token of the cluster's admin user (Secret NAME-user-admin): its brokers authenticate every client. */
  async adminToken(): Promise<string> {
    const name = names.userSecret(this.opts.cluster, DEFAULTS.adminUser.name);
    const encoded = await this.kubectl([
      'get',
      'secret',
      name,
      '-n',
      this.opts.namespace,
      '-o',
      `jsonpath={.data.${TOKEN_KEY}}`,
    ]);
    if (!encoded) throw new Error(`Secret ${this.opts.namespace}/${name} has no key ${TOKEN_KEY}`);
    return Buffer.from(encoded, 'base64').toString('utf8');
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
