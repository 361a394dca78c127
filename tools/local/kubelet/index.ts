/**
 * A test kubelet for the embedded control plane of hack/kube (no container runtime needed):
 *
 *   const kubelet = await TestKubelet.start({ kubeconfigPath, stateDir, addressPrefix: '127.1' });
 *   ...                                   // containers named mariadb/broker/operator now run as local processes
 *   await kubelet.killContainer('ns', 'pod', 'mariadb');   // a crash; restarted per restartPolicy
 *   await kubelet.stop();                 // SIGKILLs everything it started
 *
 * State: `<stateDir>/pods/<ns>/<pod>/` (volumes, broker logs), `<stateDir>/pvc/<ns>/<claim>/` (PVC
 * data: MariaDB datadirs, kept until the PVC is deleted), `<stateDir>/run/` (my.cnf, socket,
 * error.log of each mariadbd). Each kubelet needs its own address range.
 *
 * An `operator` container runs `node dist/operator/main.js` with the container's flags and env,
 * KUBECONFIG = `<podDir>/serviceaccount/kubeconfig` (the token Secret of the pod's ServiceAccount,
 * so it has exactly that account's RBAC) and POD_IP = its loopback pod IP (bind health/metrics
 * there: several operator replicas share this machine).
 */
export { TestKubelet, type TestKubeletOptions } from './kubelet.js';
export { AddressPool } from './addresses.js';
