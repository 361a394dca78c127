import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, open, readFile, readdir } from 'node:fs/promises';
import { type IncomingMessage, get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import { Socket } from 'node:net';
import { join } from 'node:path';
import type { V1Container, V1Probe } from '@kubernetes/client-node';
import { LocalMariaDb } from '../mariadbd.js';
import { productMain } from '../paths.js';
import { ContainerConfigError, expandVars } from './env.js';
import type { PodVolumes } from './volumes.js';

/** The container kinds this kubelet can run, by container name. */
export type ContainerKind = 'mariadb' | 'broker' | 'operator' | 'agent' | 'seed' | 'mysqld-exporter';

/**
 * `agent` is the MariaDB pod's sidecar, `seed` its init step (both dist/agent/main.js),
 * `mysqld-exporter` its opt-in metrics sidecar (this machine's prometheus-mysqld-exporter).
 */
export const CONTAINER_KINDS: readonly ContainerKind[] = [
  'mariadb',
  'broker',
  'operator',
  'agent',
  'seed',
  'mysqld-exporter',
];

export function containerKind(container: V1Container): ContainerKind | undefined {
  return (CONTAINER_KINDS as readonly string[]).includes(container.name)
    ? (container.name as ContainerKind)
    : undefined;
}

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One run of a container: a local process. */
export interface ContainerProcess {
  readonly pid: number | undefined;
  readonly exited: Promise<ProcessExit>;
  kill(signal: NodeJS.Signals): void;
  /** Where to look when it fails. */
  readonly logFile: string;
}

export interface StartContext {
  container: V1Container;
  env: Record<string, string>;
  podIP: string;
  podName: string;
  /** `<stateDir>/pods/<ns>/<pod>`: logs and per-container files. */
  podDir: string;
  /** A short per-container directory for runtime files (unix socket paths must stay under 108 bytes). */
  runDir: string;
  volumes: PodVolumes;
  brokerMain: string;
  /** The operator script (`node <operatorMain> ...`), for `operator` containers. */
  operatorMain: string;
  /** The agent script, for `agent` and `seed` containers. */
  agentMain: string;
  /**
   * For `operator` containers: the kubeconfig of the pod's ServiceAccount (KUBECONFIG), or
   * undefined when the pod mounts no token (automountServiceAccountToken: false).
   */
  serviceAccountKubeconfig?: string;
  mariadbOverrides: Record<string, string>;
}

/** dist/broker/main.js of this repository. */
export function defaultBrokerMain(): string {
  return productMain('broker');
}

/** dist/agent/main.js of this repository (the image's /app/dist/agent/main.js). */
export function defaultAgentMain(): string {
  return productMain('agent');
}

/** dist/operator/main.js of this repository (what the image's /app/dist/operator/main.js is). */
export function defaultOperatorMain(): string {
  return productMain('operator');
}

/** Processes still running when this process exits are killed, so nothing outlives a test run. */
const liveChildren = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

// --- mariadb ----------------------------------------------------------------

/** The my.cnf files mounted under /etc/mysql (a subPath file, or every *.cnf of a mounted directory). */
async function mountedMyCnf(ctx: StartContext): Promise<string> {
  const parts: string[] = [];
  const mounts = [...(ctx.container.volumeMounts ?? [])].sort((a, b) =>
    a.mountPath.localeCompare(b.mountPath),
  );
  for (const m of mounts) {
    if (!m.mountPath.startsWith('/etc/mysql/') && m.mountPath !== '/etc/mysql') continue;
    const local = ctx.volumes.mountPath(m);
    if (!local) continue;
    if (m.subPath || /\.cnf$/.test(m.mountPath)) {
      parts.push(await readFile(local, 'utf8'));
    } else {
      for (const f of (await readdir(local)).filter((n) => n.endsWith('.cnf')).sort()) {
        parts.push(await readFile(join(local, f), 'utf8'));
      }
    }
  }
  return parts.length ? parts.join('\n') : '[mariadbd]\n';
}

function cnfPort(cnf: string): number | undefined {
  let port: number | undefined;
  for (const m of cnf.matchAll(/^\s*port\s*=\s*(\d+)\s*$/gm)) port = Number(m[1]);
  return port;
}

/** The `init_file` a my.cnf names (the last one wins, as in mariadbd). Pure. */
export function cnfInitFile(cnf: string): string | undefined {
  let file: string | undefined;
  for (const m of cnf.matchAll(/^\s*init[-_]file\s*=\s*(\S+)\s*$/gm)) file = m[1];
  return file;
}

/**
 * `mariadbd` as the official image runs it: root with MARIADB_ROOT_PASSWORD on MARIADB_ROOT_HOST
 * (the image's default '%'; 'localhost': the unix socket only, TCP clients refused), the mounted
 * my.cnf with its `init_file`, the data directory on the volume mounted at /var/lib/mysql,
 * listening on the pod IP.
 */
async function startMariaDb(ctx: StartContext): Promise<ContainerProcess & { port: number }> {
  const password = ctx.env.MARIADB_ROOT_PASSWORD ?? ctx.env.MYSQL_ROOT_PASSWORD;
  if (password === undefined || password === '') {
    throw new ContainerConfigError(
      'MARIADB_ROOT_PASSWORD is not set (the test kubelet needs a root password)',
    );
  }
  // Paths in the my.cnf (spec.mysql.tls's ssl_cert, ssl_key, ssl_ca) name the container's mounts.
  const myCnf = (await mountedMyCnf(ctx)).replace(
    /^(\s*[\w-]+\s*=\s*)(\/\S+)\s*$/gm,
    (_, key: string, path: string) => key + ctx.volumes.mapPath(ctx.container, path),
  );
  const port = cnfPort(myCnf) ?? 3306;
  // LocalMariaDb runs an init file of its own (the image's root); the Pod's runs after it.
  const initFile = cnfInitFile(myCnf);
  const initSql = initFile === undefined ? undefined : await readFile(initFile, 'utf8');
  const dataMount = ctx.container.volumeMounts?.find(
    (m) => m.mountPath.replace(/\/+$/, '') === '/var/lib/mysql',
  );
  const dataDir =
    (dataMount && ctx.volumes.mountPath(dataMount)) ?? join(ctx.podDir, 'containers', 'mariadb', 'data');
  const db = await LocalMariaDb.spawn({
    dir: ctx.runDir,
    dataDir,
    host: ctx.podIP,
    port,
    admin: { user: 'root', password },
    adminHost: ctx.env.MARIADB_ROOT_HOST || '%',
    ...(initSql === undefined ? {} : { initSql }),
    myCnf,
    overrides: ctx.mariadbOverrides,
  });
  return {
    port,
    pid: db.pid,
    exited: db.waitExit(),
    kill: (signal) => db.signal(signal),
    logFile: join(ctx.runDir, 'error.log'),
  };
}

// --- broker -----------------------------------------------------------------

/** The broker's own flags from the container's command + args (dropping `node` and the script). */
export function brokerArgs(container: V1Container): string[] {
  const argv = [...(container.command ?? []), ...(container.args ?? [])];
  let i = 0;
  if (argv[0] !== undefined && /(^|\/)node(js)?$/.test(argv[0])) {
    i = 1;
    while (argv[i]?.startsWith('-')) i++; // node's own options
  }
  if (argv[i] !== undefined && (/\.[cm]?js$/.test(argv[i]!) || /(^|\/)mq-broker$/.test(argv[i]!))) i++;
  return argv.slice(i);
}

function portFlag(args: string[]): number | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--port' && args[i + 1]) return Number(args[i + 1]);
    const m = /^--port=(\d+)$/.exec(args[i]!);
    if (m) return Number(m[1]);
  }
  return undefined;
}

