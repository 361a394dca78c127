import type { KeyPairPem, SubjectAltNames } from '../../common/certificates.js';
import { COMPONENT_MYSQL, type DefaultedCluster } from '../api/types.js';
import { CA_CERT_KEY, TLS_CERT_KEY, TLS_KEY_KEY, tlsSecret } from './broker-tls.js';
import { type DesiredObject, type Role, names } from './meta.js';

/**
 * TLS on the MariaDB instances (`spec.mysql.tls`, docs/security.md "MariaDB TLS"): the Secret they
 * serve from, the names its certificate carries, and where the instance Pods find it. Pure: the
 * reconciler issues the certificate from the cluster's CA (src/operator/broker-certificates.ts).
 */

/** The Secret `NAME-mysql-tls`, mounted as a directory in the mariadb and agent containers. */
export const MYSQL_TLS_MOUNT = '/etc/mysql/tls';
export const MYSQL_TLS_FILES = {
  cert: `${MYSQL_TLS_MOUNT}/${TLS_CERT_KEY}`,
  key: `${MYSQL_TLS_MOUNT}/${TLS_KEY_KEY}`,
  ca: `${MYSQL_TLS_MOUNT}/${CA_CERT_KEY}`,
} as const;

const ROLES: readonly Role[] = ['primary', 'standby'];

/**
 * What the instances' certificate names: every shard Service in every form a client in the
 * cluster may use, and localhost for `kubectl port-forward` and the Pod's own sidecars. One
 * certificate serves every instance. Not pod IPs: they change with every Pod, so clients that dial
 * pods check `mysqlServerName` instead.
 */
export function mysqlSubjectAltNames(cr: DefaultedCluster): SubjectAltNames {
  const ns = cr.metadata.namespace;
  const dnsNames: string[] = [];
  for (let shard = 0; shard < cr.spec.shards; shard++) {
    for (const role of ROLES) {
      const svc = names.shardService(cr.metadata.name, shard, role);
      dnsNames.push(svc, `${svc}.${ns}`, `${svc}.${ns}.svc`, `${svc}.${ns}.svc.cluster.local`);
    }
  }
  dnsNames.push('localhost');
  return { dnsNames, ipAddresses: ['127.0.0.1'] };
}

/**
 * The name brokers, the operator and agents check an instance's certificate for while dialling its
 * pod IP: shard-0's primary Service, which every cluster has. The check proves the peer holds the
 * cluster's MariaDB certificate; the brokers' certificate, from the same CA, does not carry it.
 */
export function mysqlServerName(cr: DefaultedCluster): string {
  return `${names.shardService(cr.metadata.name, 0, 'primary')}.${cr.metadata.namespace}.svc`;
}

/** Secret `NAME-mysql-tls` (kubernetes.io/tls): what the instances serve, and the CA to verify it. */
export function mysqlTlsSecret(cr: DefaultedCluster, serving: KeyPairPem, caPem: string): DesiredObject {
  return tlsSecret(cr, names.mysqlTls(cr.metadata.name), COMPONENT_MYSQL, serving, caPem);
}
