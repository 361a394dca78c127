/** A MessageQueueCluster as YAML for `kubectl apply -f -`, with `spec` given as YAML text. */
export function clusterManifest(namespace: string, name: string, spec: string): string {
  const indented = spec
    .trim()
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n');
  return `apiVersion: mysqlmq.io/v1alpha1
kind: MessageQueueCluster
metadata:
  name: ${name}
  namespace: ${namespace}
spec:
${indented}
`;
}

/** The small cluster local runs use: 2 shards of 1Gi, 2 brokers, a MySQL probe every second. */
export const LOCAL_CLUSTER_SPEC = `
shards: 2
mysql:
  storage:
    size: 1Gi
brokers:
  replicas: 2
failover:
  probePeriodSeconds: 1
  failureThreshold: 3
`;
