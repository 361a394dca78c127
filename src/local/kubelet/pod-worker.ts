import { rm } from 'node:fs/promises';
import { constants } from 'node:os';
import { join } from 'node:path';
import type { CoreV1Api, V1Container, V1Pod } from '@kubernetes/client-node';
import type { Logger } from '../../common/logger.js';
import { apiErrorMessage, errorCode, kubeTime, sleep } from './api.js';
import {
  CONTAINER_KINDS,
  type ContainerKind,
  type ContainerProcess,
  type LivenessCheck,
  type ProcessExit,
  type ReadinessCheck,
  containerKind,
  livenessCheck,
  probe,
  readinessCheck,
  startContainer,
} from './containers.js';
import { ContainerConfigError, type ObjectLookup, resolveEnv } from './env.js';
import { mergePatch } from './nodes.js';
import {
  type ApiServerEndpoint,
  podServiceAccountCredentials,
  writeServiceAccountFiles,
} from './service-account.js';
import { PodVolumes } from './volumes.js';

export interface PodWorkerDeps {
  core: CoreV1Api;
  lookup: ObjectLookup;
  log: Logger;
  stateDir: string;
  hostIP: string;
  brokerMain: string;
  operatorMain: string;
  agentMain: string;
  /** The apiserver as pods should reach it (server URL and CA), for ServiceAccount kubeconfigs. */
  apiServer: ApiServerEndpoint;
  mariadbOverrides: Record<string, string>;
  probeIntervalMs: number;
  maxGracePeriodSeconds: number;
  allocateIP: (preferred?: string) => string;
  releaseIP: (ip: string) => void;
}

interface Terminated {
  exitCode: number;
  signal?: number;
  reason: string;
  message?: string;
  startedAt?: string;
  finishedAt: string;
  containerID?: string;
}

interface ContainerStateJson {
  waiting?: { reason: string; message?: string };
  running?: { startedAt: string };
  terminated?: Terminated;
}

interface Container {
  name: string;
  spec: V1Container;
  kind: ContainerKind;
  check: ReadinessCheck;
  liveness?: LivenessCheck;
  /** Liveness probe state of the current process. */
  live: { failures: number; lastProbeMs: number; startedMs: number; killing: boolean };
  proc?: ContainerProcess;
  state: ContainerStateJson;
  lastState?: ContainerStateJson;
  restartCount: number;
  ready: boolean;
  /** The restart loop ended (restartPolicy says no more, or the pod terminates). */
  done: boolean;
  lastExit?: Terminated;
  loop?: Promise<void>;
}

/**
 * Controllers that replace a Failed pod with a new one straight away: failing their pods would make
 * them create pods without end, so such pods stay Pending (as with an image that cannot be pulled).
 */
const REPLACING_CONTROLLERS = new Set(['ReplicaSet', 'ReplicationController', 'StatefulSet', 'DaemonSet']);

const MIN_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 10_000;
/** A container that ran this long is healthy again: its next crash restarts after the minimum backoff. */
const BACKOFF_RESET_MS = 2 * MAX_BACKOFF_MS;

export type TerminateMode =
  /** deletionTimestamp set: SIGTERM, grace period, SIGKILL, then delete the pod object (grace 0). */
  | 'graceful'
  /** The pod object is gone: SIGKILL at once, no API calls, local files removed. */
  | 'kill'
  /** The kubelet stops: SIGKILL at once, no API calls, files kept (a restarted kubelet reuses them). */
  | 'stop';

/**
 * Runs one bound pod (one uid): its IP, its volumes, a restart loop per container, readiness
 * probes, and its status, written through the status subresource whenever it changes.
 */
export class PodWorker {
  readonly uid: string;
  readonly namespace: string;
  readonly name: string;
  private pod: V1Pod;
  ip?: string;
  private readonly containers: Container[] = [];
  private readonly initContainers: Container[] = [];
  /** Every init container has completed (or there are none). */
  private initialized: boolean;
  private readonly podDir: string;
  private volumes?: PodVolumes;
  private readonly startTime = kubeTime();
  private unsupported?: string;
  /** An unsupported pod stays Pending when a controller would replace a Failed one at once (a pod storm). */
  private unsupportedPending = false;
  private setupMessage?: string;
  private terminating = false;
  private killSignal: NodeJS.Signals = 'SIGTERM';
  private terminated?: Promise<void>;
  private initRun?: Promise<void>;
  private timer?: NodeJS.Timeout;
  private ticking = false;
  private readonly wake = new Set<() => void>();
  private readonly transitions = new Map<string, { status: string; time: string }>();
  private lastSent?: string;
  private flushing?: Promise<void>;
  private flushAgain = false;
  private apiGone = false;
  private readonly log: Logger;

