import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CoordinationV1Api,
  CoreV1Api,
  KubeConfig,
  type V1PersistentVolumeClaim,
  type V1Pod,
  VersionApi,
} from '@kubernetes/client-node';
import { type Logger, createLogger } from '../../../src/common/logger.js';
import { AddressPool } from './addresses.js';
import { sleep } from '../../../src/common/deadline.js';
import { errorSummary, isConflict, isNotFound } from '../../../src/k8s/client.js';
import { errorCode } from './api.js';
import { defaultAgentMain, defaultBrokerMain, defaultOperatorMain } from './containers.js';
import { ObjectLookup } from './env.js';
import { NodeAgent, mergePatch } from './nodes.js';
import { PodWorker } from './pod-worker.js';
import { Reflector } from './reflector.js';
import { type PlacedPod, feasibleNodes } from './scheduling.js';
import { type ApiServerEndpoint, endpointOf } from './service-account.js';
import { pvcDir, pvcUidFile } from './volumes.js';

export interface TestKubeletOptions {
  /** Path of a kubeconfig (e.g. the one hack/kube/start.sh writes). */
  kubeconfigPath?: string;
  /** Or a loaded KubeConfig; with neither, the default kubeconfig is used. */
  kc?: KubeConfig;
  /** Holds pod directories (`pods/<ns>/<pod>`), PVC data (`pvc/<ns>/<claim>`) and runtime files. */
  stateDir: string;
  /** Pod IPs come from here: a loopback CIDR ("127.1.0.0/16") or leading octets ("127.1"). */
  addressPrefix: string;
  /** Node names (default `['local-node-a']`). */
  nodes?: string[];
  log?: Logger;
  /** The nodes' InternalIP and the pods' hostIP (default 127.0.0.1). */
  hostIP?: string;
  /** Node capacity = allocatable (default cpu 8, memory 16Gi, pods 110, ephemeral-storage 50Gi). */
  capacity?: Record<string, string>;
  /** The broker script (default: dist/broker/main.js of this repository). */
  brokerMain?: string;
  /**
   * The operator script that `operator` containers run instead of the image's
   * /app/dist/operator/main.js (default: dist/operator/main.js of this repository). The process
   * gets KUBECONFIG = its pod's ServiceAccount (token Secret), POD_IP, and the container's env.
   */
  operatorMain?: string;
  /** The agent of MariaDB pods (`agent` and `seed` containers); default dist/agent/main.js. */
  agentMain?: string;
  /**
   * my.cnf settings applied after the mounted ones, e.g. smaller InnoDB sizes for a small machine
   * (default none: the ConfigMap applies as written, apart from local paths and the address).
   */
  mariadbOverrides?: Record<string, string>;
  /** Bind Pending PVCs to a local hostPath PV, as a dynamic provisioner would (default true). */
  provisionVolumes?: boolean;
  /** Readiness probe and ConfigMap refresh period (default 1000 ms). */
  probeIntervalMs?: number;
  /** terminationGracePeriodSeconds is capped at this (default 30). */
  maxGracePeriodSeconds?: number;
}

const DEFAULT_CAPACITY = { cpu: '8', memory: '16Gi', pods: '110', 'ephemeral-storage': '50Gi' };
const SHARD_LABEL = 'mysqlmq.io/shard';
const PROVISIONER = 'mysqlmq.io/test-kubelet';

const isTerminal = (pod: V1Pod) => pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';

/**
 * A kubelet (plus a tiny scheduler and volume provisioner) for the embedded control plane of
 * hack/kube: it registers Ready nodes and keeps them alive, binds unscheduled pods, and runs each
 * bound pod's containers as local processes on a loopback pod IP (`mariadb` as mariadbd via
 * LocalMariaDb, `broker` as `node dist/broker/main.js`, `operator` as `node dist/operator/main.js`
 * authenticated as the pod's ServiceAccount), reporting pod status as a kubelet does.
 */