/** `--host` becomes the pod IP (added if absent); paths under mounts become local paths. */
export function localBrokerArgs(ctx: StartContext): string[] {
  const out: string[] = [];
  const args = brokerArgs(ctx.container).map((a) => ctx.volumes.mapArg(ctx.container, a));
  let host = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--host') {
      out.push('--host', ctx.podIP);
      i++;
      host = true;
    } else if (a.startsWith('--host=')) {
      out.push(`--host=${ctx.podIP}`);
      host = true;
    } else {
      out.push(a);
    }
  }
  if (!host) out.push('--host', ctx.podIP);
  return out;
}

export function brokerPort(container: V1Container): number {
  return portFlag(brokerArgs(container)) ?? container.ports?.[0]?.containerPort ?? 8080;
}

/** Runs `node <argv>` as the container's process, its output in `<podDir>/logs/<container>.log`. */
function startNodeProcess(
  ctx: StartContext,
  argv: string[],
  extraEnv: Record<string, string> = {},
): Promise<ContainerProcess> {
  return startLocalProcess(ctx, process.execPath, argv, extraEnv);
}

/** Runs `file <argv>` as the container's process, its output in `<podDir>/logs/<container>.log`. */
async function startLocalProcess(
  ctx: StartContext,
  file: string,
  argv: string[],
  extraEnv: Record<string, string> = {},
): Promise<ContainerProcess> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOSTNAME: ctx.podName,
  };
  for (const [k, v] of Object.entries(ctx.env))
    env[k] = v.startsWith('/') ? ctx.volumes.mapPath(ctx.container, v) : v;
  Object.assign(env, extraEnv);
  const logDir = join(ctx.podDir, 'logs');
  await mkdir(logDir, { recursive: true });
  const logFile = join(logDir, `${ctx.container.name}.log`);
  const log = await open(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(file, argv, {
      cwd: ctx.podDir,
      env,
      stdio: ['ignore', log.fd, log.fd],
    });
  } finally {
    await log.close();
  }
  liveChildren.add(child);
  const exited = new Promise<ProcessExit>((resolve) => {
    const ended = (code: number | null, signal: NodeJS.Signals | null) => {
      liveChildren.delete(child);
      resolve({ code, signal });
    };
    child.once('exit', ended);
    child.once('error', () => ended(127, null));
  });
  return {
    pid: child.pid,
    exited,
    kill: (signal) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
    logFile,
  };
}