  constructor(
    pod: V1Pod,
    private readonly nodeName: string,
    private readonly deps: PodWorkerDeps,
  ) {
    this.pod = pod;
    this.uid = pod.metadata!.uid!;
    this.namespace = pod.metadata!.namespace ?? 'default';
    this.name = pod.metadata!.name!;
    this.podDir = join(deps.stateDir, 'pods', this.namespace, this.name);
    this.log = deps.log.child({ pod: `${this.namespace}/${this.name}`, uid: this.uid });
    const specs = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])];
    const bad = specs.filter((c) => !containerKind(c));
    if (bad.length) {
      this.unsupported =
        `the test kubelet runs only containers named ${CONTAINER_KINDS.map((k) => `"${k}"`).join(', ')}; ` +
        `cannot run ${bad.map((c) => `"${c.name}"`).join(', ')}`;
      const owner = pod.metadata?.ownerReferences?.find((o) => o.controller);
      this.unsupportedPending = REPLACING_CONTROLLERS.has(owner?.kind ?? '');
    }
    for (const spec of pod.spec?.initContainers ?? []) {
      const previous = pod.status?.initContainerStatuses?.find((s) => s.name === spec.name);
      this.initContainers.push(this.newContainer(spec, previous?.restartCount ?? 0));
    }
    // A kubelet restarted under a running pod does not run its init containers again.
    this.initialized =
      this.initContainers.length === 0 ||
      pod.status?.conditions?.some((c) => c.type === 'Initialized' && c.status === 'True') === true;
    for (const spec of pod.spec?.containers ?? []) {
      // A kubelet restarted under a running pod carries on counting.
      const previous = pod.status?.containerStatuses?.find((s) => s.name === spec.name);
      this.containers.push(this.newContainer(spec, previous?.restartCount ?? 0));
    }
  }

  private newContainer(spec: V1Container, restartCount: number): Container {
    const kind = containerKind(spec) ?? 'broker';
    return {
      name: spec.name,
      spec,
      kind,
      check: readinessCheck(kind, spec),
      liveness: livenessCheck(spec),
      live: { failures: 0, lastProbeMs: 0, startedMs: 0, killing: false },
      state: { waiting: { reason: 'ContainerCreating' } },
      restartCount,
      ready: false,
      done: false,
    };
  }

  /** Runtime files (my.cnf, socket, error.log) in a short path: unix socket paths must stay under 108 bytes. */
  private runDir(c: Container): string {
    return join(this.deps.stateDir, 'run', `${this.uid.slice(0, 8)}-${c.name}`);
  }

  get key(): string {
    return `${this.namespace}/${this.name}`;
  }

  /** Starts the pod once `after` (the previous pod of the same name, if any) is gone. */
  start(after?: Promise<void>): void {
    this.run(after).catch((err: unknown) => {
      this.log.error('pod set-up failed', { error: apiErrorMessage(err) });
      for (const c of this.containers) {
        c.state = { waiting: { reason: 'CreateContainerError', message: apiErrorMessage(err) } };
      }
      this.flush();
    });
  }

  private async run(after?: Promise<void>): Promise<void> {
    await after;
    if (this.terminating) return;
    if (this.unsupported) {
      this.log.warn('pod cannot run here', {
        reason: 'UnsupportedContainer',
        detail: this.unsupported,
        phase: this.phase(),
      });
      for (const c of this.containers) {
        c.done = true;
        c.state = { waiting: { reason: 'UnsupportedContainer', message: this.unsupported } };
      }
      this.flush();
      return;
    }
    await rm(this.podDir, { recursive: true, force: true });
    if (this.terminating) return;
    this.ip = this.deps.allocateIP(this.pod.status?.podIP);
    this.log.info('pod starting', { podIP: this.ip, node: this.nodeName });
    this.volumes = new PodVolumes(
      this.pod,
      this.podDir,
      this.deps.stateDir,
      this.deps.lookup,
      this.deps.core,
    );
    this.timer = setInterval(() => void this.tick(), this.deps.probeIntervalMs);
    this.flush();
    // Volumes first, as a kubelet mounts them before any container is created.
    for (let attempt = 0; !this.terminating; attempt++) {
      try {
        await this.volumes.materialise();
        this.setupMessage = undefined;
        break;
      } catch (err) {
        this.setupMessage = `MountVolume.SetUp failed: ${apiErrorMessage(err)}`;
        if (attempt === 0) this.log.warn('volumes not ready; retrying', { error: this.setupMessage });
        for (const c of this.containers)
          c.state = { waiting: { reason: 'ContainerCreating', message: this.setupMessage } };
        this.flush();
        await this.pause(2000);
      }
    }
    if (this.terminating) return;
    if (!this.initialized) {
      this.initRun = this.runInitContainers();
      await this.initRun;
      if (this.terminating) return;
    }
    for (const c of this.containers) c.loop = this.runContainer(c);
  }

  /**
   * Init containers one after the other, each until it exits 0; a failed one runs again after a
   * back-off (as a kubelet does under restartPolicy Always or OnFailure).
   */
  private async runInitContainers(): Promise<void> {
    for (const c of this.initContainers) {
      let backoff = MIN_BACKOFF_MS;
      while (!this.terminating) {
        const proc = await this.startProcess(c);
        if (!proc) continue;
        const startedAt = kubeTime();
        c.state = { running: { startedAt } };
        this.log.info('init container started', { container: c.name, pid: proc.pid });
        this.flush();
        const exit = await proc.exited;
        c.proc = undefined;
        const term = terminatedState(exit, startedAt, proc.pid);
        c.state = { terminated: term };
        c.lastExit = term;
        this.flush();
        if (term.exitCode === 0) break;
        this.log.warn('init container failed', {
          container: c.name,
          exitCode: term.exitCode,
          log: proc.logFile,
        });
        if (this.terminating) return;
        await this.pause(backoff);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
        c.lastState = { terminated: term };
        c.restartCount++;
      }
      c.done = true;
      if (this.terminating) return;
    }
    this.initialized = true;
    this.flush();
  }

  /** Starts a container's process; undefined (after a pause) when it cannot be created yet. */
  private async startProcess(c: Container): Promise<ContainerProcess | undefined> {
    try {
      const env = await resolveEnv(this.pod, c.spec, this.deps.lookup, {
        podIP: this.ip!,
        hostIP: this.deps.hostIP,
      });
      const serviceAccountKubeconfig =
        c.kind === 'operator' ? await this.serviceAccountKubeconfig() : undefined;
      const proc = await startContainer(c.kind, {
        container: c.spec,
        env,
        podIP: this.ip!,
        podName: this.name,
        podDir: this.podDir,
        runDir: this.runDir(c),
        volumes: this.volumes!,
        brokerMain: this.deps.brokerMain,
        operatorMain: this.deps.operatorMain,
        agentMain: this.deps.agentMain,
        serviceAccountKubeconfig,
        mariadbOverrides: this.deps.mariadbOverrides,
      });
      c.proc = proc;
      if (this.terminating) proc.kill(this.killSignal);
      return proc;
    } catch (err) {
      const config = err instanceof ContainerConfigError;
      const message = apiErrorMessage(err);
      const reason = config ? 'CreateContainerConfigError' : 'CreateContainerError';
      if (c.state.waiting?.message !== message)
        this.log.warn('container cannot start', { container: c.name, reason, detail: message });
      c.state = { waiting: { reason, message } };
      this.flush();
      await this.pause(2000);
      return undefined;
    }
  }

  /** The newest pod object from the watch. */
  update(pod: V1Pod): void {
    this.pod = pod;
    if (pod.metadata?.deletionTimestamp && !this.terminating) {
      const grace = Math.min(
        pod.metadata.deletionGracePeriodSeconds ?? pod.spec?.terminationGracePeriodSeconds ?? 30,
        this.deps.maxGracePeriodSeconds,
      );
      void this.terminate('graceful', grace);
    }
  }

  /** Sleeps, but wakes at once when the pod starts terminating. */
  private pause(ms: number): Promise<void> {
    if (this.terminating) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.wake.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.wake.add(done);
    });
  }

  private async runContainer(c: Container): Promise<void> {
    let backoff = MIN_BACKOFF_MS;
    const policy = this.pod.spec?.restartPolicy ?? 'Always';
    while (!this.terminating) {
      const proc = await this.startProcess(c);
      if (!proc) continue;
      const startedAt = kubeTime();
      const started = Date.now();
      c.live = { failures: 0, lastProbeMs: 0, startedMs: started, killing: false };
      c.state = { running: { startedAt } };
      c.ready = false;
      this.log.info('container started', { container: c.name, pid: proc.pid, restartCount: c.restartCount });
      this.flush();
      void this.tick();

      const exit = await proc.exited;
      c.proc = undefined;
      c.ready = false;
      const term = terminatedState(exit, startedAt, proc.pid);
      c.state = { terminated: term };
      c.lastExit = term;
      const level = this.terminating ? 'info' : 'warn';
      this.log.log(level, 'container exited', {
        container: c.name,
        pid: proc.pid,
        exitCode: term.exitCode,
        signal: exit.signal ?? undefined,
        reason: term.reason,
        ...(this.terminating ? {} : { log: proc.logFile }),
      });
      this.flush();
      if (this.terminating) break;
      if (policy === 'Never' || (policy === 'OnFailure' && term.exitCode === 0)) break;
      if (Date.now() - started >= BACKOFF_RESET_MS) backoff = MIN_BACKOFF_MS;
      await this.pause(backoff);
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      if (this.terminating) break;
      c.lastState = { terminated: term };
      c.restartCount++;
    }
    c.done = true;
    this.flush();
  }

  /** Sends a signal to a container's current process; resolves when it has exited if SIGKILL. */
  async signal(containerName: string, signal: NodeJS.Signals): Promise<boolean> {
    const c = this.containers.find((x) => x.name === containerName);
    const proc = c?.proc;
    if (!proc) return false;
    this.log.info('signalling container', { container: containerName, pid: proc.pid, signal });
    proc.kill(signal);
    if (signal === 'SIGKILL') await Promise.race([proc.exited, sleep(10_000)]);
    return true;
  }

  containerPid(containerName: string): number | undefined {
    return this.containers.find((x) => x.name === containerName)?.proc?.pid;
  }

  /**
   * Stops the pod. 'graceful': SIGTERM, up to `graceSeconds`, SIGKILL, then the pod object is
   * deleted with gracePeriodSeconds 0 (what a kubelet does). 'kill': SIGKILL, no API calls.
   */
  terminate(mode: TerminateMode, graceSeconds = 0): Promise<void> {
    if (mode !== 'graceful') {
      this.apiGone = true;
      this.killSignal = 'SIGKILL';
      for (const c of [...this.initContainers, ...this.containers]) c.proc?.kill('SIGKILL');
    }
    this.terminated ??= this.doTerminate(mode, graceSeconds);
    return this.terminated;
  }

  private async doTerminate(mode: TerminateMode, graceSeconds: number): Promise<void> {
    this.terminating = true;
    for (const wake of [...this.wake]) wake();
    for (const c of this.containers) c.ready = false;
    const running = this.containers.filter((c) => c.proc);
    this.log.info('pod terminating', { mode, gracePeriodSeconds: mode === 'graceful' ? graceSeconds : 0 });
    if (mode === 'graceful') this.flush();
    for (const c of running) c.proc?.kill(this.killSignal);
    for (const c of this.initContainers) c.proc?.kill('SIGKILL');
    const loops = Promise.all([this.initRun, ...this.containers.map((c) => c.loop)]);
    if (mode === 'graceful' && running.length) {
      let timer: NodeJS.Timeout | undefined;
      const inTime = await Promise.race([
        loops.then(() => true),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), graceSeconds * 1000))),
      ]);
      clearTimeout(timer);
      if (!inTime) {
        this.killSignal = 'SIGKILL';
        for (const c of this.containers) {
          if (c.proc) this.log.warn('grace period over; killing', { container: c.name, pid: c.proc.pid });
          c.proc?.kill('SIGKILL');
        }
      }
    }
    await loops;
    clearInterval(this.timer);
    if (this.ip) this.deps.releaseIP(this.ip);
    if (mode === 'graceful' && !this.apiGone) {
      await this.flushing;
      await this.deletePodObject();
    }
    if (mode !== 'stop' && !this.unsupported) {
      // As a kubelet removes a deleted pod's directories (PVC data lives elsewhere).
      await rm(this.podDir, { recursive: true, force: true });
      for (const c of [...this.initContainers, ...this.containers])
        await rm(this.runDir(c), { recursive: true, force: true });
    }
    this.log.info('pod stopped');
  }

  private async deletePodObject(): Promise<void> {
    for (let attempt = 0; attempt < 5 && !this.apiGone; attempt++) {
      try {
        await this.deps.core.deleteNamespacedPod({
          name: this.name,
          namespace: this.namespace,
          gracePeriodSeconds: 0,
          body: { gracePeriodSeconds: 0, preconditions: { uid: this.uid } },
        });
        return;
      } catch (err) {
        const code = errorCode(err);
        if (code === 404 || code === 409) return; // gone, or already a different pod of that name
        this.log.warn('deleting the pod object failed; retrying', { error: apiErrorMessage(err) });
        await sleep(1000);
      }
    }
  }

  /** Probes and ConfigMap refresh, every probe interval. */
  private async tick(): Promise<void> {
    if (this.ticking || this.terminating) return;
    this.ticking = true;
    try {
      await Promise.all(
        this.containers.map(async (c) => {
          const proc = c.proc;
          if (!proc || !c.state.running) return;
          const [ok] = await Promise.all([probe(this.ip!, c.check), this.checkLiveness(c, proc)]);
          if (c.proc !== proc || this.terminating) return;
          if (ok !== c.ready)
            this.log.info(ok ? 'container ready' : 'container not ready', { container: c.name });
          c.ready = ok && !c.live.killing;
        }),
      );
      if (this.volumes && !this.terminating) {
        if (await this.volumes.refresh()) this.log.info('volumes updated');
      }
      this.flush();
    } finally {
      this.ticking = false;
    }
  }

  /**
   * The livenessProbe, on its own period after its initial delay: after failureThreshold failures
   * in a row the process gets SIGTERM, then SIGKILL after the grace period, and the restart loop
   * starts it again per restartPolicy (as a kubelet does).
   */
  private async checkLiveness(c: Container, proc: ContainerProcess): Promise<void> {
    const l = c.liveness;
    if (!l || c.live.killing) return;
    const now = Date.now();
    if (now - c.live.startedMs < l.initialDelayMs || now - c.live.lastProbeMs < l.periodMs) return;
    c.live.lastProbeMs = now;
    const ok = await probe(this.ip!, l.check);
    if (c.proc !== proc || this.terminating) return;
    if (ok) {
      c.live.failures = 0;
      return;
    }
    c.live.failures++;
    if (c.live.failures < l.failureThreshold) return;
    c.live.killing = true;
    const grace = Math.min(
      this.pod.spec?.terminationGracePeriodSeconds ?? 30,
      this.deps.maxGracePeriodSeconds,
    );
    this.log.warn('liveness probe failed; restarting the container', {
      container: c.name,
      pid: proc.pid,
      failures: c.live.failures,
    });
    proc.kill('SIGTERM');
    // Not awaited: the probe loop goes on for the other containers meanwhile.
    void Promise.race([proc.exited.then(() => true), sleep(grace * 1000).then(() => false)]).then(
      (exited) => {
        if (!exited) proc.kill('SIGKILL');
      },
    );
  }

  /** The pod's ServiceAccount as a kubeconfig file in the pod directory; undefined when it mounts no token. */
  private async serviceAccountKubeconfig(): Promise<string | undefined> {
    const { creds, automount } = await podServiceAccountCredentials(this.deps.core, this.pod);
    if (!automount) return undefined;
    return writeServiceAccountFiles(join(this.podDir, 'serviceaccount'), creds, this.deps.apiServer);
  }

  // --- status -----------------------------------------------------------------

  private condition(type: string, ok: boolean, reason?: string, message?: string) {
    const status = ok ? 'True' : 'False';
    const prev = this.transitions.get(type);
    if (!prev || prev.status !== status) this.transitions.set(type, { status, time: kubeTime() });
    return {
      type,
      status,
      lastProbeTime: null,
      lastTransitionTime: this.transitions.get(type)!.time,
      ...(reason ? { reason } : {}),
      ...(message ? { message } : {}),
    };
  }

  private phase(): string {
    if (this.unsupported) return this.unsupportedPending ? 'Pending' : 'Failed';
    if (this.terminating) return 'Running';
    const cs = this.containers;
    if (cs.some((c) => c.restartCount === 0 && !c.lastExit && !c.state.running)) return 'Pending';
    if (cs.every((c) => c.done)) return cs.every((c) => c.lastExit?.exitCode === 0) ? 'Succeeded' : 'Failed';
    return 'Running';
  }

  private status() {
    const scheduled = this.pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
    if (scheduled?.lastTransitionTime && !this.transitions.has('PodScheduled')) {
      this.transitions.set('PodScheduled', { status: 'True', time: String(scheduled.lastTransitionTime) });
    }
    const allReady = this.containers.every((c) => c.ready) && !this.terminating;
    const notReady = this.containers.filter((c) => !c.ready).map((c) => c.name);
    const notReadyMessage = notReady.length
      ? `containers with unready status: [${notReady.join(' ')}]`
      : undefined;
    const status: Record<string, unknown> = {
      phase: this.phase(),
      hostIP: this.deps.hostIP,
      startTime: this.startTime,
      conditions: [
        this.condition(
          'Initialized',
          this.initialized,
          this.initialized ? undefined : 'ContainersNotInitialized',
          this.initialized
            ? undefined
            : `containers with incomplete status: [${this.initContainers
                .filter((c) => !c.done)
                .map((c) => c.name)
                .join(' ')}]`,
        ),
        this.condition(
          'Ready',
          allReady,
          allReady ? undefined : 'ContainersNotReady',
          allReady ? undefined : notReadyMessage,
        ),
        this.condition(
          'ContainersReady',
          allReady,
          allReady ? undefined : 'ContainersNotReady',
          allReady ? undefined : notReadyMessage,
        ),
        this.condition('PodScheduled', true),
      ],
      ...(this.initContainers.length
        ? {
            initContainerStatuses: this.initContainers.map((c) => ({
              name: c.name,
              state: c.state,
              lastState: c.lastState ?? {},
              ready: c.done && c.lastExit?.exitCode === 0,
              restartCount: c.restartCount,
              started: c.state.running !== undefined,
              image: c.spec.image ?? '',
              imageID: `local://${c.spec.image ?? c.kind}`,
            })),
          }
        : {}),
      containerStatuses: this.containers.map((c) => ({
        name: c.name,
        state: c.state,
        lastState: c.lastState ?? {},
        ready: c.ready,
        restartCount: c.restartCount,
        started: c.state.running !== undefined,
        image: c.spec.image ?? '',
        imageID: `local://${c.spec.image ?? c.kind}`,
        ...(c.proc?.pid
          ? { containerID: `local://${c.proc.pid}` }
          : c.state.terminated?.containerID
            ? { containerID: c.state.terminated.containerID }
            : {}),
      })),
      reason: null,
      message: null,
    };
    if (this.unsupported && !this.unsupportedPending) {
      status.reason = 'UnsupportedContainer';
      status.message = this.unsupported;
    }
    if (this.ip) {
      status.podIP = this.ip;
      status.podIPs = [{ ip: this.ip }];
    }
    return status;
  }

  /** Writes the status if it changed; one write at a time, the newest state wins. */
  private flush(): void {
    if (this.apiGone) return;
    if (this.flushing) {
      this.flushAgain = true;
      return;
    }
    const status = this.status();
    const text = JSON.stringify(status);
    if (text === this.lastSent) return;
    this.flushing = (async () => {
      try {
        await this.deps.core.patchNamespacedPodStatus(
          // metadata.uid makes the write fail if a new pod of the same name replaced ours.
          { name: this.name, namespace: this.namespace, body: { metadata: { uid: this.uid }, status } },
          mergePatch(),
        );
        this.lastSent = text;
      } catch (err) {
        const code = errorCode(err);
        if (code === 404 || code === 409 || code === 422) {
          // Gone, or replaced by a new pod of the same name: the watch retires this worker soon.
          this.apiGone = code === 404 || this.apiGone;
          this.lastSent = text;
          if (code !== 404) this.log.debug('status write refused', { error: apiErrorMessage(err) });
        } else {
          this.log.warn('status write failed; retrying', { error: apiErrorMessage(err) });
        }
      } finally {
        this.flushing = undefined;
        if (this.flushAgain) {
          this.flushAgain = false;
          this.flush();
        }
      }
    })();
  }
}

function terminatedState(exit: ProcessExit, startedAt: string, pid: number | undefined): Terminated {
  const signum = exit.signal ? constants.signals[exit.signal] : undefined;
  const exitCode = exit.code ?? (signum !== undefined ? 128 + signum : 1);
  return {
    exitCode,
    ...(signum !== undefined ? { signal: signum } : {}),
    reason: exit.signal ? 'Killed' : exitCode === 0 ? 'Completed' : 'Error',
    ...(exit.signal ? { message: `terminated by ${exit.signal}` } : {}),
    startedAt,
    finishedAt: kubeTime(),
    ...(pid ? { containerID: `local://${pid}` } : {}),
  };
}
