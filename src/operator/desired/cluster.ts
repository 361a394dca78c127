import type { RoutingDocument } from '../../api/routing.js';
import type { DefaultedCluster } from '../api/types.js';
import { brokerDeployment, brokerPdb, brokerService, routingConfigMap } from './brokers.js';
import { type Credentials, credentialsSecret } from './credentials.js';
import { type DesiredObject, type PdbApiVersion, names } from './meta.js';
import { type OperatorPeer, mysqlNetworkPolicy } from './network-policy.js';
import { type TopicGrant, usersConfigMap } from './users.js';
import {
  INSTANCES,
  type SeedAnnotations,
  dataPvc,
  mycnfConfigMap,
  mysqlPod,
  primaryPdb,
  roleOf,
  shardPdb,
  shardService,
} from './shard.js';

/** What the desired state depends on besides the cluster itself (all observed or decided elsewhere). */
export interface DesiredInputs {
  /** From the existing Secret, or `generateCredentials()` the first time. */
  credentials: Credentials;
  /** The latest routing document (the shard manager's, or `initialRouting(cr)`). */
  routing: RoutingDocument;
  /** Which instance (0|1) is each shard's primary, by shard name (`shard-0`); missing: 0. */
  primaryIndex?: Readonly<Record<string, number>>;
  /** Shards (by name) whose standby a drain may evict now: the shard is Healthy. Missing: not. */
  standbyEvictable?: Readonly<Record<string, boolean>>;
  /** From discovery (`pdbApiVersion(apiVersions)`); undefined: no PDBs. */
  pdbApiVersion?: PdbApiVersion;
  /** resourceVersion of the brokers' auth Secret, so a rotated token rolls the brokers. */
  authSecretVersion?: string;
  /**
   * SHA-256 digest of each user's token, by user name (read from the users' Secrets); undefined:
   * no users ConfigMap (the reconciler always gives them).
   */
  userDigests?: Readonly<Record<string, string>>;
  /** Rights the cluster's MessageQueueTopics grant its users (see `topicGrants`). */
  topicGrants?: readonly TopicGrant[];
  /** Seed annotations of instance Pods created now, by Pod name (see `mysqlPod`). */
  seeds?: Readonly<Record<string, SeedAnnotations>>;
  /** Shards (by name) whose first primary restores (spec.restore, shard not bootstrapped yet). */
  restoring?: ReadonlySet<string>;
  /** The instances' certificate (PEM) in Secret `NAME-mysql-tls`, under `spec.mysql.tls`. */
  mysqlCertificate?: string;
  /** The CA that signed it: brokers read it once at start. */
  mysqlCa?: string;
  /** The operator's Pods, when it protects MariaDB with a NetworkPolicy; undefined: no policy. */
  networkPolicy?: OperatorPeer;
}

/** The kinds a cluster owns (what the operator watches and cleans up). */
export const OWNED_KINDS = [
  { apiVersion: 'v1', kind: 'Secret' },
  { apiVersion: 'v1', kind: 'ConfigMap' },
  { apiVersion: 'v1', kind: 'PersistentVolumeClaim' },
  { apiVersion: 'v1', kind: 'Service' },
  { apiVersion: 'v1', kind: 'Pod' },
  { apiVersion: 'apps/v1', kind: 'Deployment' },
  { apiVersion: 'policy/*', kind: 'PodDisruptionBudget' },
  { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy' },
] as const;

/**
 * Every object of a cluster, in the order to apply them: what a Pod mounts or refers to (Secret,
 * ConfigMaps, PVCs) comes before the Pod. Pure; throws InvalidSpecError for a spec that
 * `validateSpec` refuses.
 *
 * Instance Pods are listed like the rest, but a Pod's spec is immutable: the reconciler creates
 * missing Pods, relabels existing ones, and recreates (one at a time) those whose
 * `mysqlmq.io/config-hash` annotation differs, rather than applying them blindly.
 */
export function desiredObjects(cr: DefaultedCluster, inputs: DesiredInputs): DesiredObject[] {
  const objects: DesiredObject[] = [credentialsSecret(cr, inputs.credentials)];
  // Before any Pod: an instance never runs unprotected where a NetworkPolicy controller runs.
  if (inputs.networkPolicy) objects.push(mysqlNetworkPolicy(cr, inputs.networkPolicy));
  const shards = Array.from({ length: cr.spec.shards }, (_, i) => i);
  for (const s of shards) {
    objects.push(mycnfConfigMap(cr, s));
    for (const n of INSTANCES) objects.push(dataPvc(cr, s, n));
    objects.push(shardService(cr, s, 'primary'), shardService(cr, s, 'standby'));
    if (inputs.pdbApiVersion) {
      const evictable = inputs.standbyEvictable?.[names.shard(s)] ?? false;
      objects.push(shardPdb(cr, s, inputs.pdbApiVersion, evictable), primaryPdb(cr, s, inputs.pdbApiVersion));
    }
  }
  for (const s of shards) {
    const primary = inputs.primaryIndex?.[names.shard(s)] ?? 0;
    for (const n of INSTANCES) {
      const seed = inputs.seeds?.[names.pod(cr.metadata.name, s, n)];
      const restore = inputs.restoring?.has(names.shard(s)) ?? false;
      objects.push(mysqlPod(cr, s, n, roleOf(n, primary), seed, restore, inputs.mysqlCertificate));
    }
  }
  if (inputs.userDigests) objects.push(usersConfigMap(cr, inputs.userDigests, inputs.topicGrants));
  objects.push(
    routingConfigMap(cr, inputs.routing),
    brokerDeployment(cr, { authSecretVersion: inputs.authSecretVersion, mysqlCa: inputs.mysqlCa }),
    brokerService(cr),
  );
  if (inputs.pdbApiVersion) objects.push(brokerPdb(cr, inputs.pdbApiVersion));
  return objects;
}