export class TestKubelet {
  private readonly workers = new Map<string, PodWorker>();
  /** Workers of pods gone from the API, until their processes are gone (a same-name pod waits). */
  private readonly retiring = new Map<string, Promise<void>>();
  private readonly agents: NodeAgent[] = [];
  private readonly pool: AddressPool;
  private readonly core: CoreV1Api;
  private readonly coordination: CoordinationV1Api;
  private readonly lookup: ObjectLookup;
  private readonly log: Logger;
  private podReflector?: Reflector<V1Pod>;
  private pvcReflector?: Reflector<V1PersistentVolumeClaim>;
  private readonly pvcUids = new Map<string, string>();
  private readonly scheduleQueue = new Set<string>();
  private scheduling = false;
  /** Pods bound by us that the watch has not shown bound yet (uid -> node), for spreading. */
  private readonly assumed = new Map<string, string>();
  /** The scheduler message last written to each unschedulable pod (by uid). */
  private readonly unschedulableReported = new Map<string, string>();
  /** Pods no node fits now (keys), tried again when a pod goes away. */
  private readonly unschedulable = new Set<string>();
  private stopped = false;
  private readonly brokerMain: string;
  private readonly operatorMain: string;
  private readonly agentMain: string;
  private readonly apiServer: ApiServerEndpoint;
  private unlockRange?: () => void;

  private constructor(
    readonly kc: KubeConfig,
    private readonly options: TestKubeletOptions,
  ) {
    this.log = options.log ?? createLogger('test-kubelet');
    this.pool = new AddressPool(options.addressPrefix);
    this.core = kc.makeApiClient(CoreV1Api);
    this.coordination = kc.makeApiClient(CoordinationV1Api);
    this.lookup = new ObjectLookup(this.core);
    this.brokerMain = options.brokerMain ?? defaultBrokerMain();
    this.operatorMain = options.operatorMain ?? defaultOperatorMain();
    this.agentMain = options.agentMain ?? defaultAgentMain();
    this.apiServer = endpointOf(kc);
  }

  static async start(options: TestKubeletOptions): Promise<TestKubelet> {
    let kc = options.kc;
    if (!kc) {
      kc = new KubeConfig();
      if (options.kubeconfigPath) kc.loadFromFile(options.kubeconfigPath);
      else kc.loadFromDefault();
    }
    const kubelet = new TestKubelet(kc, options);
    try {
      await kubelet.init();
    } catch (err) {
      await kubelet.stop();
      throw err;
    }
    return kubelet;
  }

  /** The names of the nodes this kubelet runs. */
  get nodeNames(): string[] {
    return this.agents.map((a) => a.name);
  }

  private get hostIP(): string {
    return this.options.hostIP ?? '127.0.0.1';
  }

  private async init(): Promise<void> {
    this.unlockRange = this.pool.lock();
    const names = this.options.nodes?.length ? this.options.nodes : ['local-node-a'];
    let kubeletVersion = 'v1.20.0';
    try {
      kubeletVersion = (await this.kc.makeApiClient(VersionApi).getCode()).gitVersion;
    } catch (err) {
      this.log.warn('could not read the apiserver version', { error: errorSummary(err) });
    }
    for (const name of names) {
      const agent = new NodeAgent({
        name,
        hostIP: this.hostIP,
        capacity: this.options.capacity ?? DEFAULT_CAPACITY,
        labels: NodeAgent.defaultLabels(name),
        kubeletVersion,
        core: this.core,
        coordination: this.coordination,
        log: this.log,
      });
      await agent.register();
      agent.start();
      this.agents.push(agent);
    }

    this.pvcReflector = new Reflector<V1PersistentVolumeClaim>({
      kc: this.kc,
      path: '/api/v1/persistentvolumeclaims',
      log: this.log,
      onChange: (key, pvc) =>
        void this.onPvc(key, pvc).catch((err: unknown) =>
          this.log.warn('pvc handling failed', { pvc: key, error: errorSummary(err) }),
        ),
    });
    await this.pvcReflector.start();
    await this.collectOrphanedVolumes();

    this.podReflector = new Reflector<V1Pod>({
      kc: this.kc,
      path: '/api/v1/pods',
      log: this.log,
      onChange: (key, pod) => this.onPod(key, pod),
    });
    await this.podReflector.start();
    this.log.info('test kubelet running', {
      nodes: this.nodeNames,
      addressPrefix: this.options.addressPrefix,
      stateDir: this.options.stateDir,
    });
  }