async function startBroker(ctx: StartContext): Promise<ContainerProcess> {
  return startNodeProcess(ctx, [ctx.brokerMain, ...localBrokerArgs(ctx)]);
}

// --- operator ---------------------------------------------------------------

/**
 * Splits an `operator` container's command + args into node's own options and the operator's
 * flags, dropping `node` and the script (the image's /app/dist/operator/main.js, which is this
 * repository's dist/operator/main.js). `$(VAR)` references are expanded with the container's env,
 * as the kubelet does for command and args.
 */
export function operatorArgs(
  container: V1Container,
  env: Record<string, string> = {},
): { nodeOptions: string[]; args: string[] } {
  const argv = [...(container.command ?? []), ...(container.args ?? [])].map((a) => expandVars(a, env));
  const nodeOptions: string[] = [];
  let i = 0;
  if (argv[0] !== undefined && /(^|\/)node(js)?$/.test(argv[0])) {
    i = 1;
    while (argv[i]?.startsWith('-')) nodeOptions.push(argv[i++]!);
  }
  if (argv[i] !== undefined && /\.[cm]?js$/.test(argv[i]!)) i++;
  return { nodeOptions, args: argv.slice(i) };
}

/**
 * The local process of an `operator` container: `node [node options] <operatorMain> [flags]`
 * (mounted paths in flags mapped to local ones). Pure.
 */
export function localOperatorArgv(
  ctx: Pick<StartContext, 'container' | 'env' | 'operatorMain' | 'volumes'>,
): string[] {
  const { nodeOptions, args } = operatorArgs(ctx.container, ctx.env);
  return [...nodeOptions, ctx.operatorMain, ...args.map((a) => ctx.volumes.mapArg(ctx.container, a))];
}

/**
 * The environment the kubelet adds for an `operator` process: KUBECONFIG (the pod's
 * ServiceAccount, as in-cluster config would give it), POD_IP (unless the spec sets it: every pod
 * shares one machine here, so the operator binds its health and metrics ports to its own loopback
 * pod IP instead of 0.0.0.0) and TMPDIR (the volume mounted at /tmp, if any). Pure.
 */
