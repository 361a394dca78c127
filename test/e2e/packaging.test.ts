/**
 * Packaging: the helm chart lints and renders for the value sets people use; the three copies of
 * the CRD (crds/, the chart's crds/, manifests/install.yaml) are identical and install.yaml is the
 * chart rendered; and on a real kube-apiserver (hack/kube) the CRD and install.yaml apply, the
 * rendered chart passes server-side validation, `helm install` works, every invalid example is
 * rejected with the message it announces, the operator-validated ones are accepted, and
 * basic.yaml / production.yaml are accepted.
 */
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateSpec } from '../../src/operator/api/validate.js';
import {
  CHART_DIR,
  HelmError,
  type HelmValues,
  REPO_ROOT,
  type ManifestObject,
  helm,
  helmLint,
  helmTemplate,
  parseManifests,
} from '../support/helm.js';
import { type Kube, startKube } from '../support/kube.js';
import type { RbacUse } from '../../src/k8s/rbac.js';
import {
  checkOperatorRbac,
  formatNamespacedPermissions,
  operatorRbacOf,
  renderOperatorRbac,
  rulesFor,
} from '../support/operator-rbac.js';

const CRD_FILE = 'mysqlmq.io_messagequeueclusters.yaml';
const INVALID_DIR = join(REPO_ROOT, 'examples/invalid');
const read = (rel: string) => readFileSync(join(REPO_ROOT, rel), 'utf8');

/** The value sets the chart must handle. */
const VALUE_SETS: Record<string, HelmValues> = {
  defaults: {},
  watchNamespaces: { watchNamespaces: ['team-a', 'team-b'] },
  singleReplicaNoLeaderElection: { replicaCount: 1, leaderElection: { enabled: false } },
  serviceMonitor: { serviceMonitor: { enabled: true, labels: { release: 'prometheus' } } },
  monitoring: {
    monitoring: {
      brokerPodMonitor: { enabled: true },
      mysqldExporterPodMonitor: { enabled: true },
      prometheusRule: { enabled: true },
    },
  },
  networkPolicyOff: { networkPolicy: { enabled: false } },
  backupVolume: {
    extraVolumes: [{ name: 'backups', persistentVolumeClaim: { claimName: 'mq-backups' } }],
    extraVolumeMounts: [{ name: 'backups', mountPath: '/backups' }],
  },
};

interface Container {
  name: string;
  args?: string[];
  env?: { name: string; value?: string }[];
}
const operatorContainer = (objects: ManifestObject[]): Container => {
  const d = objects.find((o) => o.kind === 'Deployment') as unknown as {
    spec: { replicas: number; template: { spec: { containers: Container[] } } };
  };
  return d.spec.template.spec.containers.find((c) => c.name === 'operator')!;
};
const operatorPod = (objects: ManifestObject[]) =>
  (
    objects.find((o) => o.kind === 'Deployment') as unknown as {
      spec: {
        template: { spec: { volumes: unknown[]; containers: (Container & { volumeMounts: unknown[] })[] } };
      };
    }
  ).spec.template.spec;
const kinds = (objects: ManifestObject[]) => objects.map((o) => `${o.kind}/${o.metadata.name}`);

