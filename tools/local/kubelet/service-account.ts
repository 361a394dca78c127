import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CoreV1Api, KubeConfig, V1Pod, V1Secret, V1ServiceAccount } from '@kubernetes/client-node';
import { isNotFound } from '../../../src/k8s/client.js';
import { ContainerConfigError } from './env.js';

/**
 * A pod's ServiceAccount credentials as a kubeconfig file, so a process the test kubelet runs talks
 * to the apiserver as `system:serviceaccount:NS:NAME` with exactly the RBAC that account has (what
 * in-cluster config gives a real pod). On Kubernetes 1.20 the token controller creates a Secret of
 * type kubernetes.io/service-account-token for every ServiceAccount; its `token` and `ca.crt` are
 * what a real kubelet mounts at /var/run/secrets/kubernetes.io/serviceaccount.
 */

export const SERVICE_ACCOUNT_TOKEN_TYPE = 'kubernetes.io/service-account-token';
const SA_NAME_ANNOTATION = 'kubernetes.io/service-account.name';
const SA_UID_ANNOTATION = 'kubernetes.io/service-account.uid';

/** The ServiceAccount a pod runs as (`default` when the spec names none). */
export function podServiceAccountName(pod: V1Pod): string {
  return pod.spec?.serviceAccountName || pod.spec?.serviceAccount || 'default';
}

/** Whether the pod gets API credentials (automountServiceAccountToken: the pod's setting wins over the account's). */
export function automountsToken(pod: V1Pod, sa: V1ServiceAccount | undefined): boolean {
  return pod.spec?.automountServiceAccountToken ?? sa?.automountServiceAccountToken ?? true;
}

/**
 * The token Secret of a ServiceAccount among `secrets`: of type service-account-token, annotated
 * with the account's name (and uid, when both are known: a Secret left from a deleted account of
 * the same name is not it), with a non-empty `token`. Secrets the account lists in `.secrets`
 * come first, then the rest by name, so the choice is stable.
 */
export function findTokenSecret(
  secrets: readonly V1Secret[],
  serviceAccountName: string,
  sa?: V1ServiceAccount,
): V1Secret | undefined {
  const listed = new Set((sa?.secrets ?? []).map((r) => r.name));
  const uid = sa?.metadata?.uid;
  const candidates = secrets.filter((s) => {
    if (s.type !== SERVICE_ACCOUNT_TOKEN_TYPE) return false;
    const a = s.metadata?.annotations ?? {};
    if (a[SA_NAME_ANNOTATION] !== serviceAccountName) return false;
    if (uid && a[SA_UID_ANNOTATION] && a[SA_UID_ANNOTATION] !== uid) return false;
    return Boolean(s.data?.token);
  });
  return [...candidates].sort((a, b) => {
    const la = listed.has(a.metadata?.name) ? 0 : 1;
    const lb = listed.has(b.metadata?.name) ? 0 : 1;
    return la - lb || (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? '');
  })[0];
}

export interface ServiceAccountCredentials {
  /** The bearer token (decoded). */
  token: string;
  /** PEM CA bundle that signed the apiserver's serving certificate, if known. */
  caPem?: string;
  /** The account's namespace (the kubeconfig context's default namespace). */
  namespace: string;
  serviceAccountName: string;
}

/** Decodes a token Secret: its `token`, `ca.crt` and `namespace` keys. */
export function credentialsFromSecret(
  secret: V1Secret,
  serviceAccountName: string,
): ServiceAccountCredentials {
  const decode = (k: string) => {
    const v = secret.data?.[k];
    return v ? Buffer.from(v, 'base64').toString('utf8') : undefined;
  };
  const token = decode('token');
  if (!token) throw new ContainerConfigError(`secret "${secret.metadata?.name}" has no token`);
  return {
    token,
    caPem: decode('ca.crt'),
    namespace: decode('namespace') ?? secret.metadata?.namespace ?? 'default',
    serviceAccountName,
  };
}

/** What a kubeconfig needs from the cluster: the apiserver URL and how to trust it. */
export interface ApiServerEndpoint {
  server: string;
  /** PEM; wins over caFile. */
  caPem?: string;
  caFile?: string;
  insecureSkipTLSVerify?: boolean;
  tlsServerName?: string;
}

