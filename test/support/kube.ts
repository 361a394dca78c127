/**
 * A throw-away Kubernetes control plane (etcd + kube-apiserver + kube-controller-manager)
 * for integration tests, via hack/kube/{install,start,stop}.sh.
 *
 *   const kube = await startKube();        // ~6 s once the binaries are cached
 *   ... kube.kc ...
 *   await kube.stop();
 *
 * Set MQ_KEEP_KUBE=1 to keep the state dir (logs, etcd data) after stop().
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { openSync, closeSync, readFileSync, readlinkSync, writeFileSync, existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');
const HACK = join(ROOT, 'hack/kube');

export interface Kube {
  kubeconfigPath: string;
  stateDir: string;
  kc: KubeConfig;
  /** Stops every process (idempotent) and removes the state dir unless MQ_KEEP_KUBE is set. */
  stop(): Promise<void>;
  /** Kills only kube-apiserver (SIGTERM) and waits until it has exited. */
  stopApiServer(): Promise<void>;
  /** Starts kube-apiserver again with exactly the same command line and waits for /readyz. */
  startApiServer(): Promise<void>;
}

async function sh(script: string, args: string[], timeoutMs: number): Promise<string> {
  try {
    const { stdout } = await run(join(HACK, script), args, {
      cwd: ROOT,
      timeout: timeoutMs,
      maxBuffer: 16 << 20,
    });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`hack/kube/${script} failed: ${e.message}\n${e.stderr ?? ''}`);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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

export async function startKube(): Promise<Kube> {
  // install.sh returns at once when the binaries are cached; a cold build takes minutes.
  await sh('install.sh', [], 30 * 60_000);
  const stateDir = await mkdtemp(join(tmpdir(), 'mq-kube-test-'));
  await sh('start.sh', [stateDir], 5 * 60_000);
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
  // A crashed or aborted test run must not leave a control plane behind.
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
      if (!process.env.MQ_KEEP_KUBE) await rm(stateDir, { recursive: true, force: true });
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
        try {
          const { stdout } = await run(
            'kubectl',
            ['--kubeconfig', kubeconfigPath, 'get', '--raw', '/readyz'],
            {
              timeout: 5_000,
            },
          );
          if (stdout.trim() === 'ok') return;
        } catch {
          // not up yet
        }
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
