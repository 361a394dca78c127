/**
 * A test kubelet for the embedded control plane of hack/kube (no container runtime needed):
 *
 *   const kubelet = await TestKubelet.start({ kubeconfigPath, stateDir, addressPrefix: '127.1' });
 *   ...                                   // pods named mariadb/broker now run as local processes
 *   await kubelet.killContainer('ns', 'pod', 'mariadb');   // a crash; restarted per restartPolicy
 *   await kubelet.stop();                 // SIGKILLs everything it started
 *
 * State: `<stateDir>/pods/<ns>/<pod>/` (volumes, broker logs), `<stateDir>/pvc/<ns>/<claim>/` (PVC
 * data: MariaDB datadirs, kept until the PVC is deleted), `<stateDir>/run/` (my.cnf, socket,
 * error.log of each mariadbd). Each kubelet needs its own address range.
 */
export { TestKubelet, type TestKubeletOptions } from './kubelet.js';
export { AddressPool } from './addresses.js';
