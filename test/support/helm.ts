/**
 * helm for tests: the v3.17.1 binary from hack/helm.sh (cached outside the repository, never
 * committed) and small wrappers around `helm template`, `helm lint` and `helm install`.
 *
 *   const out = await helmTemplate({ values: { watchNamespaces: ['a'] } });
 *   const objects = parseManifests(out);
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import yaml from 'js-yaml';

const run = promisify(execFile);
export const REPO_ROOT = resolve(import.meta.dirname, '../..');
export const CHART_DIR = join(REPO_ROOT, 'helm/mysqlmq-operator');

let binary: Promise<string> | undefined;

/** The helm binary's absolute path, fetched and cached by hack/helm.sh on first use (about 3 s cold). */
export function helmBinary(): Promise<string> {
  binary ??= run('bash', [join(REPO_ROOT, 'hack/helm.sh')], { cwd: REPO_ROOT, timeout: 10 * 60_000 })
    .then(({ stdout }) => {
      const path = stdout.trim().split('\n').pop() ?? '';
      if (!path.startsWith('/')) throw new Error(`hack/helm.sh printed no path: ${stdout}`);
      return path;
    })
    .catch((err: unknown) => {
      binary = undefined;
      const e = err as { stderr?: string; message?: string };
      throw new Error(`hack/helm.sh failed: ${e.message ?? String(err)}\n${e.stderr ?? ''}`);
    });
  return binary;
}

export interface HelmResult {
  stdout: string;
  stderr: string;
}

/** A failed helm command; `stderr` holds helm's own message. */
export class HelmError extends Error {
  override readonly name = 'HelmError';
  constructor(
    readonly args: string[],
    readonly code: number | string | undefined,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(`helm ${args.join(' ')} failed (${code}): ${stderr.trim() || stdout.trim()}`);
  }
}

export interface HelmRunOptions {
  /** KUBECONFIG for commands that talk to a cluster (install, uninstall, status). */
  kubeconfig?: string;
  timeoutMs?: number;
}

/** Runs helm with its state (cache, config, data) in a throw-away directory, never in $HOME. */
export async function helm(args: string[], opts: HelmRunOptions = {}): Promise<HelmResult> {
  const bin = await helmBinary();
  const home = await mkdtemp(join(tmpdir(), 'mq-helm-home-'));
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: home,
    HELM_CACHE_HOME: join(home, 'cache'),
    HELM_CONFIG_HOME: join(home, 'config'),
    HELM_DATA_HOME: join(home, 'data'),
  };
  if (opts.kubeconfig) env.KUBECONFIG = opts.kubeconfig;
  try {
    const { stdout, stderr } = await run(bin, args, {
      cwd: REPO_ROOT,
      env,
      timeout: opts.timeoutMs ?? 120_000,
      maxBuffer: 64 << 20,
    });
    return { stdout, stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string };
    throw new HelmError(args, e.code, e.stdout ?? '', e.stderr ?? '');
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

/** Helm values (what a values file holds). */
export type HelmValues = Record<string, unknown>;

export interface RenderOptions {
  /** Release name (default mysqlmq-operator, as manifests/install.yaml uses). */
  release?: string;
  /** Release namespace (default mysqlmq-system). */
  namespace?: string;
  /** Values, written to a temporary values file (exact types, unlike --set). */
  values?: HelmValues;
  /** Also render the chart's crds/ (helm template --include-crds). */
  includeCrds?: boolean;
  /** Extra helm arguments. */
  extraArgs?: string[];
}

async function withValuesFile<T>(
  values: HelmValues | undefined,
  fn: (args: string[]) => Promise<T>,
): Promise<T> {
  if (!values || Object.keys(values).length === 0) return fn([]);
  const dir = await mkdtemp(join(tmpdir(), 'mq-helm-values-'));
  const file = join(dir, 'values.yaml');
  await writeFile(file, yaml.dump(values));
  try {
    return await fn(['--values', file]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** `helm template RELEASE helm/mysqlmq-operator --namespace NS [values]`: the rendered YAML. */
export async function helmTemplate(opts: RenderOptions = {}): Promise<string> {
  return withValuesFile(opts.values, async (valueArgs) => {
    const args = [
      'template',
      opts.release ?? 'mysqlmq-operator',
      CHART_DIR,
      '--namespace',
      opts.namespace ?? 'mysqlmq-system',
      ...(opts.includeCrds ? ['--include-crds'] : []),
      ...valueArgs,
      ...(opts.extraArgs ?? []),
    ];
    return (await helm(args)).stdout;
  });
}

/** `helm lint --strict helm/mysqlmq-operator [values]`: helm's output (throws HelmError on failure). */
export async function helmLint(values?: HelmValues): Promise<string> {
  return withValuesFile(values, async (valueArgs) => {
    const { stdout } = await helm(['lint', '--strict', CHART_DIR, ...valueArgs]);
    return stdout;
  });
}

/** A Kubernetes object as parsed from YAML. */
export interface ManifestObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [k: string]: unknown };
  [k: string]: unknown;
}

/** Every object of a multi-document YAML stream (empty documents skipped). */
export function parseManifests(text: string): ManifestObject[] {
  return yaml.loadAll(text).filter((d): d is ManifestObject => d !== null && typeof d === 'object');
}
