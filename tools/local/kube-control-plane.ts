/**
 * A Kubernetes control plane on loopback (etcd + kube-apiserver + kube-controller-manager as plain
 * processes), through hack/kube/{install,start,stop}.sh. Used by the tests (test/support/kube.ts)
 * and by `make run` (tools/demo/kube-run.ts).
 *
 *   const kube = await startKube();        // ~6 s once the binaries are cached
 *   ... kube.kc ...
 *   await kube.stop();
 *
 * Set MQ_KEEP_KUBE=1 (or `keepStateDir`) to keep the state dir (logs, etcd data) after stop().
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readlinkSync,
  writeFileSync,
} from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { REPO_ROOT } from './paths.js';
import { sleep } from '../../src/common/deadline.js';

const run = promisify(execFile);
const HACK = join(REPO_ROOT, 'hack/kube');

export interface Kube {
  kubeconfigPath: string;
  stateDir: string;
  kc: KubeConfig;
  /** Stops every process (idempotent) and removes the state dir unless it is kept. */
  stop(): Promise<void>;
  /** Kills only kube-apiserver (SIGTERM) and waits until it has exited. */
  stopApiServer(): Promise<void>;
  /** Starts kube-apiserver again with exactly the same command line and waits for /readyz. */
  startApiServer(): Promise<void>;
}

export interface StartKubeOptions {
  /** Where the certs, etcd data, logs and kubeconfig go (default: a new dir under the tmpdir). */
  stateDir?: string;
  /** Keep the state dir after stop() (default: only when MQ_KEEP_KUBE is set). */
  keepStateDir?: boolean;
  /**
   * Run the control plane in its own process group, so a Ctrl-C in the terminal reaches only this
   * program, which then stops the processes in order (default false: tests want a Ctrl-C of the
   * test runner to take the control plane down with it).
   */
  detached?: boolean;
  /** install.sh output (progress of a cold build) goes here; default: discarded. */
  onInstallOutput?: (chunk: string) => void;
}

/** A hack/kube script; stdout is returned, stderr shows in the error when it fails. */
async function sh(
  script: string,
  args: string[],
  timeoutMs: number,
  opts: { detached?: boolean; onStderr?: (chunk: string) => void } = {},
): Promise<string> {
  const child = spawn(join(HACK, script), args, {
    cwd: REPO_ROOT,
    detached: opts.detached ?? false,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (stderr.length > 1 << 20) stderr = stderr.slice(-(1 << 19));
    opts.onStderr?.(d.toString());
  });
  const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
  const code = await new Promise<number | null>((res, rej) => {
    child.on('error', rej);
    child.on('close', (c) => res(c));
  }).finally(() => clearTimeout(timer));
  if (code !== 0) {
    throw new Error(`hack/kube/${script} failed (exit ${code}):\n${stderr.trimEnd()}`);
  }
  return stdout;
}

/** Runs hack/kube/install.sh: returns at once when the binaries are cached; a cold build takes minutes. */
export async function installKube(onOutput?: (chunk: string) => void): Promise<void> {
  await sh('install.sh', [], 30 * 60_000, { onStderr: onOutput });
}

/** Running and not a zombie (an exited child of a dead start.sh stays a zombie until reaped). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function logTail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** `kubectl get --raw /readyz` answered `ok` within `timeoutSeconds`. */
export async function apiServerReady(kubeconfigPath?: string, timeoutSeconds = 5): Promise<boolean> {
  try {
    const { stdout } = await run(
      'kubectl',
      [
        ...(kubeconfigPath ? ['--kubeconfig', kubeconfigPath] : []),
        `--request-timeout=${timeoutSeconds}s`,
        'get',
        '--raw',
        '/readyz',
      ],
      { timeout: (timeoutSeconds + 5) * 1000 },
    );
    return stdout.trim() === 'ok';
  } catch {
    return false;
  }
}

export async function startKube(options: StartKubeOptions = {}): Promise<Kube> {
  await installKube(options.onInstallOutput);
  let stateDir: string;
  if (options.stateDir) {
    mkdirSync(options.stateDir, { recursive: true });
    stateDir = resolve(options.stateDir);
  } else {
    stateDir = await mkdtemp(join(tmpdir(), 'mq-kube-test-'));
  }
  const keep = options.keepStateDir ?? Boolean(process.env.MQ_KEEP_KUBE);
  await sh('start.sh', [stateDir], 5 * 60_000, { detached: options.detached });
  const kubeconfigPath = join(stateDir, 'kubeconfig');
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);

  // The apiserver's command line and cwd, captured while it runs, for startApiServer().
  const pidsFile = join(stateDir, 'pids');
  const apiPid = () => {
    const line = readFileSync(pidsFile, 'utf8')
      .split('\n')
      .find((l) => l.endsWith(' kube-apiserver'));
    return line ? Number(line.split(' ')[0]) : undefined;
  };
  const pid0 = apiPid()!;
  const argv = readFileSync(`/proc/${pid0}/cmdline`, 'utf8').split('\0').filter(Boolean);
  const cwd = readlinkSync(`/proc/${pid0}/cwd`);

  let stopped = false;
  // A crashed or aborted program must not leave a control plane behind.
  const onExit = () => {
    if (!stopped && existsSync(pidsFile))
      execFileSync(join(HACK, 'stop.sh'), [stateDir], { stdio: 'ignore' });
  };
  process.once('exit', onExit);
  const kube: Kube = {
    kubeconfigPath,
    stateDir,
    kc,
    async stop() {
      if (stopped) return;
      stopped = true;
      process.off('exit', onExit);
      if (existsSync(pidsFile)) await sh('stop.sh', [stateDir], 60_000);
      if (!keep) await rm(stateDir, { recursive: true, force: true });
    },
    async stopApiServer() {
      const pid = apiPid();
      if (!pid || !alive(pid)) return;
      // kube-apiserver 1.20 stops listening at once on TERM but then takes ~15 s to exit;
      // like stop.sh, give it 5 s and then KILL.
      process.kill(pid, 'SIGTERM');
      for (let i = 0; i < 100 && alive(pid); i++) await sleep(50);
      if (alive(pid)) process.kill(pid, 'SIGKILL');
      for (let i = 0; i < 100 && alive(pid); i++) await sleep(50);
      if (alive(pid)) throw new Error(`kube-apiserver (pid ${pid}) did not exit`);
    },
    async startApiServer() {
      const log = openSync(join(stateDir, 'kube-apiserver.log'), 'a');
      const child = spawn(argv[0]!, argv.slice(1), { cwd, detached: true, stdio: ['ignore', log, log] });
      closeSync(log);
      child.unref();
      const old = apiPid();
      // Keep stop.sh able to find (and only find) the new process.
      writeFileSync(
        pidsFile,
        readFileSync(pidsFile, 'utf8')
          .split('\n')
          .map((l) =>
            old !== undefined && l === `${old} kube-apiserver` ? `${child.pid} kube-apiserver` : l,
          )
          .join('\n'),
      );
      const deadline = Date.now() + 90_000;
      for (;;) {
        if (await apiServerReady(kubeconfigPath)) return;
        if (!alive(child.pid!)) {
          throw new Error(
            `kube-apiserver exited on restart:\n${logTail(join(stateDir, 'kube-apiserver.log'))}`,
          );
        }
        if (Date.now() > deadline) throw new Error('kube-apiserver not ready 90 s after restart');
        await sleep(250);
      }
    },
  };
  return kube;
}