/** The apiserver endpoint of a loaded kubeconfig (e.g. the test kubelet's own). */
export function endpointOf(kc: KubeConfig): ApiServerEndpoint {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const caPem = cluster.caData
    ? Buffer.from(cluster.caData, 'base64').toString('utf8')
    : cluster.caFile
      ? readFileSync(cluster.caFile, 'utf8')
      : undefined;
  return {
    server: cluster.server,
    ...(caPem ? { caPem } : {}),
    ...(cluster.skipTLSVerify ? { insecureSkipTLSVerify: true } : {}),
    ...(cluster.tlsServerName ? { tlsServerName: cluster.tlsServerName } : {}),
  };
}

/**
 * A kubeconfig (JSON, which is valid YAML) authenticating as the ServiceAccount: one cluster
 * (`server`, CA from the token Secret's ca.crt, else from `endpoint`), one user (the token), one
 * context with the account's namespace. Pure.
 */
export function serviceAccountKubeconfig(
  creds: ServiceAccountCredentials,
  endpoint: ApiServerEndpoint,
): string {
  const caPem = creds.caPem ?? endpoint.caPem;
  const cluster: Record<string, unknown> = { server: endpoint.server };
  if (caPem) cluster['certificate-authority-data'] = Buffer.from(caPem, 'utf8').toString('base64');
  else if (endpoint.caFile) cluster['certificate-authority'] = endpoint.caFile;
  if (endpoint.insecureSkipTLSVerify) cluster['insecure-skip-tls-verify'] = true;
  if (endpoint.tlsServerName) cluster['tls-server-name'] = endpoint.tlsServerName;
  const user = `system:serviceaccount:${creds.namespace}:${creds.serviceAccountName}`;
  return `${JSON.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'in-cluster', cluster }],
      users: [{ name: user, user: { token: creds.token } }],
      contexts: [
        { name: 'in-cluster', context: { cluster: 'in-cluster', user, namespace: creds.namespace } },
      ],
      'current-context': 'in-cluster',
      preferences: {},
    },
    null,
    2,
  )}\n`;
}

/** Reads the pod's ServiceAccount and its token Secret; ContainerConfigError while either is missing. */
export async function podServiceAccountCredentials(
  core: CoreV1Api,
  pod: V1Pod,
): Promise<{ creds: ServiceAccountCredentials; automount: boolean }> {
  const namespace = pod.metadata?.namespace ?? 'default';
  const name = podServiceAccountName(pod);
  let sa: V1ServiceAccount;
  try {
    sa = await core.readNamespacedServiceAccount({ name, namespace });
  } catch (err) {
    if (isNotFound(err)) throw new ContainerConfigError(`serviceaccount "${name}" not found`);
    throw err;
  }
  const automount = automountsToken(pod, sa);
  const list = await core.listNamespacedSecret({
    namespace,
    fieldSelector: `type=${SERVICE_ACCOUNT_TOKEN_TYPE}`,
  });
  const secret = findTokenSecret(list.items, name, sa);
  if (!secret) {
    throw new ContainerConfigError(
      `no token Secret for serviceaccount "${name}" yet (the controller-manager's token controller creates it)`,
    );
  }
  return { creds: credentialsFromSecret(secret, name), automount };
}

/**
 * Writes `<dir>/kubeconfig` (mode 0600) plus `token`, `ca.crt` and `namespace` as a real pod's
 * /var/run/secrets/kubernetes.io/serviceaccount has them; returns the kubeconfig's path.
 */
export async function writeServiceAccountFiles(
  dir: string,
  creds: ServiceAccountCredentials,
  endpoint: ApiServerEndpoint,
): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const files: [string, string][] = [
    ['kubeconfig', serviceAccountKubeconfig(creds, endpoint)],
    ['token', creds.token],
    ['namespace', creds.namespace],
  ];
  const ca = creds.caPem ?? endpoint.caPem;
  if (ca) files.push(['ca.crt', ca]);
  for (const [name, content] of files) await writeFile(join(dir, name), content, { mode: 0o600 });
  return join(dir, 'kubeconfig');
}
