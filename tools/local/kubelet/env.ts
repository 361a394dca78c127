import type { CoreV1Api, V1ConfigMap, V1Container, V1Pod, V1Secret } from '@kubernetes/client-node';
import { isNotFound } from '../../../src/k8s/client.js';

/** A container cannot be created yet (a missing Secret or key); a kubelet keeps retrying. */
export class ContainerConfigError extends Error {
  override readonly name = 'ContainerConfigError';
}

/** Reads the Secrets and ConfigMaps a pod refers to; undefined when absent. */
export class ObjectLookup {
  constructor(private readonly core: CoreV1Api) {}

  async secret(namespace: string, name: string): Promise<V1Secret | undefined> {
    try {
      return await this.core.readNamespacedSecret({ name, namespace });
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async configMap(namespace: string, name: string): Promise<V1ConfigMap | undefined> {
    try {
      return await this.core.readNamespacedConfigMap({ name, namespace });
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }
}

/** A Secret's values, decoded. */
export function secretData(secret: V1Secret): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const [k, v] of Object.entries(secret.data ?? {})) out[k] = Buffer.from(v, 'base64');
  return out;
}

/** A ConfigMap's values (data and binaryData). */
export function configMapData(cm: V1ConfigMap): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const [k, v] of Object.entries(cm.binaryData ?? {})) out[k] = Buffer.from(v, 'base64');
  for (const [k, v] of Object.entries(cm.data ?? {})) out[k] = Buffer.from(v, 'utf8');
  return out;
}

/** Kubernetes' `$(VAR)` expansion in env values, command and args (`$$` escapes a `$`). */
export function expandVars(text: string, env: Record<string, string>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (match, name: string | undefined) => {
    if (match === '$$') return '$';
    return name !== undefined && name in env ? env[name]! : match;
  });
}

export interface PodRuntimeInfo {
  podIP: string;
  hostIP: string;
}

function fieldRef(pod: V1Pod, path: string, info: PodRuntimeInfo): string {
  const label = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(path);
  if (label) {
    const map = label[1] === 'labels' ? pod.metadata?.labels : pod.metadata?.annotations;
    return map?.[label[2]!] ?? '';
  }
  switch (path) {
    case 'metadata.name':
      return pod.metadata?.name ?? '';
    case 'metadata.namespace':
      return pod.metadata?.namespace ?? '';
    case 'metadata.uid':
      return pod.metadata?.uid ?? '';
    case 'spec.nodeName':
      return pod.spec?.nodeName ?? '';
    case 'spec.serviceAccountName':
      return pod.spec?.serviceAccountName ?? '';
    case 'status.podIP':
    case 'status.podIPs':
      return info.podIP;
    case 'status.hostIP':
    case 'status.hostIPs':
      return info.hostIP;
    default:
      throw new ContainerConfigError(`unsupported fieldRef ${path}`);
  }
}

/**
 * The container's environment as the kubelet computes it: envFrom, then env in order (literal
 * values with `$(VAR)` expansion, Secret/ConfigMap keys, downward-API fields). A missing
 * non-optional Secret, ConfigMap or key is a ContainerConfigError. Values are never logged.
 */
export async function resolveEnv(
  pod: V1Pod,
  container: V1Container,
  lookup: ObjectLookup,
  info: PodRuntimeInfo,
): Promise<Record<string, string>> {
  const ns = pod.metadata?.namespace ?? 'default';
  const env: Record<string, string> = {};
  const secrets = new Map<string, V1Secret | undefined>();
  const configMaps = new Map<string, V1ConfigMap | undefined>();
  const getSecret = async (name: string) => {
    if (!secrets.has(name)) secrets.set(name, await lookup.secret(ns, name));
    return secrets.get(name);
  };
  const getConfigMap = async (name: string) => {
    if (!configMaps.has(name)) configMaps.set(name, await lookup.configMap(ns, name));
    return configMaps.get(name);
  };

  for (const from of container.envFrom ?? []) {
    const prefix = from.prefix ?? '';
    if (from.secretRef) {
      const s = await getSecret(from.secretRef.name ?? '');
      if (!s && !from.secretRef.optional)
        throw new ContainerConfigError(`secret "${from.secretRef.name}" not found`);
      for (const [k, v] of Object.entries(s ? secretData(s) : {})) env[prefix + k] = v.toString('utf8');
    }
    if (from.configMapRef) {
      const cm = await getConfigMap(from.configMapRef.name ?? '');
      if (!cm && !from.configMapRef.optional) {
        throw new ContainerConfigError(`configmap "${from.configMapRef.name}" not found`);
      }
      for (const [k, v] of Object.entries(cm ? configMapData(cm) : {})) env[prefix + k] = v.toString('utf8');
    }
  }

  for (const e of container.env ?? []) {
    const ref = e.valueFrom;
    if (!ref) {
      env[e.name] = expandVars(e.value ?? '', env);
    } else if (ref.secretKeyRef) {
      const { name = '', key, optional } = ref.secretKeyRef;
      const s = await getSecret(name);
      const value = s ? secretData(s)[key] : undefined;
      if (value !== undefined) env[e.name] = value.toString('utf8');
      else if (!optional) {
        throw new ContainerConfigError(
          s ? `key "${key}" not found in secret "${name}"` : `secret "${name}" not found`,
        );
      }
    } else if (ref.configMapKeyRef) {
      const { name = '', key, optional } = ref.configMapKeyRef;
      const cm = await getConfigMap(name);
      const value = cm ? configMapData(cm)[key] : undefined;
      if (value !== undefined) env[e.name] = value.toString('utf8');
      else if (!optional) {
        throw new ContainerConfigError(
          cm ? `key "${key}" not found in configmap "${name}"` : `configmap "${name}" not found`,
        );
      }
    } else if (ref.fieldRef) {
      env[e.name] = fieldRef(pod, ref.fieldRef.fieldPath, info);
    } else if (ref.resourceFieldRef) {
      const [kind, resource] = ref.resourceFieldRef.resource.split('.') as [string, string];
      const values = kind === 'limits' ? container.resources?.limits : container.resources?.requests;
      env[e.name] = values?.[resource] ?? '0';
    }
  }
  return env;
}