  // --- fault injection / inspection --------------------------------------------

  /** The pod IP this kubelet gave the pod (undefined if it does not run it). */
  podIP(namespace: string, podName: string): string | undefined {
    return this.workers.get(`${namespace}/${podName}`)?.ip;
  }

  /** The pid of a container's current process. */
  containerPid(namespace: string, podName: string, containerName: string): number | undefined {
    return this.workers.get(`${namespace}/${podName}`)?.containerPid(containerName);
  }

  /**
   * Sends `signal` to a container's process, as a crash would. With SIGKILL it resolves once the
   * process is gone. The kubelet then reports it and restarts it per restartPolicy. Throws if the
   * container is not running.
   */
  async killContainer(
    namespace: string,
    podName: string,
    containerName: string,
    signal: NodeJS.Signals = 'SIGKILL',
  ): Promise<void> {
    const worker = this.workers.get(`${namespace}/${podName}`);
    if (!worker || !(await worker.signal(containerName, signal))) {
      throw new Error(`container ${containerName} of pod ${namespace}/${podName} is not running here`);
    }
  }

  /** Kills every process this kubelet started and stops its watches and heartbeats. Pods keep their last status. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const agent of this.agents) agent.stop();
    await Promise.all([this.podReflector?.stop(), this.pvcReflector?.stop()]);
    await Promise.all([...this.workers.values()].map((w) => w.terminate('stop')));
    await Promise.all(this.retiring.values());
    this.unlockRange?.();
    this.workers.clear();
    this.log.info('test kubelet stopped');
  }

  // --- pods ---------------------------------------------------------------------

  private onPod(key: string, pod: V1Pod | undefined): void {
    if (this.stopped) return;
    const worker = this.workers.get(key);
    if (!pod) {
      this.unschedulable.delete(key);
      // A pod gone may have been what kept an unschedulable one off a node.
      for (const waiting of this.unschedulable) this.enqueueSchedule(waiting);
      if (worker) {
        this.workers.delete(key);
        this.log.info('pod gone from the API; killing its processes', { pod: key });
        this.retire(key, worker);
      }
      return;
    }
    const uid = pod.metadata?.uid ?? '';
    if (worker && worker.uid !== uid) {
      // The pod was deleted and re-created under the same name between two events.
      this.workers.delete(key);
      this.retire(key, worker);
    }
    const nodeName = pod.spec?.nodeName;
    if (!nodeName) {
      if (!pod.metadata?.deletionTimestamp) this.enqueueSchedule(key);
      return;
    }
    this.assumed.delete(uid);
    this.unschedulable.delete(key);
    if (!this.nodeNames.includes(nodeName)) return;
    let w = this.workers.get(key);
    if (!w) {
      if (isTerminal(pod)) {
        // Nothing runs for a finished pod; a graceful delete only needs the final removal.
        if (pod.metadata?.deletionTimestamp) void this.deleteFinishedPod(pod);
        return;
      }
      w = new PodWorker(pod, nodeName, {
        core: this.core,
        lookup: this.lookup,
        log: this.log,
        stateDir: this.options.stateDir,
        hostIP: this.hostIP,
        brokerMain: this.brokerMain,
        operatorMain: this.operatorMain,
        agentMain: this.agentMain,
        apiServer: this.apiServer,
        mariadbOverrides: this.options.mariadbOverrides ?? {},
        probeIntervalMs: this.options.probeIntervalMs ?? 1000,
        maxGracePeriodSeconds: this.options.maxGracePeriodSeconds ?? 30,
        allocateIP: (preferred) =>
          preferred && this.pool.claim(preferred) ? preferred : this.pool.allocate(),
        releaseIP: (ip) => this.pool.release(ip),
      });
      this.workers.set(key, w);
      w.start(this.retiring.get(key));
    }
    w.update(pod);
  }

  private retire(key: string, worker: PodWorker): void {
    const done: Promise<void> = worker.terminate('kill').finally(() => {
      if (this.retiring.get(key) === done) this.retiring.delete(key);
    });
    this.retiring.set(key, done);
  }

  private async deleteFinishedPod(pod: V1Pod): Promise<void> {
    try {
      await this.core.deleteNamespacedPod({
        name: pod.metadata!.name!,
        namespace: pod.metadata!.namespace!,
        gracePeriodSeconds: 0,
        body: { gracePeriodSeconds: 0, preconditions: { uid: pod.metadata!.uid } },
      });
    } catch (err) {
      if (!isNotFound(err) && errorCode(err) !== 409) {
        this.log.warn('deleting a finished pod failed', {
          pod: pod.metadata?.name,
          error: errorSummary(err),
        });
      }
    }
  }

  // --- scheduling ---------------------------------------------------------------

  private enqueueSchedule(key: string): void {
    this.scheduleQueue.add(key);
    if (!this.scheduling) void this.drainScheduleQueue();
  }

  private async drainScheduleQueue(): Promise<void> {
    this.scheduling = true;
    try {
      while (this.scheduleQueue.size && !this.stopped) {
        const key = this.scheduleQueue.values().next().value as string;
        this.scheduleQueue.delete(key);
        const pod = this.podReflector?.store.get(key);
        if (!pod || pod.spec?.nodeName || pod.metadata?.deletionTimestamp) continue;
        if (this.assumed.has(pod.metadata?.uid ?? '')) continue;
        const scheduler = pod.spec?.schedulerName;
        if (scheduler && scheduler !== 'default-scheduler') continue;
        await this.bind(key, pod);
      }
    } finally {
      this.scheduling = false;
    }
  }

  /**
   * The node for a pod: among those the scheduler's filters allow (`feasibleNodes`: nodeSelector,
   * required pod anti-affinity both ways), the least loaded with pods of its shard, then with
   * pods. Undefined with the reason when none fits.
   */
  private pickNode(pod: V1Pod): { node?: string; message?: string } {
    const placed: PlacedPod[] = [];
    for (const other of this.podReflector?.store.values() ?? []) {
      if (isTerminal(other)) continue;
      const node = other.spec?.nodeName ?? this.assumed.get(other.metadata?.uid ?? '');
      if (node) placed.push({ pod: other, node });
    }
    const { nodes: fits, message } = feasibleNodes(
      pod,
      this.agents.map((a) => ({ name: a.name, labels: a.labels })),
      placed,
    );
    if (!fits.length) return { message };
    const ns = pod.metadata?.namespace;
    const shard = pod.metadata?.labels?.[SHARD_LABEL];
    const load = new Map<string, { shard: number; all: number }>(
      fits.map((a) => [a.name, { shard: 0, all: 0 }]),
    );
    for (const { pod: other, node } of placed) {
      const l = load.get(node);
      if (!l || other.metadata?.uid === pod.metadata?.uid) continue;
      l.all++;
      if (
        shard !== undefined &&
        other.metadata?.namespace === ns &&
        other.metadata?.labels?.[SHARD_LABEL] === shard
      ) {
        l.shard++;
      }
    }
    const node = [...fits].sort((a, b) => {
      const la = load.get(a.name)!;
      const lb = load.get(b.name)!;
      return la.shard - lb.shard || la.all - lb.all;
    })[0]!.name;
    return { node };
  }

