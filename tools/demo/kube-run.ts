#!/usr/bin/env node
/**
 * `make run` / `bash hack/dev.sh run`: the operator, on a cluster.
 *
 * - No reachable cluster (no $KUBECONFIG or ~/.kube/config, or it does not answer /readyz), or
 *   `--embedded`: starts the embedded control plane of hack/kube (etcd, kube-apiserver,
 *   kube-controller-manager; built once, about 5 minutes the first time), the test kubelet (2 nodes
 *   that run pods as local processes on 127.0.30.x), installs the CRD, runs the operator as a child
 *   process, applies examples/basic.yaml, waits until the cluster is Ready, prints how to use it
 *   with kubectl and mqctl, then waits. Ctrl-C stops the operator, the kubelet (every mariadbd and
 *   broker process) and the control plane, and removes the state directory.
 * - A reachable cluster: installs the CRD there and runs the operator in the foreground against it
 *   (logs on stdout) until Ctrl-C. Nothing else is created in that cluster.
 *
 * Flags: --embedded (ignore any configured cluster), --once (embedded: stop as soon as the cluster
 * is Ready and the instructions are printed; exit 1 if it never gets there).
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { sleep } from '../../src/common/deadline.js';
import { brokersServeTls } from '../../src/operator/api/defaults.js';
import { apiServerReady } from '../local/kube-control-plane.js';
import { freePort, kubectl } from '../local/kubectl.js';
import { REPO_ROOT } from '../local/paths.js';
import { EmbeddedStack, OPERATOR_MAIN, type OperatorProcess, installCrd } from '../local/stack.js';

/** Pod IPs of the embedded cluster. Tests use 127.0.2x, .40, .50, .60, .71 and 127.77/127.1. */
const ADDRESS_PREFIX = '127.0.30';
const EXAMPLE = 'examples/basic.yaml';
const CLUSTER = 'basic';
const READY_TIMEOUT_MS = 10 * 60_000;

const started = Date.now();
const elapsed = () => `${Math.round((Date.now() - started) / 1000)}s`.padStart(5);
const step = (text: string) => console.log(`==> ${text}`);
const CLI = 'node dist/cli/main.js';

class Interrupted extends Error {}

function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

const indent = (text: string, by = '    ') =>
  text
    .trimEnd()
    .split('\n')
    .map((l) => by + l)
    .join('\n');

/** The kubeconfig kubectl would use, or undefined when there is none. */
function configuredKubeconfig(): string | undefined {
  const env = process.env.KUBECONFIG;
  if (env && env.split(':').some((f) => f && existsSync(f))) return env;
  const home = join(homedir(), '.kube', 'config');
  return existsSync(home) ? home : undefined;
}

/** Where the operator serves /metrics and /healthz: the caller's env, else free ports on loopback. */
async function operatorEndpoints(): Promise<{ host: string; metricsPort: string; healthPort: string }> {
  return {
    host: process.env.POD_IP || '127.0.0.1',
    metricsPort: process.env.METRICS_PORT || String(await freePort()),
    healthPort: process.env.HEALTH_PORT || String(await freePort()),
  };
}

// --- a reachable cluster: run the operator against it ------------------------------------------