describe('helm chart', () => {
  const rendered: Record<string, ManifestObject[]> = {};

  it('mounts extraVolumes into the operator where extraVolumeMounts say: a directory backup target in a real cluster', async () => {
    const pod = operatorPod(parseManifests(await helmTemplate({ values: VALUE_SETS.backupVolume })));
    expect(pod.volumes).toContainEqual({
      name: 'backups',
      persistentVolumeClaim: { claimName: 'mq-backups' },
    });
    expect(pod.containers.find((c) => c.name === 'operator')!.volumeMounts).toEqual([
      { name: 'tmp', mountPath: '/tmp' },
      { name: 'backups', mountPath: '/backups' },
    ]);
    const refused = await helmTemplate({ values: { extraVolumeMounts: [{ name: 'backups' }] } }).catch(
      (e: unknown) => e,
    );
    expect(String(refused)).toMatch(/mountPath/);
  });

  it.each(Object.keys(VALUE_SETS))('helm lint --strict and helm template succeed (%s)', async (set) => {
    const lint = await helmLint(VALUE_SETS[set]);
    expect(lint).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
    const objects = parseManifests(await helmTemplate({ values: VALUE_SETS[set] }));
    expect(objects.length).toBeGreaterThan(4);
    for (const o of objects) {
      expect(o.apiVersion, kinds([o])[0]).toBeTruthy();
      expect(o.metadata.name, o.kind).toMatch(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
    }
    rendered[set] = objects;
  });

  it('renders a cluster-wide operator by default: 2 replicas with leader election', () => {
    const objects = rendered.defaults!;
    expect(kinds(objects)).toEqual([
      'ServiceAccount/mysqlmq-operator',
      'ClusterRole/mysqlmq-operator',
      'ClusterRoleBinding/mysqlmq-operator',
      'Role/mysqlmq-operator-leader-election',
      'RoleBinding/mysqlmq-operator-leader-election',
      'Service/mysqlmq-operator-metrics',
      'Deployment/mysqlmq-operator',
    ]);
    const c = operatorContainer(objects);
    expect(c.args).toEqual(['--leader-elect']);
    const env = Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]));
    expect(env).toMatchObject({
      WATCH_NAMESPACES: '',
      METRICS_PORT: '8080',
      HEALTH_PORT: '8081',
      LEADER_ELECT_LEASE_DURATION: '15s',
      LEADER_ELECT_RENEW_DEADLINE: '10s',
      LEADER_ELECT_RETRY_PERIOD: '2s',
    });
    expect(Object.keys(env)).toEqual(expect.arrayContaining(['POD_NAMESPACE', 'POD_NAME', 'MQ_LOG_LEVEL']));
  });

  it('with watchNamespaces: a Role per watched namespace plus the Lease Role, nothing cluster-wide', async () => {
    const objects = rendered.watchNamespaces!;
    expect(objects.filter((o) => o.kind.startsWith('Cluster'))).toEqual([]);
    const roles = objects.filter((o) => o.kind === 'Role').map((o) => o.metadata.namespace);
    expect(roles).toEqual(['team-a', 'team-b', 'mysqlmq-system']);
    const env = operatorContainer(objects).env ?? [];
    expect(env.find((e) => e.name === 'WATCH_NAMESPACES')?.value).toBe('team-a,team-b');
    const rbac = await renderOperatorRbac({ values: VALUE_SETS.watchNamespaces });
    expect(rbac.clusterWide).toBe(false);
    expect(rbac.roles.map((r) => r.namespace)).toEqual(['team-a', 'team-b', 'mysqlmq-system']);
    expect(rulesFor(rbac, undefined)).toEqual([]);
    expect(rulesFor(rbac, 'team-a').length).toBeGreaterThan(0);
    // In the release namespace only the leader-election Lease.
    expect(rulesFor(rbac, 'mysqlmq-system').flatMap((r) => r.resources)).toEqual(['leases', 'leases']);
  });

  it("gives the operator its own pod labels for the clusters' NetworkPolicies, and RBAC for them; none when off", async () => {
    const deployment = rendered.defaults!.find((o) => o.kind === 'Deployment') as unknown as {
      spec: {
        selector: { matchLabels: Record<string, string> };
        template: { metadata: { labels: Record<string, string> } };
      };
    };
    const env = operatorContainer(rendered.defaults!).env ?? [];
    const labels = env.find((e) => e.name === 'NETWORK_POLICY_OPERATOR_LABELS')?.value ?? '';
    const parsed = Object.fromEntries(labels.split(',').map((kv) => kv.split('=') as [string, string]));
    // The selector labels: every operator pod carries them, whatever podLabels add.
    expect(parsed).toEqual(deployment.spec.selector.matchLabels);
    expect(deployment.spec.template.metadata.labels).toMatchObject(parsed);
    const verbs = async (values: HelmValues) =>
      rulesFor(await renderOperatorRbac({ values }), 'any')
        .filter((r) => r.resources?.includes('networkpolicies'))
        .flatMap((r) => r.verbs);
    expect(await verbs({})).toEqual(['list', 'watch', 'create', 'patch']);
    expect(await verbs(VALUE_SETS.networkPolicyOff!)).toEqual([]);
    const off = operatorContainer(rendered.networkPolicyOff!).env ?? [];
    expect(off.map((e) => e.name)).not.toContain('NETWORK_POLICY_OPERATOR_LABELS');
  });

  it('with leader election off and 1 replica: no --leader-elect and no lease settings', () => {
    const objects = rendered.singleReplicaNoLeaderElection!;
    const d = objects.find((o) => o.kind === 'Deployment') as unknown as { spec: { replicas: number } };
    expect(d.spec.replicas).toBe(1);
    expect(kinds(objects)).not.toContain('Role/mysqlmq-operator-leader-election');
    const c = operatorContainer(objects);
    expect(c.args ?? []).not.toContain('--leader-elect');
    expect((c.env ?? []).filter((e) => e.name.startsWith('LEADER_ELECT_'))).toEqual([]);
  });

  it('refuses 2 replicas without leader election, saying why', async () => {
    const err = await helmTemplate({ values: { replicaCount: 2, leaderElection: { enabled: false } } }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(HelmError);
    expect((err as HelmError).stderr).toContain('replicaCount > 1 needs leaderElection.enabled=true');
  });

  it('with serviceMonitor.enabled: a ServiceMonitor scraping the metrics port', () => {
    const sm = rendered.serviceMonitor!.find(
      (o) => o.kind === 'ServiceMonitor',
    ) as unknown as ManifestObject & {
      spec: { endpoints: { port: string; path: string }[] };
    };
    expect(sm.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(sm.metadata.labels?.release).toBe('prometheus');
    expect(sm.spec.endpoints).toEqual([expect.objectContaining({ port: 'http-metrics', path: '/metrics' })]);
    expect(rendered.defaults!.some((o) => o.kind === 'ServiceMonitor')).toBe(false);
  });

  it('with monitoring: PodMonitors for brokers and the MariaDB exporter sidecars, and the alerts', () => {
    const objects = rendered.monitoring!;
    const mysqld = objects.find((o) => o.metadata.name === 'mysqlmq-operator-mysqld') as unknown as
      | (ManifestObject & {
          spec: {
            selector: { matchLabels: Record<string, string> };
            podMetricsEndpoints: { port: string; relabelings: { targetLabel: string }[] }[];
          };
        })
      | undefined;
    expect(mysqld?.kind).toBe('PodMonitor');
    expect(mysqld!.spec.selector.matchLabels).toEqual({
      'app.kubernetes.io/managed-by': 'mysqlmq-operator',
      'app.kubernetes.io/component': 'mysql',
    });
    const [endpoint] = mysqld!.spec.podMetricsEndpoints;
    expect(endpoint!.port).toBe('metrics');
    expect(endpoint!.relabelings.map((r) => r.targetLabel)).toEqual(['cluster', 'shard', 'role']);
    expect(kinds(objects)).toEqual(
      expect.arrayContaining(['PodMonitor/mysqlmq-operator-brokers', 'PrometheusRule/mysqlmq-operator']),
    );
    expect(rendered.defaults!.some((o) => o.kind === 'PodMonitor')).toBe(false);
  });

  it('values.schema.json refuses a wrong value type', async () => {
    const err = await helmTemplate({ values: { replicaCount: 'two' } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HelmError);
    expect((err as HelmError).stderr).toMatch(/replicaCount/);
  });
});

describe('chart RBAC helpers (test/support/operator-rbac.ts)', () => {
  const use = (
    apiGroup: string,
    resource: string,
    verb: RbacUse['verb'],
    more: Partial<RbacUse> = {},
  ): RbacUse => ({
    apiGroup,
    resource,
    verb,
    ...more,
  });

  it('cluster-wide: checks every request against the ClusterRole', async () => {
    const rbac = await renderOperatorRbac();
    expect(rbac.clusterWide).toBe(true);
    expect(rbac.serviceAccount).toEqual({ name: 'mysqlmq-operator', namespace: 'mysqlmq-system' });
    expect(rbac.roles.map((r) => `${r.kind}/${r.name}`)).toEqual([
      'ClusterRole/mysqlmq-operator',
      'Role/mysqlmq-operator-leader-election',
    ]);
    const used = [
      use('mysqlmq.io', 'messagequeueclusters', 'watch'),
      use('mysqlmq.io', 'messagequeueclusters', 'patch', {
        subresource: 'status',
        namespace: 'a',
        name: 'c',
      }),
      use('', 'events', 'create', { namespace: 'a' }),
      // Nodes are watched (drain), never changed.
      use('', 'nodes', 'patch'),
      use('coordination.k8s.io', 'leases', 'update', {
        namespace: 'mysqlmq-system',
        name: 'mysqlmq-operator-leader',
      }),
      // Only the operator's own Lease: never another component's leader election.
      use('coordination.k8s.io', 'leases', 'update', { namespace: 'kube-system', name: 'kube-scheduler' }),
    ];
    const r = checkOperatorRbac(rbac, used);
    expect(formatNamespacedPermissions(r.missing)).toEqual([
      'core/nodes patch',
      '[kube-system] coordination.k8s.io/leases update',
    ]);
    const unused = formatNamespacedPermissions(r.unused);
    expect(unused).toContain('apps/deployments patch');
    expect(unused).toContain('[mysqlmq-system] coordination.k8s.io/leases create');
    expect(unused).not.toContain('[mysqlmq-system] coordination.k8s.io/leases update');
    expect(unused).not.toContain('mysqlmq.io/messagequeueclusters watch');
    expect(unused).not.toContain('core/events create');
  });

  it('namespaced: a request needs the Role of its namespace; one across all namespaces needs a ClusterRole', async () => {
    const rbac = await renderOperatorRbac({ values: { watchNamespaces: ['team-a'] } });
    const used = [
      use('mysqlmq.io', 'messagequeueclusters', 'watch', { namespace: 'team-a' }),
      use('mysqlmq.io', 'messagequeueclusters', 'watch'),
      use('', 'pods', 'create', { namespace: 'team-b' }),
      use('coordination.k8s.io', 'leases', 'update', {
        namespace: 'mysqlmq-system',
        name: 'mysqlmq-operator-leader',
      }),
    ];
    const r = checkOperatorRbac(rbac, used);
    expect(formatNamespacedPermissions(r.missing)).toEqual([
      'mysqlmq.io/messagequeueclusters watch',
      '[team-b] core/pods create',
    ]);
    const unused = formatNamespacedPermissions(r.unused);
    expect(unused).toContain('[team-a] core/pods create');
    expect(unused).not.toContain('[team-a] mysqlmq.io/messagequeueclusters watch');
    expect(unused).not.toContain('[mysqlmq-system] coordination.k8s.io/leases update');
  });

  it('reads the same RBAC from manifests/install.yaml', () => {
    const rbac = operatorRbacOf(parseManifests(read('manifests/install.yaml')), 'mysqlmq-system');
    expect(rbac.clusterWide).toBe(true);
    expect(rulesFor(rbac, 'any').length).toBeGreaterThan(0);
  });
});

describe('the CRD copies never drift', () => {
  it('crds/ and the chart crds/ hold the same files, byte for byte', () => {
    const a = readdirSync(join(REPO_ROOT, 'crds')).sort();
    const b = readdirSync(join(CHART_DIR, 'crds')).sort();
    expect(b).toEqual(a);
    expect(a).toContain(CRD_FILE);
    for (const f of a) expect(read(`helm/mysqlmq-operator/crds/${f}`), f).toBe(read(`crds/${f}`));
  });

  it('each CRD inside manifests/install.yaml is the same object (and the same text)', () => {
    const install = parseManifests(read('manifests/install.yaml'));
    const crds = install.filter((o) => o.kind === 'CustomResourceDefinition');
    const files = readdirSync(join(REPO_ROOT, 'crds')).sort();
    expect(crds).toHaveLength(files.length);
    const text = read('manifests/install.yaml');
    for (const file of files) {
      const crd = yaml.load(read(`crds/${file}`)) as { metadata: { name: string } };
      expect(crds.find((c) => c.metadata?.name === crd.metadata.name)).toEqual(crd);
      const marker = `# Source: mysqlmq-operator/crds/${file}\n`;
      expect(text).toContain(marker);
      const start = text.indexOf(marker) + marker.length;
      const end = text.indexOf('\n---', start);
      expect(text.slice(start, end).trimEnd()).toBe(read(`crds/${file}`).trimEnd());
    }
  });

  it('manifests/install.yaml is exactly the chart rendered (run bash hack/gen-manifests.sh when this fails)', async () => {
    const text = read('manifests/install.yaml');
    const header = text.slice(0, text.indexOf('# END HEADER\n') + '# END HEADER\n'.length);
    const namespace =
      '---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: mysqlmq-system\n  labels:\n    app.kubernetes.io/part-of: mysqlmq\n';
    const chart = await helmTemplate({ includeCrds: true });
    expect(text).toBe(header + namespace + chart);
  });
});

// --- on a real kube-apiserver -------------------------------------------------------------------

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runCommand(
  cmd: string,
  args: string[],
  input?: string,
  env?: NodeJS.ProcessEnv,
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: REPO_ROOT, env: env ?? process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(input ?? '');
  });
}

