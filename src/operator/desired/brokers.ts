import { BROKER_NODE_OPTIONS } from '../../api/node-options.js';
import { type RoutingDocument, parseRouting } from '../../api/routing.js';
import {
  ANNOTATION_CONFIG_HASH,
  ANNOTATION_ROUTING_VERSION,
  COMPONENT_BROKER,
  type DefaultedCluster,
  LABEL_CLUSTER,
  LABEL_COMPONENT,
} from '../api/types.js';
import { BROKER_USER } from './credentials.js';
import { CA_CERT_KEY, TLS_CERT_KEY, TLS_KEY_KEY, TLS_MOUNT, brokerTlsSecretName } from './broker-tls.js';
import { clientCaArgs, clientCaMount, clientCaVolume } from './client-certificates.js';
import { mysqlServerName } from './mysql-tls.js';
import { USERS_FILE, USERS_MOUNT } from './users.js';
import {
  type DesiredObject,
  type PdbApiVersion,
  clusterLabels,
  hashOf,
  names,
  objectMeta,
  READ_ONLY_CONTAINER,
  podPlacement,
  resourcesOf,
  restrictedPodSecurity,
  selectorString,
  withSpreadAffinity,
} from './meta.js';

/**
 * Desired objects of the broker tier (docs/operator-design.md): the routing ConfigMap, the
 * Deployment, its Service and PDB. Pure.
 */

export const ROUTING_MOUNT = '/etc/mysqlmq/routing';
export const ROUTING_FILE = 'routing.json';
export const BROKER_MAIN = '/app/dist/broker/main.js';

/** Selects the cluster's broker pods (Deployment, Service, PDB, scale subresource). */
export function brokerSelector(cr: DefaultedCluster): Record<string, string> {
  return { [LABEL_CLUSTER]: cr.metadata.name, [LABEL_COMPONENT]: COMPONENT_BROKER };
}

/** `status.brokerSelector`, the scale subresource's label selector. */
export function brokerSelectorString(cr: DefaultedCluster): string {
  return selectorString(brokerSelector(cr));
}

/**
 * ConfigMap `NAME-routing`, key `routing.json`: what a starting or restarted broker reads (running
 * brokers get each new document pushed within a second). Throws when `doc` is not a routing
 * document brokers accept (`parseRouting`).
 */
export function routingConfigMap(cr: DefaultedCluster, doc: RoutingDocument): DesiredObject {
  const checked = parseRouting(JSON.parse(JSON.stringify(doc)));
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: objectMeta(cr, names.routing(cr.metadata.name), COMPONENT_BROKER, {
      annotations: { [ANNOTATION_ROUTING_VERSION]: String(checked.version) },
    }),
    data: { [ROUTING_FILE]: `${JSON.stringify(checked, null, 2)}\n` },
  };
}

export interface BrokerDeploymentOptions {
  /**
   * resourceVersion of the Secret `spec.brokers.authSecretName`, when set: part of the config
   * hash, so a rotated token rolls the brokers (env vars are read once at start).
   */
  authSecretVersion?: string;
  /**
   * The CA that signed the MariaDB instances' certificate, under `spec.mysql.tls`: part of the
   * config hash, since the broker reads it once at start (a new CA means new brokers).
   */
  mysqlCa?: string;
}

/** Where brokers find the CA of `NAME-mysql-tls` (that key alone: the instances' key stays theirs). */
const MYSQL_CA_MOUNT = '/etc/mysqlmq/mysql-ca';

/**
 * Deployment `NAME-broker`. The routing ConfigMap is mounted as a directory, not by subPath, so
 * the kubelet updates the file in place and the broker re-reads it without a restart.
 */