export function operatorExtraEnv(
  ctx: Pick<StartContext, 'container' | 'env' | 'podIP' | 'serviceAccountKubeconfig' | 'volumes'>,
): Record<string, string> {
  const extra: Record<string, string> = {};
  if (ctx.serviceAccountKubeconfig) extra.KUBECONFIG = ctx.serviceAccountKubeconfig;
  if (ctx.env.POD_IP === undefined) extra.POD_IP = ctx.podIP;
  const tmp = ctx.container.volumeMounts?.find((m) => m.mountPath.replace(/\/+$/, '') === '/tmp');
  if (tmp && ctx.env.TMPDIR === undefined) {
    const local = ctx.volumes.mountPath(tmp);
    if (local) extra.TMPDIR = local;
  }
  return extra;
}

async function startOperator(ctx: StartContext): Promise<ContainerProcess> {
  return startNodeProcess(ctx, localOperatorArgv(ctx), operatorExtraEnv(ctx));
}

/**
 * `agent` and `seed` containers: `node <agentMain> serve|seed [flags]`, mounted paths mapped to local
 * ones and `--host` to the pod IP. mariadb-backup and mbstream come from this machine.
 */
async function startAgent(ctx: StartContext): Promise<ContainerProcess> {
  return startNodeProcess(ctx, [ctx.agentMain, ...localBrokerArgs(ctx)]);
}

// --- mysqld-exporter ----------------------------------------------------------

/** mysqld_exporter from Debian's package on this machine (what the image has at the same path). */
export const LOCAL_EXPORTER = 'prometheus-mysqld-exporter';

/**
 * The exporter's flags and DATA_SOURCE_NAME as this machine needs them: pods share its loopback,
 * so the listen address becomes the pod IP and the DSN's loopback host (the MariaDB container of
 * the same Pod) becomes the pod IP MariaDB listens on. Pure.
 */