/** The `# Expected error:` / `# Expected condition:` lines of an example. */
function expectations(file: string): { errors: string[]; conditions: string[] } {
  const text = readFileSync(join(INVALID_DIR, file), 'utf8');
  const grab = (label: string) =>
    [...text.matchAll(new RegExp(`^# Expected ${label}: (.+)$`, 'gm'))].map((m) => m[1]!.trim());
  return { errors: grab('error'), conditions: grab('condition') };
}

const invalidFiles = readdirSync(INVALID_DIR).filter((f) => f.endsWith('.yaml'));
const apiserverRejected = invalidFiles.filter((f) => !f.startsWith('operator-'));
const operatorRejected = invalidFiles.filter((f) => f.startsWith('operator-'));

describe('invalid examples say what to expect', () => {
  it('at least 10 are rejected by the apiserver, each announcing its error; operator-*.yaml announce a condition', () => {
    expect(apiserverRejected.length).toBeGreaterThanOrEqual(10);
    expect(operatorRejected.length).toBeGreaterThan(0);
    for (const f of apiserverRejected) {
      const e = expectations(f);
      expect(e.errors.length, `${f} needs "# Expected error:" lines`).toBeGreaterThan(0);
      expect(e.conditions, f).toEqual([]);
    }
    for (const f of operatorRejected) {
      const e = expectations(f);
      expect(e.conditions.length, `${f} needs "# Expected condition:" lines`).toBeGreaterThan(0);
      expect(e.errors, f).toEqual([]);
    }
  });

  it.each(operatorRejected)('%s: the operator refuses it with the announced message', (f) => {
    const cr = yaml.load(readFileSync(join(INVALID_DIR, f), 'utf8')) as { spec?: Record<string, unknown> };
    const problems = validateSpec(cr.spec).join('\n');
    for (const text of expectations(f).conditions) expect(problems).toContain(text);
  });
});