async function runAgainstCluster(kubeconfig: string): Promise<number> {
  const context = (await kubectl(undefined, ['config', 'current-context']).catch(() => '?')).trim();
  const server = (
    await kubectl(undefined, ['config', 'view', '--minify', '-o', 'jsonpath={.clusters[0].cluster.server}'])
  ).trim();
  step(`a cluster answers: context "${context}", server ${server} (kubeconfig ${kubeconfig})`);
  step(`installing the CRD (kubectl apply -f crds/)`);
  await installCrd(undefined);
  const ep = await operatorEndpoints();
  step(
    `running the operator HERE, in the foreground, against that cluster (logs below; Ctrl-C stops it)\n` +
      `    It reaches each MariaDB pod and broker by its pod IP, so this machine must be able to route to\n` +
      `    pod IPs. If it cannot, install the operator in the cluster instead:\n` +
      `      helm install mysqlmq-operator helm/mysqlmq-operator   (or kubectl apply -f manifests/install.yaml)\n` +
      `    Then create a cluster:  kubectl apply -f ${EXAMPLE}  and watch it:  kubectl get mqc -w\n` +
      `    Metrics: http://${ep.host}:${ep.metricsPort}/metrics   health: http://${ep.host}:${ep.healthPort}/healthz\n` +
      `    (force the embedded cluster instead with: bash hack/dev.sh run --embedded)`,
  );
  const child = spawn(process.execPath, [OPERATOR_MAIN], {
    env: {
      ...process.env,
      POD_IP: ep.host,
      METRICS_PORT: ep.metricsPort,
      HEALTH_PORT: ep.healthPort,
    },
    // Its own process group: a Ctrl-C reaches this program, which passes it on once.
    detached: true,
    stdio: ['ignore', 1, 1],
  });
  const forward = (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  process.on('SIGINT', () => forward('SIGINT'));
  process.on('SIGTERM', () => forward('SIGTERM'));
  process.on('SIGHUP', () => forward('SIGTERM'));
  process.once('exit', () => forward('SIGKILL'));
  const code = await new Promise<number>((resolve) =>
    child.on('exit', (c, s) => resolve(c ?? (s === 'SIGINT' || s === 'SIGTERM' ? 0 : 1))),
  );
  step(`operator exited (code ${code}); the CRD and any clusters stay in the cluster`);
  return code;
}

// --- no cluster: the embedded one ---------------------------------------------------------------

interface ClusterJson {
  metadata: { generation?: number };
  spec?: { brokers?: { port?: number; tls?: { enabled?: boolean } } };
  status?: {
    tls?: { brokers: boolean; mysql: boolean };
    observedGeneration?: number;
    phase?: string;
    shardsReady?: number;
    shardsTotal?: number;
    brokersReady?: number;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
  };
}

async function runEmbedded(once: boolean, reason: string): Promise<number> {
  let interrupted = false;
  let wake: () => void = () => undefined;
  const stopRequested = new Promise<void>((resolve) => (wake = resolve));
  let stopping = false;
  let signals = 0;
  let lastSignalAt = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    // One Ctrl-C can arrive twice (from the terminal and from a wrapper such as timeout(1)).
    if (Date.now() - lastSignalAt > 1000) signals++;
    lastSignalAt = Date.now();
    if (stopping) {
      if (signals < 2) return;
      if (signals >= 3) {
        console.log(`==> ${signal} again: exiting now (exit handlers kill what is left)`);
        process.exit(130);
      }
      console.log(`==> still stopping (${signal} once more to exit at once)`);
      return;
    }
    if (!interrupted) {
      interrupted = true;
      step(`${signal}: stopping`);
      wake();
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // A closed terminal: the control plane and the operator run in their own process groups and
  // would not get it, so stop them as for Ctrl-C.
  process.on('SIGHUP', onSignal);
  // After a hang-up, writing to the terminal fails (EIO): that must not cut the teardown short.
  process.stdout.on('error', () => undefined);
  process.stderr.on('error', () => undefined);
  const checkpoint = () => {
    if (interrupted) throw new Interrupted();
  };

  step(`${reason}: starting an embedded Kubernetes on this machine`);
  const stateDir = await mkdtemp(join(tmpdir(), 'mysqlmq-run-'));
  let stack: EmbeddedStack | undefined;
  let operator: OperatorProcess | undefined;
  let exitCode = 0;
  try {
    step(
      'installing kube-apiserver and kube-controller-manager (hack/kube/install.sh): built from ' +
        "Debian's source package and cached, about 5 minutes the first time, instant afterwards",
    );
    stack = await EmbeddedStack.start({
      stateDir,
      addressPrefix: ADDRESS_PREFIX,
      // Small InnoDB buffers: four mariadbd share a laptop or a 2-core machine.
      mariadbOverrides: { innodb_buffer_pool_size: '64M', innodb_log_file_size: '32M' },
      kube: {
        stateDir: join(stateDir, 'kube'),
        keepStateDir: true,
        detached: true,
        onInstallOutput: (chunk) => process.stdout.write(indent(chunk) + '\n'),
      },
      step,
      checkpoint,
    });
    const kubeconfig = stack.kubeconfig;
    step(`embedded cluster up (nodes node-a, node-b; pod IPs ${ADDRESS_PREFIX}.x); state in ${stateDir}`);

    const ep = await operatorEndpoints();
    step(`starting the operator (node dist/operator/main.js; log ${join(stateDir, 'operator.log')})`);
    operator = stack.startOperator({
      logFile: join(stateDir, 'operator.log'),
      detached: true,
      env: {
        POD_IP: ep.host,
        METRICS_PORT: ep.metricsPort,
        HEALTH_PORT: ep.healthPort,
        WATCH_NAMESPACES: process.env.WATCH_NAMESPACES ?? '',
      },
    });
    const op = operator;
    let operatorGone: string | undefined;
    void op.exitedHow.then((how) => {
      operatorGone = how;
      if (!stopping) {
        console.log(`==> the operator exited unexpectedly (${how}); its last log lines:`);
        console.log(indent(tail(op.logFile)));
        exitCode = 1;
        interrupted = true;
        wake();
      }
    });

    step(`applying ${EXAMPLE} (2 shards of primary + standby MariaDB, 2 brokers)`);
    console.log(indent((await kubectl(kubeconfig, ['apply', '-f', join(REPO_ROOT, EXAMPLE)])).trim()));
    checkpoint();

    step(
      `waiting for MessageQueueCluster "${CLUSTER}" to be Ready (phase and Ready condition as they change)`,
    );
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let last = '';
    let cr: ClusterJson | undefined;
    let ready = false;
    let failedShown = false;
    while (!ready) {
      checkpoint();
      try {
        cr = JSON.parse(await kubectl(kubeconfig, ['get', 'mqc', CLUSTER, '-o', 'json'])) as ClusterJson;
        const s = cr.status ?? {};
        const cond = s.conditions?.find((c) => c.type === 'Ready');
        const line =
          `phase ${s.phase ?? '-'}, shards ${s.shardsReady ?? 0}/${s.shardsTotal ?? '?'}, ` +
          `brokers ${s.brokersReady ?? 0}; Ready=${cond?.status ?? '-'}` +
          (cond ? ` ${cond.reason ?? ''}: ${cond.message ?? ''}` : '');
        if (line !== last) console.log(`  ${elapsed()}  ${line}`);
        last = line;
        ready = cond?.status === 'True' && s.observedGeneration === cr.metadata.generation;
        if (s.phase === 'Failed' && !failedShown) {
          // The operator gave up on this spec: say why now rather than after the timeout.
          failedShown = true;
          console.log(
            `==> the cluster is Failed; still waiting in case that changes (Ctrl-C to stop). kubectl describe mqc ${CLUSTER}:\n` +
              indent(await kubectl(kubeconfig, ['describe', 'mqc', CLUSTER]).catch((e: Error) => e.message)) +
              `\n==> the operator's last log lines (${op.logFile}):\n${indent(tail(op.logFile, 15))}`,
          );
        }
      } catch (err) {
        const line = `cannot read the cluster: ${(err as Error).message}`;
        if (line !== last) console.log(`  ${elapsed()}  ${line}`);
        last = line;
      }
      if (ready) break;
      if (Date.now() > deadline) break;
      await Promise.race([sleep(1000), stopRequested]);
    }
    checkpoint();

    if (!ready) {
      exitCode = 1;
      console.log(
        `==> not Ready after ${READY_TIMEOUT_MS / 60_000} minutes. What kubectl describe says:\n` +
          indent(await kubectl(kubeconfig, ['describe', 'mqc', CLUSTER]).catch((e: Error) => e.message)) +
          `\n==> the operator's last log lines (${op.logFile}):\n${indent(tail(op.logFile))}`,
      );
    } else {
      const port = cr?.spec?.brokers?.port ?? 8080;
      const https = cr ? brokersServeTls(cr) : true;
      const brokerPods = JSON.parse(
        await kubectl(kubeconfig, [
          'get',
          'pods',
          '-l',
          `mysqlmq.io/cluster=${CLUSTER},app.kubernetes.io/component=broker`,
          '-o',
          'json',
        ]),
      ) as { items: { metadata: { name: string }; status?: { podIP?: string } }[] };
      const brokers = brokerPods.items
        .filter((p) => p.status?.podIP)
        .map((p) => ({
          pod: p.metadata.name,
          url: `${https ? 'https' : 'http'}://${p.status!.podIP}:${port}`,
        }));
      const urls = brokers.map((b) => b.url).join(',');
      const get = await kubectl(kubeconfig, ['get', 'mqc']);
      const describe = await kubectl(kubeconfig, ['describe', 'mqc', CLUSTER]);
      const repo = relative(process.cwd(), REPO_ROOT) || '.';
      console.log(`
==> MessageQueueCluster "${CLUSTER}" is Ready after ${elapsed().trim()}.

Use the embedded cluster with kubectl (in another terminal):
  export KUBECONFIG=${kubeconfig}

$ kubectl get mqc
${get.trimEnd()}

$ kubectl describe mqc ${CLUSTER}
${describe.trimEnd()}

Brokers (pods run as local processes; there is no kube-proxy, so use the pod IPs, not the Service;
after a scale or a restart, kubectl get pods -l app.kubernetes.io/component=broker -o wide lists them):
${brokers.map((b) => `  ${b.pod}  ${b.url}`).join('\n')}

Produce and consume with mqctl${repo === '.' ? '' : ` (from ${REPO_ROOT})`}; brokers require a token (authentication is
on by default), the admin user's is in Secret ${CLUSTER}-user-admin:
  export MQ_BROKERS=${urls}
  export MQ_TOKEN=$(KUBECONFIG=${kubeconfig} kubectl get secret ${CLUSTER}-user-admin -o jsonpath='{.data.token}' | base64 -d)${
    https
      ? `
  # brokers serve HTTPS (TLS is on by default): trust the cluster's CA, check the Service name (pod IPs are in no certificate)
  KUBECONFIG=${kubeconfig} kubectl get secret ${CLUSTER}-broker-tls -o jsonpath='{.data.ca\\.crt}' | base64 -d > ${CLUSTER}-ca.crt
  export MQ_CA=$PWD/${CLUSTER}-ca.crt MQ_SERVER_NAME=${CLUSTER}-broker.default.svc`
      : ''
  }
  ${CLI} topics create orders
  ${CLI} produce orders "first" "second"
  seq 1 1000 | ${CLI} produce orders
  ${CLI} consume orders --group billing
  ${CLI} offsets orders --group billing
  ${CLI} status

More (with KUBECONFIG exported):
  kubectl get pods,svc,pvc -o wide -L mysqlmq.io/role   # 4 MariaDB pods (primary/standby), 2 brokers
  kubectl scale mqc ${CLUSTER} --replicas=3                 # 3 brokers
  kubectl get mqc ${CLUSTER} -w
  operator metrics: http://${ep.host}:${ep.metricsPort}/metrics
  logs: ${join(stateDir, 'operator.log')}, ${join(stateDir, 'kubelet.log')}, ${join(stateDir, 'kube')}/*.log

${once ? '--once: stopping now.' : 'Press Ctrl-C to stop the operator, the kubelet (every mariadbd and broker) and the control plane.'}`);
    }
    if (once) {
      interrupted = true;
      wake();
    }
    await stopRequested;
    if (operatorGone && exitCode === 0) exitCode = 1;
  } catch (err) {
    if (!(err instanceof Interrupted)) {
      console.error(`==> failed: ${(err as Error).message}`);
      if (operator) console.error(`==> the operator's last log lines:\n${indent(tail(operator.logFile))}`);
      exitCode = 1;
    }
  } finally {
    stopping = true;
    await stack?.stop('SIGTERM');
    await rm(stateDir, { recursive: true, force: true });
    step(`stopped; removed ${stateDir}`);
  }
  return exitCode;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      embedded: { type: 'boolean', default: false },
      once: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(
      'usage: bash hack/dev.sh run [--embedded] [--once]\n' +
        '  With a reachable cluster ($KUBECONFIG or ~/.kube/config answering /readyz): installs the CRD\n' +
        '  and runs the operator against it in the foreground. Otherwise (or with --embedded): starts an\n' +
        '  embedded control plane and test kubelet, the operator, applies examples/basic.yaml, waits for\n' +
        '  Ready and prints how to use it; Ctrl-C stops everything. --once: stop once Ready.',
    );
    return 0;
  }
  if (!existsSync(OPERATOR_MAIN)) {
    console.error(`${OPERATOR_MAIN} is missing: run npm run build first`);
    return 1;
  }
  if (values.embedded) return runEmbedded(values.once, '--embedded');
  const kubeconfig = configuredKubeconfig();
  if (!kubeconfig) return runEmbedded(values.once, 'no KUBECONFIG and no ~/.kube/config');
  if (!(await apiServerReady(undefined))) {
    return runEmbedded(values.once, `the cluster of ${kubeconfig} does not answer /readyz`);
  }
  return runAgainstCluster(kubeconfig);
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`==> failed: ${(err as Error).message}`);
    process.exit(1);
  },
);