export function brokerDeployment(cr: DefaultedCluster, opts: BrokerDeploymentOptions = {}): DesiredObject {
  const { brokers: b, podTemplate } = cr.spec;
  const secret = names.credentials(cr.metadata.name);
  const resources = resourcesOf(b.resources);
  // Auth on: users always (the defaults add `admin`); off: no users file at all.
  const withUsers = b.auth.enabled;
  const tls = b.tls.enabled;
  const mysqlTls = cr.spec.mysql.tls.enabled;
  // The kubelet probes HTTPS without verifying the certificate. HTTP is left unsaid, as before
  // TLS existed: saying it would change every cluster's config hash and roll its brokers.
  const scheme = tls ? { scheme: 'HTTPS' } : {};
  const podSpec = {
    terminationGracePeriodSeconds: 30,
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    affinity: withSpreadAffinity(podTemplate.affinity, brokerSelector(cr)),
    ...podPlacement(cr),
    // Across zones as far as they allow (across nodes: the anti-affinity above); never blocks.
    topologySpreadConstraints: [
      {
        maxSkew: 1,
        topologyKey: 'topology.kubernetes.io/zone',
        whenUnsatisfiable: 'ScheduleAnyway',
        labelSelector: { matchLabels: brokerSelector(cr) },
      },
    ],
    // The image's user (Dockerfile: USER 1000:1000); with TLS also its group on the key file,
    // which is not readable by others.
    securityContext: restrictedPodSecurity(1000, tls ? 1000 : undefined),
    containers: [
      {
        name: 'broker',
        image: b.image,
        imagePullPolicy: 'IfNotPresent',
        command: ['node', BROKER_MAIN],
        args: [
          '--routing',
          `${ROUTING_MOUNT}/${ROUTING_FILE}`,
          '--host',
          '0.0.0.0',
          '--port',
          String(b.port),
          '--max-message-bytes',
          String(b.maxMessageBytes),
          // Auth on: the users file (and the deprecated shared token, MQ_AUTH_TOKEN, if named).
          ...(withUsers ? ['--users', `${USERS_MOUNT}/${USERS_FILE}`] : ['--no-auth']),
          ...(tls
            ? ['--tls-cert', `${TLS_MOUNT}/${TLS_CERT_KEY}`, '--tls-key', `${TLS_MOUNT}/${TLS_KEY_KEY}`]
            : []),
          ...clientCaArgs(cr),
          ...(mysqlTls
            ? ['--mysql-ca', `${MYSQL_CA_MOUNT}/${CA_CERT_KEY}`, '--mysql-server-name', mysqlServerName(cr)]
            : []),
        ],
        ports: [{ name: portName(cr), containerPort: b.port, protocol: 'TCP' }],
        env: [
          // V8 heap limits that keep the broker's memory flat under load (src/api/node-options.ts).
          { name: 'NODE_OPTIONS', value: BROKER_NODE_OPTIONS.join(' ') },
          { name: 'MQ_DB_USER', value: BROKER_USER },
          { name: 'MQ_DB_PASSWORD', valueFrom: { secretKeyRef: { name: secret, key: 'broker-password' } } },
          { name: 'MQ_ADMIN_TOKEN', valueFrom: { secretKeyRef: { name: secret, key: 'admin-token' } } },
          ...(b.authSecretName
            ? [
                {
                  name: 'MQ_AUTH_TOKEN',
                  valueFrom: { secretKeyRef: { name: b.authSecretName, key: 'token' } },
                },
              ]
            : []),
        ],
        readinessProbe: {
          httpGet: { path: '/readyz', port: b.port, ...scheme },
          periodSeconds: 2,
          failureThreshold: 2,
        },
        livenessProbe: {
          httpGet: { path: '/healthz', port: b.port, ...scheme },
          initialDelaySeconds: 10,
          periodSeconds: 10,
          failureThreshold: 3,
        },
        // The broker writes no file: logs go to stdout, state to MariaDB.
        securityContext: READ_ONLY_CONTAINER,
        volumeMounts: [
          { name: 'routing', mountPath: ROUTING_MOUNT, readOnly: true },
          ...(withUsers ? [{ name: 'users', mountPath: USERS_MOUNT, readOnly: true }] : []),
          ...(tls ? [{ name: 'tls', mountPath: TLS_MOUNT, readOnly: true }] : []),
          ...clientCaMount(cr),
          ...(mysqlTls ? [{ name: 'mysql-ca', mountPath: MYSQL_CA_MOUNT, readOnly: true }] : []),
        ],
        ...(resources ? { resources } : {}),
      },
    ],
    volumes: [
      { name: 'routing', configMap: { name: names.routing(cr.metadata.name) } },
      // Re-read in place by the broker: adding or changing a user rolls no Pod.
      ...(withUsers ? [{ name: 'users', configMap: { name: names.users(cr.metadata.name) } }] : []),
      // Mounted as a directory too: a renewed certificate reaches the files in place and the
      // broker loads it without a restart (so the certificate is no part of the config hash).
      ...(tls ? [{ name: 'tls', secret: { secretName: brokerTlsSecretName(cr), defaultMode: 0o440 } }] : []),
      ...clientCaVolume(cr),
      ...(mysqlTls
        ? [
            {
              name: 'mysql-ca',
              secret: {
                secretName: names.mysqlTls(cr.metadata.name),
                items: [{ key: CA_CERT_KEY, path: CA_CERT_KEY }],
              },
            },
          ]
        : []),
    ],
  };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: objectMeta(cr, names.broker(cr.metadata.name), COMPONENT_BROKER),
    spec: {
      // Follows spec.brokers.replicas, which the scale subresource (kubectl scale mqc) sets.
      replicas: b.replicas,
      revisionHistoryLimit: 5,
      selector: { matchLabels: brokerSelector(cr) },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: {
          labels: { ...podTemplate.labels, ...clusterLabels(cr, COMPONENT_BROKER) },
          annotations: {
            ...podTemplate.annotations,
            [ANNOTATION_CONFIG_HASH]: hashOf(
              podSpec,
              opts.authSecretVersion ?? null,
              ...(opts.mysqlCa ? [opts.mysqlCa] : []),
            ),
          },
        },
        spec: podSpec,
      },
    },
  };
}

/** Service `NAME-broker`: what producers and consumers connect to. */
export function brokerService(cr: DefaultedCluster): DesiredObject {
  const port = cr.spec.brokers.port;
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: objectMeta(cr, names.broker(cr.metadata.name), COMPONENT_BROKER),
    spec: {
      type: 'ClusterIP',
      selector: brokerSelector(cr),
      ports: [{ name: portName(cr), port, targetPort: port, protocol: 'TCP' }],
    },
  };
}

function portName(cr: DefaultedCluster): string {
  return cr.spec.brokers.tls.enabled ? 'https' : 'http';
}

/** PDB `NAME-broker`, maxUnavailable 1: clients fail over between brokers, one at a time is fine. */
export function brokerPdb(cr: DefaultedCluster, apiVersion: PdbApiVersion): DesiredObject {
  return {
    apiVersion,
    kind: 'PodDisruptionBudget',
    metadata: objectMeta(cr, names.broker(cr.metadata.name), COMPONENT_BROKER),
    spec: { maxUnavailable: 1, selector: { matchLabels: brokerSelector(cr) } },
  };
}

/**
 * The routing document before the shard manager has observed anything: every shard listed, none
 * readable or writable. Brokers start with it and get the real one within a tick.
 */
export function initialRouting(cr: DefaultedCluster): RoutingDocument {
  return {
    version: 0,
    shards: Array.from({ length: cr.spec.shards }, (_, i) => ({
      name: names.shard(i),
      write: null,
      read: null,
      requireStandbyAck: cr.spec.mysql.durability === 'required',
    })),
  };
}
