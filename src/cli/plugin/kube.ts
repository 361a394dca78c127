import { isNotFound, loadKubeConfig } from '../../k8s/client.js';
import { KubeRest } from '../../k8s/rest.js';
import { GROUP, type MessageQueueCluster, PLURAL, VERSION } from '../../operator/api/types.js';

/** The few Kubernetes reads and writes the plugin makes, with the kubeconfig kubectl would use. */
export interface PodInfo {
  metadata: { name: string; labels?: Record<string, string> };
  spec?: {
    nodeName?: string;
    containers?: { name: string; ports?: { name?: string; containerPort: number }[] }[];
  };
  status?: {
    phase?: string;
    podIP?: string;
    containerStatuses?: { ready: boolean }[];
  };
}

export interface EventInfo {
  metadata: { name: string };
  reason?: string;
  message?: string;
  type?: string;
  count?: number;
  lastTimestamp?: string;
  eventTime?: string;
}

export interface TopicResource {
  metadata: { name: string };
  spec?: {
    cluster?: string;
    topicName?: string;
    retention?: { maxAgeHours?: number; maxBytesPerShard?: number };
    maxMessageBytes?: number;
    maxDeliveries?: number;
  };
  status?: { conditions?: { type: string; status: string; reason?: string }[]; phase?: string };
}

export interface KubeTarget {
  kubeconfig?: string;
  context?: string;
  namespace?: string;
}

const clusterPath = (ns: string, name: string) =>
  `/apis/${GROUP}/${VERSION}/namespaces/${encodeURIComponent(ns)}/${PLURAL}/${encodeURIComponent(name)}`;

export class PluginKube {
  private readonly rest: KubeRest;
  readonly namespace: string;

  constructor(target: KubeTarget) {
    const kc = loadKubeConfig({ kubeconfigPath: target.kubeconfig, context: target.context });
    this.rest = new KubeRest(kc);
    // As kubectl: the flag, else the context's namespace, else "default".
    this.namespace = target.namespace ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
  }

  async cluster(name: string): Promise<MessageQueueCluster> {
    try {
      return await this.rest.request<MessageQueueCluster>({ path: clusterPath(this.namespace, name) });
    } catch (err) {
      if (isNotFound(err)) {
        throw new Error(`MessageQueueCluster "${name}" not found in namespace "${this.namespace}"`);
      }
      throw err;
    }
  }

  async pods(selector: string): Promise<PodInfo[]> {
    const list = await this.rest.request<{ items: PodInfo[] }>({
      path: `/api/v1/namespaces/${encodeURIComponent(this.namespace)}/pods`,
      query: { labelSelector: selector },
    });
    return list.items;
  }

  async clusterEvents(cluster: string): Promise<EventInfo[]> {
    const list = await this.rest.request<{ items: EventInfo[] }>({
      path: `/api/v1/namespaces/${encodeURIComponent(this.namespace)}/events`,
      query: {
        fieldSelector: `involvedObject.kind=MessageQueueCluster,involvedObject.name=${cluster}`,
      },
    });
    return list.items;
  }

  async annotateCluster(name: string, annotations: Record<string, string | null>): Promise<void> {
    await this.rest.request({
      method: 'PATCH',
      path: clusterPath(this.namespace, name),
      body: { metadata: { annotations } },
      contentType: 'application/merge-patch+json',
    });
  }

  /** The namespace's MessageQueueTopic objects, or undefined when the CRD is not installed. */
  async topicResources(): Promise<TopicResource[] | undefined> {
    try {
      const list = await this.rest.request<{ items: TopicResource[] }>({
        path: `/apis/${GROUP}/${VERSION}/namespaces/${encodeURIComponent(this.namespace)}/messagequeuetopics`,
      });
      return list.items;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** One key of a Secret, decoded; undefined when the Secret or key is missing. */
  async secretValue(name: string, key: string): Promise<string | undefined> {
    try {
      const secret = await this.rest.request<{ data?: Record<string, string> }>({
        path: `/api/v1/namespaces/${encodeURIComponent(this.namespace)}/secrets/${encodeURIComponent(name)}`,
      });
      const value = secret.data?.[key];
      return value === undefined ? undefined : Buffer.from(value, 'base64').toString('utf8');
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }
}
