import { createHash, randomUUID } from 'node:crypto';
import { arch, release } from 'node:os';
import {
  type CoordinationV1Api,
  type CoreV1Api,
  PatchStrategy,
  V1MicroTime,
  setHeaderOptions,
} from '@kubernetes/client-node';
import type { Logger } from '../../../src/common/logger.js';
import { errorSummary, isConflict, isNotFound } from '../../../src/k8s/client.js';
import { kubeMicroTime, kubeTime } from './api.js';

export const mergePatch = () => setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export const LEASE_NAMESPACE = 'kube-node-lease';
const LEASE_DURATION_SECONDS = 40;
/** The kubelet's own defaults: Lease every 10 s; status is re-posted less often. */
const LEASE_RENEW_MS = 10_000;
const STATUS_EVERY_N_RENEWALS = 3;

export interface NodeAgentOptions {
  name: string;
  hostIP: string;
  capacity: Record<string, string>;
  labels: Record<string, string>;
  kubeletVersion: string;
  core: CoreV1Api;
  coordination: CoordinationV1Api;
  log: Logger;
}

const goArch = () => ({ x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386' })[arch()] ?? arch();

/**
 * One Node object: registered Ready, then kept alive as a kubelet does, by renewing its Lease in
 * kube-node-lease (what the 1.20 node-lifecycle controller watches; without it the node turns
 * Unknown after 40 s, is tainted unreachable and its pods are evicted after 5 min) and by
 * re-posting its status with a fresh lastHeartbeatTime.
 */
export class NodeAgent {
  private timer?: NodeJS.Timeout;
  private renewals = 0;
  private uid?: string;
  private readonly readySince = kubeTime();
  private readonly bootId = randomUUID();

  constructor(private readonly options: NodeAgentOptions) {}

  get name(): string {
    return this.options.name;
  }

  get labels(): Record<string, string> {
    return this.options.labels;
  }

  static defaultLabels(name: string): Record<string, string> {
    const a = goArch();
    return {
      'kubernetes.io/hostname': name,
      'kubernetes.io/os': 'linux',
      'kubernetes.io/arch': a,
      'beta.kubernetes.io/os': 'linux',
      'beta.kubernetes.io/arch': a,
    };
  }

  async register(): Promise<void> {
    const { core, name, labels, log } = this.options;
    try {
      const node = await core.createNode({
        body: { apiVersion: 'v1', kind: 'Node', metadata: { name, labels }, spec: {} },
      });
      this.uid = node.metadata?.uid;
      log.info('node registered', { node: name });
    } catch (err) {
      if (!isConflict(err)) throw err;
      const node = await core.patchNode({ name, body: { metadata: { labels } } }, mergePatch());
      this.uid = node.metadata?.uid;
      log.info('node already registered; taking it over', { node: name });
    }
    await this.postStatus();
    await this.renewLease();
  }

  start(): void {
    this.timer = setInterval(() => void this.beat(), LEASE_RENEW_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private async beat(): Promise<void> {
    try {
      await this.renewLease();
      if (++this.renewals % STATUS_EVERY_N_RENEWALS === 0) await this.postStatus();
    } catch (err) {
      this.options.log.warn('node heartbeat failed', {
        node: this.options.name,
        error: errorSummary(err),
      });
    }
  }

  private status() {
    const { name, hostIP, capacity, kubeletVersion } = this.options;
    const now = kubeTime();
    const condition = (type: string, status: string, reason: string, message: string) => ({
      type,
      status,
      reason,
      message,
      lastHeartbeatTime: now,
      lastTransitionTime: this.readySince,
    });
    const machineId = createHash('sha256').update(name).digest('hex').slice(0, 32);
    return {
      capacity,
      allocatable: capacity,
      phase: 'Running',
      conditions: [
        condition(
          'MemoryPressure',
          'False',
          'KubeletHasSufficientMemory',
          'kubelet has sufficient memory available',
        ),
        condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'),
        condition('PIDPressure', 'False', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'),
        condition('Ready', 'True', 'KubeletReady', 'kubelet is posting ready status'),
      ],
      addresses: [
        { type: 'InternalIP', address: hostIP },
        { type: 'Hostname', address: name },
      ],
      daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
      nodeInfo: {
        machineID: machineId,
        systemUUID: machineId,
        bootID: this.bootId,
        kernelVersion: release(),
        osImage: 'mysqlmq test kubelet (local processes)',
        containerRuntimeVersion: 'local://1.0',
        kubeletVersion,
        kubeProxyVersion: kubeletVersion,
        operatingSystem: 'linux',
        architecture: goArch(),
      },
    };
  }

  private async postStatus(): Promise<void> {
    await this.options.core.patchNodeStatus(
      { name: this.options.name, body: { status: this.status() } },
      mergePatch(),
    );
  }

  private async renewLease(): Promise<void> {
    const { coordination, name } = this.options;
    const spec = {
      holderIdentity: name,
      leaseDurationSeconds: LEASE_DURATION_SECONDS,
      renewTime: kubeMicroTime(),
    };
    try {
      await coordination.patchNamespacedLease(
        { name, namespace: LEASE_NAMESPACE, body: { spec } },
        mergePatch(),
      );
    } catch (err) {
      if (!isNotFound(err)) throw err;
      await coordination
        .createNamespacedLease({
          namespace: LEASE_NAMESPACE,
          body: {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: {
              name,
              namespace: LEASE_NAMESPACE,
              // As a kubelet does: the Lease goes with its Node.
              ownerReferences: this.uid
                ? [{ apiVersion: 'v1', kind: 'Node', name, uid: this.uid }]
                : undefined,
            },
            spec: { ...spec, renewTime: new V1MicroTime() },
          },
        })
        .catch((e: unknown) => {
          if (!isConflict(e)) throw e;
        });
    }
  }
}