export function localExporterConfig(ctx: Pick<StartContext, 'container' | 'env' | 'podIP'>): {
  args: string[];
  env: Record<string, string>;
} {
  const argv = [...(ctx.container.command ?? []), ...(ctx.container.args ?? [])].map((a) =>
    expandVars(a, ctx.env),
  );
  const flags = /(^|\/)(prometheus-mysqld-exporter|mysqld_exporter)$/.test(argv[0] ?? '')
    ? argv.slice(1)
    : argv;
  let listens = false;
  const args = flags.map((a) => {
    const m = /^--web\.listen-address=.*:(\d+)$/.exec(a);
    if (!m) return a;
    listens = true;
    return `--web.listen-address=${ctx.podIP}:${m[1]}`;
  });
  if (!listens) args.push(`--web.listen-address=${ctx.podIP}:9104`);
  const dsn = ctx.env.DATA_SOURCE_NAME;
  const env: Record<string, string> = {};
  if (dsn) env.DATA_SOURCE_NAME = dsn.replace(/@tcp\((127\.0\.0\.1|localhost):/, `@tcp(${ctx.podIP}:`);
  return { args, env };
}

async function startExporter(ctx: StartContext): Promise<ContainerProcess> {
  const { args, env } = localExporterConfig(ctx);
  return startLocalProcess(ctx, LOCAL_EXPORTER, args, env);
}

export async function startContainer(kind: ContainerKind, ctx: StartContext): Promise<ContainerProcess> {
  if (kind === 'mariadb') return startMariaDb(ctx);
  if (kind === 'mysqld-exporter') return startExporter(ctx);
  if (kind === 'agent' || kind === 'seed') return startAgent(ctx);
  return kind === 'operator' ? startOperator(ctx) : startBroker(ctx);
}

// --- readiness --------------------------------------------------------------

export type ReadinessCheck =
  | { kind: 'tcp'; port: number; timeoutMs: number }
  | { kind: 'http'; port: number; path: string; timeoutMs: number; https?: true }
  | { kind: 'running' };

/** `scheme: HTTPS` of an httpGet probe, as a field of the check only when set. */
function httpsOf(probe: V1Probe['httpGet']): { https?: true } {
  return probe?.scheme === 'HTTPS' ? { https: true } : {};
}

function probePort(container: V1Container, port: number | string | undefined): number | undefined {
  if (typeof port === 'number') return port;
  if (port === undefined) return undefined;
  if (/^\d+$/.test(port)) return Number(port);
  return container.ports?.find((p) => p.name === port)?.containerPort;
}

/**
 * The container's readinessProbe (tcpSocket or httpGet) when it has one, else the kind's own:
 * a TCP connect to 3306 for `mariadb`, GET /readyz for `broker`.
 */
export function readinessCheck(kind: ContainerKind, container: V1Container): ReadinessCheck {
  const probe: V1Probe | undefined = container.readinessProbe;
  const timeoutMs = Math.max(1, probe?.timeoutSeconds ?? 1) * 1000;
  if (probe?.tcpSocket) {
    const port = probePort(container, probe.tcpSocket.port as number | string);
    if (port) return { kind: 'tcp', port, timeoutMs };
  }
  if (probe?.httpGet) {
    const port = probePort(container, probe.httpGet.port as number | string);
    if (port)
      return { kind: 'http', port, path: probe.httpGet.path ?? '/', timeoutMs, ...httpsOf(probe.httpGet) };
  }
  if (kind === 'mariadb') {
    const port = container.ports?.find((p) => p.name === 'mysql')?.containerPort ?? 3306;
    return { kind: 'tcp', port, timeoutMs };
  }
  // Like a kubelet, a container without a readiness probe is ready once it runs.
  if (kind === 'operator' || kind === 'agent' || kind === 'seed' || kind === 'mysqld-exporter')
    return { kind: 'running' };
  return { kind: 'http', port: brokerPort(container), path: '/readyz', timeoutMs };
}

/** A container's livenessProbe (tcpSocket or httpGet), with its timing. */
export interface LivenessCheck {
  check: ReadinessCheck;
  initialDelayMs: number;
  periodMs: number;
  failureThreshold: number;
}

/** The container's livenessProbe, when it has a tcpSocket or httpGet one (exec probes are not run). */
export function livenessCheck(container: V1Container): LivenessCheck | undefined {
  const p = container.livenessProbe;
  if (!p) return undefined;
  const timeoutMs = Math.max(1, p.timeoutSeconds ?? 1) * 1000;
  let check: ReadinessCheck | undefined;
  if (p.tcpSocket) {
    const port = probePort(container, p.tcpSocket.port as number | string);
    if (port) check = { kind: 'tcp', port, timeoutMs };
  } else if (p.httpGet) {
    const port = probePort(container, p.httpGet.port as number | string);
    if (port) check = { kind: 'http', port, path: p.httpGet.path ?? '/', timeoutMs, ...httpsOf(p.httpGet) };
  }
  if (!check) return undefined;
  return {
    check,
    initialDelayMs: Math.max(0, p.initialDelaySeconds ?? 0) * 1000,
    periodMs: Math.max(1, p.periodSeconds ?? 10) * 1000,
    failureThreshold: Math.max(1, p.failureThreshold ?? 3),
  };
}

export function probe(ip: string, check: ReadinessCheck): Promise<boolean> {
  if (check.kind === 'running') return Promise.resolve(true);
  if (check.kind === 'tcp') {
    return new Promise((resolve) => {
      const socket = new Socket();
      const done = (ok: boolean) => {
        socket.destroy();
        resolve(ok);
      };
      socket.setTimeout(check.timeoutMs, () => done(false));
      socket.once('error', () => done(false));
      socket.connect(check.port, ip, () => done(true));
    });
  }
  return new Promise((resolve) => {
    const options = { host: ip, port: check.port, path: check.path, timeout: check.timeoutMs };
    const onAnswer = (res: IncomingMessage) => {
      res.resume();
      const code = res.statusCode ?? 0;
      resolve(code >= 200 && code < 400);
    };
    // Like a kubelet, an HTTPS probe checks no certificate.
    const req = check.https
      ? httpsGet({ ...options, rejectUnauthorized: false }, onAnswer)
      : httpGet(options, onAnswer);
    req.once('timeout', () => req.destroy(new Error('timeout')));
    req.once('error', () => resolve(false));
  });
}
