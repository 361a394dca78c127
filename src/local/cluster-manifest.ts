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