  private async bind(key: string, pod: V1Pod): Promise<void> {
    const name = pod.metadata!.name!;
    const namespace = pod.metadata!.namespace!;
    const uid = pod.metadata!.uid!;
    const { node, message = '' } = this.pickNode(pod);
    if (!node) {
      // Tried again whenever a pod goes away (kube-scheduler retries on cluster changes too).
      this.unschedulable.add(key);
      if (this.unschedulableReported.get(uid) !== message) {
        this.unschedulableReported.set(uid, message);
        this.log.warn('pod unschedulable', { pod: key, detail: message });
        await this.core
          .patchNamespacedPodStatus(
            {
              name,
              namespace,
              body: {
                status: {
                  conditions: [
                    {
                      type: 'PodScheduled',
                      status: 'False',
                      reason: 'Unschedulable',
                      message,
                      lastProbeTime: null,
                    },
                  ],
                },
              },
            },
            mergePatch(),
          )
          .catch(() => undefined);
      }
      return;
    }
    try {
      await this.core.createNamespacedPodBinding({
        name,
        namespace,
        body: {
          apiVersion: 'v1',
          kind: 'Binding',
          metadata: { name, namespace, uid },
          target: { apiVersion: 'v1', kind: 'Node', name: node },
        },
      });
      this.assumed.set(uid, node);
      this.log.info('pod bound', { pod: key, node });
    } catch (err) {
      const code = errorCode(err);
      if (code === 404 || code === 409) return; // gone, or bound meanwhile
      this.log.warn('binding failed; retrying', { pod: key, error: errorSummary(err) });
      void sleep(1000).then(() => {
        if (!this.stopped) this.enqueueSchedule(key);
      });
    }
  }

