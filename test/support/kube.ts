/**
 * The throw-away Kubernetes control plane of the tests. It lives in tools/local/kube-control-plane.ts
 * (`make run` uses it too); this re-export keeps the tests' imports unchanged.
 *
 *   const kube = await startKube();        // ~6 s once the binaries are cached
 *   ... kube.kc ...
 *   await kube.stop();
 *
 * Set MQ_KEEP_KUBE=1 to keep the state dir (logs, etcd data) after stop().
 */
export { type Kube, type StartKubeOptions, startKube } from '../../tools/local/kube-control-plane.js';