describe('on the embedded control plane', () => {
  let kube: Kube;
  const kubectl = (args: string[], input?: string) =>
    runCommand('kubectl', ['--kubeconfig', kube.kubeconfigPath, ...args], input);
  const ok = async (args: string[], input?: string) => {
    const r = await kubectl(args, input);
    if (r.code !== 0)
      throw new Error(`kubectl ${args.join(' ')} failed (${r.code}):\n${r.stderr}${r.stdout}`);
    return r.stdout;
  };

  /**
   * `kubectl auth can-i --as=SA ...`: "yes" or "no". A fresh grant reaches the RBAC authorizer's
   * cache within moments, so a "no" is asked again for up to 10 s before it counts (`wait`).
   */
  const canI = async (sa: string, args: string[], wait = true) => {
    const deadline = wait ? Date.now() + 10_000 : 0;
    for (;;) {
      const answer = (await kubectl(['auth', 'can-i', `--as=${sa}`, ...args])).stdout.trim();
      if (answer === 'yes' || Date.now() > deadline) return answer;
      await new Promise((r) => setTimeout(r, 250));
    }
  };

  beforeAll(async () => {
    kube = await startKube();
  });
  afterAll(async () => {
    await kube?.stop();
  });

  it('kubectl apply -f crds/ installs an Established CRD', async () => {
    await ok(['apply', '-f', 'crds/']);
    await ok(['wait', '--for=condition=Established', 'crd/messagequeueclusters.mysqlmq.io', '--timeout=60s']);
    expect(await ok(['api-resources', '--api-group=mysqlmq.io', '-o', 'name'])).toContain(
      'messagequeueclusters.mysqlmq.io',
    );
  });

  it('kubectl apply -f manifests/install.yaml installs the operator (and again: idempotent)', async () => {
    const first = await ok(['apply', '-f', 'manifests/install.yaml']);
    expect(first).toMatch(/deployment.apps\/mysqlmq-operator (created|configured|unchanged)/);
    const again = await ok(['apply', '-f', 'manifests/install.yaml']);
    expect(again).not.toMatch(/created/);
    const sa = 'system:serviceaccount:mysqlmq-system:mysqlmq-operator';
    const can = (...args: string[]) => canI(sa, args);
    const cannot = async (...args: string[]) => (await canI(sa, args, false)) === 'no';
    expect(await can('watch', 'messagequeueclusters.mysqlmq.io', '--all-namespaces')).toBe('yes');
    expect(await can('patch', 'messagequeueclusters.mysqlmq.io/status', '-n', 'anywhere')).toBe('yes');
    expect(await cannot('delete', 'nodes')).toBe(true);
    expect(await cannot('create', 'clusterroles.rbac.authorization.k8s.io')).toBe(true);
    expect(
      await can('update', 'leases.coordination.k8s.io/mysqlmq-operator-leader', '-n', 'mysqlmq-system'),
    ).toBe('yes');
    expect(await cannot('update', 'leases.coordination.k8s.io/kube-scheduler', '-n', 'kube-system')).toBe(
      true,
    );
    expect(await cannot('delete', 'deployments.apps', '-n', 'anywhere')).toBe(true);
  });

  it.each(Object.keys(VALUE_SETS))(
    'the chart rendered with %s passes server-side validation',
    async (set) => {
      await ok(['create', 'namespace', 'team-a', '--dry-run=client', '-o', 'yaml']).then((y) =>
        ok(['apply', '-f', '-'], y),
      );
      await ok(['create', 'namespace', 'team-b', '--dry-run=client', '-o', 'yaml']).then((y) =>
        ok(['apply', '-f', '-'], y),
      );
      if (set === 'serviceMonitor') {
        // The ServiceMonitor kind comes from prometheus-operator; a minimal stand-in CRD lets the
        // apiserver check the object's kind, names and labels.
        await ok(['apply', '-f', '-'], SERVICE_MONITOR_CRD);
        await ok(['wait', '--for=condition=Established', 'crd/servicemonitors.monitoring.coreos.com']);
      }
      if (set === 'monitoring') {
        // Stand-ins for prometheus-operator's PodMonitor and PrometheusRule, as for ServiceMonitor.
        for (const [kind, required] of [
          ['PodMonitor', ['selector', 'podMetricsEndpoints']],
          ['PrometheusRule', ['groups']],
        ] as const) {
          await ok(['apply', '-f', '-'], standInCrd(kind, [...required]));
          await ok([
            'wait',
            '--for=condition=Established',
            `crd/${kind.toLowerCase()}s.monitoring.coreos.com`,
          ]);
        }
      }
      const out = await ok(
        ['apply', '--dry-run=server', '-f', '-', '-o', 'name'],
        await helmTemplate({ values: VALUE_SETS[set] }),
      );
      expect(out).toContain('deployment.apps/mysqlmq-operator');
      if (set === 'serviceMonitor')
        expect(out).toContain('servicemonitor.monitoring.coreos.com/mysqlmq-operator');
      if (set === 'monitoring') {
        expect(out).toContain('podmonitor.monitoring.coreos.com/mysqlmq-operator-mysqld');
        expect(out).toContain('prometheusrule.monitoring.coreos.com/mysqlmq-operator');
      }
    },
  );

  it('helm install of the chart (watching one namespace) works, and helm uninstall removes it', async () => {
    const release = 'mq-scoped';
    const ns = 'mq-scoped-system';
    await ok(['create', 'namespace', ns]);
    await ok(['create', 'namespace', 'team-c']);
    const values = [
      '--set',
      'watchNamespaces={team-c}',
      '--set',
      'replicaCount=1',
      '--set',
      'leaderElection.enabled=false',
    ];
    const installed = await helm(['install', release, CHART_DIR, '--namespace', ns, ...values], {
      kubeconfig: kube.kubeconfigPath,
    });
    expect(installed.stdout).toMatch(/STATUS: deployed/);
    // NOTES.txt is rendered for the person installing.
    expect(installed.stdout).toMatch(/NOTES:/);
    const sa = `system:serviceaccount:${ns}:${release}-mysqlmq-operator`;
    const can = (...args: string[]) => canI(sa, args);
    const cannot = async (...args: string[]) => (await canI(sa, args, false)) === 'no';
    expect(await can('watch', 'messagequeueclusters.mysqlmq.io', '-n', 'team-c')).toBe('yes');
    expect(await can('create', 'pods', '-n', 'team-c')).toBe('yes');
    expect(await cannot('watch', 'messagequeueclusters.mysqlmq.io', '-n', 'default')).toBe(true);
    expect(await cannot('watch', 'messagequeueclusters.mysqlmq.io', '--all-namespaces')).toBe(true);
    // Leader election is off: nothing at all in the release namespace.
    expect(await cannot('update', 'leases.coordination.k8s.io/mysqlmq-operator-leader', '-n', ns)).toBe(true);
    expect(await cannot('create', 'pods', '-n', ns)).toBe(true);
    await helm(['uninstall', release, '--namespace', ns], { kubeconfig: kube.kubeconfigPath });
    expect(
      await ok(['get', 'role,rolebinding,deployment,serviceaccount', '-n', 'team-c', '-o', 'name']),
    ).not.toContain(release);
    // helm never deletes what it installed from crds/ (here: it found the CRD already there).
    await ok(['get', 'crd', 'messagequeueclusters.mysqlmq.io']);
  });

  it('the apiserver accepts examples/basic.yaml and examples/production.yaml and fills in the defaults', async () => {
    await ok(['create', 'namespace', 'examples']);
    await ok([
      'create',
      '-n',
      'examples',
      '--validate=false',
      '-f',
      'examples/basic.yaml',
      '-f',
      'examples/production.yaml',
    ]);
    const basic = JSON.parse(await ok(['get', '-n', 'examples', 'mqc', 'basic', '-o', 'json'])) as {
      spec: Record<string, unknown>;
    };
    expect(basic.spec).toMatchObject({
      shards: 2,
      mysql: { image: 'mariadb:10.11', durability: 'required', storage: { size: '1Gi' } },
      brokers: { replicas: 2, port: 8080 },
      failover: { promoteStandbyForReads: true },
      pvcDeletionPolicy: 'Retain',
    });
    expect(validateSpec(basic.spec)).toEqual([]);
    const prod = JSON.parse(await ok(['get', '-n', 'examples', 'mqc', 'mq-prod', '-o', 'json'])) as {
      spec: Record<string, unknown>;
    };
    expect(prod.spec).toMatchObject({
      shards: 4,
      brokers: { replicas: 3, authSecretName: 'mq-prod-client-token' },
    });
    expect(validateSpec(prod.spec)).toEqual([]);
    // Printer columns and the short name.
    const table = await ok(['get', '-n', 'examples', 'mqc']);
    expect(table.split('\n')[0]).toMatch(
      /^NAME\s+READY\s+PHASE\s+SHARDSREADY\s+SHARDS\s+WRITABLE\s+BROKERS\s+LAST-FAILOVER\s+AGE/,
    );
    // The scale subresource drives spec.brokers.replicas.
    await ok(['scale', '-n', 'examples', 'mqc/basic', '--replicas=3']);
    expect(
      await ok(['get', '-n', 'examples', 'mqc', 'basic', '-o', 'jsonpath={.spec.brokers.replicas}']),
    ).toBe('3');
  });

  it.each(apiserverRejected)('the apiserver rejects %s with the announced message', async (f) => {
    // --validate=false: the server's validation is under test, not kubectl's client-side schema check.
    const r = await kubectl([
      'create',
      '--dry-run=server',
      '--validate=false',
      '-n',
      'default',
      '-f',
      join('examples/invalid', f),
    ]);
    expect(r.code, `${f} was accepted:\n${r.stdout}`).not.toBe(0);
    expect(r.stderr).toMatch(/The MessageQueueCluster "[^"]+" is invalid/);
    for (const text of expectations(f).errors) expect(r.stderr).toContain(text);
  });

  it.each(operatorRejected)('the apiserver accepts %s (the operator is the one refusing it)', async (f) => {
    const out = await ok([
      'create',
      '--dry-run=server',
      '--validate=false',
      '-n',
      'default',
      '-f',
      join('examples/invalid', f),
      '-o',
      'name',
    ]);
    expect(out).toMatch(/^messagequeuecluster\.mysqlmq\.io\//);
  });
});

const SERVICE_MONITOR_CRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: ServiceMonitor, listKind: ServiceMonitorList, plural: servicemonitors, singular: servicemonitor}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [selector, endpoints]
              x-kubernetes-preserve-unknown-fields: true
`;

/** A minimal stand-in CRD of a prometheus-operator kind (group monitoring.coreos.com, v1). */
function standInCrd(kind: string, required: string[]): string {
  const plural = `${kind.toLowerCase()}s`;
  return `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: ${plural}.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: ${kind}, listKind: ${kind}List, plural: ${plural}, singular: ${kind.toLowerCase()}}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [${required.join(', ')}]
              x-kubernetes-preserve-unknown-fields: true
`;
}