  // --- volumes ------------------------------------------------------------------

  private async onPvc(key: string, pvc: V1PersistentVolumeClaim | undefined): Promise<void> {
    if (this.stopped) return;
    const [namespace, name] = key.split('/') as [string, string];
    if (!pvc) {
      const uid = this.pvcUids.get(key);
      this.pvcUids.delete(key);
      const dir = pvcDir(this.options.stateDir, namespace, name);
      const owner = await readFile(pvcUidFile(dir), 'utf8').catch(() => undefined);
      if (owner === undefined || owner === uid) {
        await rm(dir, { recursive: true, force: true });
        await rm(pvcUidFile(dir), { force: true });
        this.log.info('pvc deleted; its data removed', { pvc: key });
      }
      if (uid && this.options.provisionVolumes !== false) {
        await this.core.deletePersistentVolume({ name: `pvc-${uid}` }).catch((err: unknown) => {
          if (!isNotFound(err))
            this.log.warn('deleting a pv failed', { pv: `pvc-${uid}`, error: errorSummary(err) });
        });
      }
      return;
    }
    const uid = pvc.metadata?.uid ?? '';
    this.pvcUids.set(key, uid);
    if (this.options.provisionVolumes === false) return;
    if (pvc.spec?.volumeName || pvc.status?.phase === 'Bound' || pvc.metadata?.deletionTimestamp) return;
    // A pre-bound PV, which the controller-manager's PV binder then binds to the claim.
    try {
      await this.core.createPersistentVolume({
        body: {
          apiVersion: 'v1',
          kind: 'PersistentVolume',
          metadata: {
            name: `pvc-${uid}`,
            annotations: { 'pv.kubernetes.io/provisioned-by': PROVISIONER },
          },
          spec: {
            capacity: { storage: pvc.spec?.resources?.requests?.storage ?? '1Gi' },
            accessModes: pvc.spec?.accessModes?.length ? pvc.spec.accessModes : ['ReadWriteOnce'],
            storageClassName: pvc.spec?.storageClassName ?? '',
            volumeMode: pvc.spec?.volumeMode ?? 'Filesystem',
            persistentVolumeReclaimPolicy: 'Retain',
            claimRef: { apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace, name, uid },
            hostPath: { path: pvcDir(this.options.stateDir, namespace, name), type: '' },
          },
        },
      });
      this.log.info('pv provisioned', { pvc: key, pv: `pvc-${uid}` });
    } catch (err) {
      if (!isConflict(err)) this.log.warn('provisioning a pv failed', { pvc: key, error: errorSummary(err) });
    }
  }

  /** PVC data directories whose PVC no longer exists (deleted while no kubelet watched). */
  private async collectOrphanedVolumes(): Promise<void> {
    const root = join(this.options.stateDir, 'pvc');
    const namespaces = await readdir(root).catch(() => [] as string[]);
    for (const ns of namespaces) {
      for (const entry of await readdir(join(root, ns)).catch(() => [] as string[])) {
        const claim = entry.replace(/\.uid$/, '');
        const pvc = this.pvcReflector?.store.get(`${ns}/${claim}`);
        const dir = pvcDir(this.options.stateDir, ns, claim);
        const owner = await readFile(pvcUidFile(dir), 'utf8').catch(() => undefined);
        if (!pvc || (owner !== undefined && owner !== pvc.metadata?.uid)) {
          await rm(dir, { recursive: true, force: true });
          await rm(pvcUidFile(dir), { force: true });
          this.log.info('orphaned pvc data removed', { pvc: `${ns}/${claim}` });
        }
      }
    }
  }
}
