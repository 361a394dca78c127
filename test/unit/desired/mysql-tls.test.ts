import { describe, expect, it } from 'vitest';
import { validateSpecUpdate } from '../../../src/operator/api/validate.js';
import {
  brokerDeployment,
  desiredObjects,
  generateCredentials,
  initialRouting,
  instanceMyCnf,
  mysqlPod,
  mysqlPodHash,
  mysqlServerName,
  mysqlSubjectAltNames,
  mysqlTlsSecret,
  shardSecrets,
} from '../../../src/operator/desired/index.js';
import { replicationTlsClause } from '../../../src/shard/bootstrap.js';
import { requiresSecureTransport } from '../../../src/shard/mycnf.js';
import { OWNER, cluster, container, envOf, plainCluster, specOf } from './fixtures.js';

/** spec.mysql.tls (docs/security.md, "MariaDB TLS"): what the instances, brokers and operator get. */
const tls = () => cluster({ shards: 2, mysql: { tls: { enabled: true } } });
const cnfValue = (cnf: string, key: string) => new RegExp(`^${key} = (.*)$`, 'm').exec(cnf)?.[1];

describe('spec.mysql.tls off', () => {
  it('renders the instance Pods without TLS exactly as before it, so it rolls none', () => {
    // Pinned config hashes: a different value means every existing cluster's instances roll on
    // upgrade. TLS off left the hashes of 866f320 (before spec.mysql.tls) as they were; the read-only
    // root filesystem and the MariaDB accounts (root on localhost, the init file) changed them on
    // purpose: that roll is what drops root@'%' from the instances of older clusters
    // (docs/security.md, "MariaDB accounts").
    const cr = plainCluster({ shards: 2 });
    expect([0, 1].flatMap((s) => [0, 1].map((i) => mysqlPodHash(cr, s, i)))).toEqual([
      '4d37f472e6bcc16e',
      '2a806621c1f54f3c',
      'afcdfe1241d1584b',
      'a364191c6af9747a',
    ]);
    const cnf = instanceMyCnf(cr, 0, 0);
    for (const key of ['ssl_cert', 'ssl_key', 'ssl_ca', 'require_secure_transport'])
      expect(cnfValue(cnf, key), key).toBeUndefined();
  });

  it('gives brokers and the operator plain connections', () => {
    const args = container(specOf(brokerDeployment(plainCluster())).template.spec, 'broker').args as string[];
    expect(args.join(' ')).not.toContain('--mysql');
    const secrets = shardSecrets(generateCredentials(() => 'x'));
    expect(secrets.replicationTls).toBeUndefined();
    expect(Object.values(secrets).some((c) => typeof c === 'object' && 'tls' in c)).toBe(false);
    expect(replicationTlsClause(undefined)).toEqual({ sql: '', params: [] });
  });
});

describe('spec.mysql.tls on', () => {
  it('has the instances serve the mounted certificate and refuse plain TCP', () => {
    const cnf = instanceMyCnf(tls(), 1, 0);
    expect(cnfValue(cnf, 'ssl_cert')).toBe('/etc/mysql/tls/tls.crt');
    expect(cnfValue(cnf, 'ssl_key')).toBe('/etc/mysql/tls/tls.key');
    expect(cnfValue(cnf, 'ssl_ca')).toBe('/etc/mysql/tls/ca.crt');
    expect(cnfValue(cnf, 'require_secure_transport')).toBe('ON');
    expect(requiresSecureTransport(cnf)).toBe(true);
    expect(requiresSecureTransport(instanceMyCnf(plainCluster(), 1, 0))).toBe(false);
    expect(requiresSecureTransport(instanceMyCnf(cluster(), 1, 0)), 'on by default').toBe(true);
    // A user's ssl_ca would win over the operator's, as overrides come last: refused instead.
    const overridden = cluster({ mysql: { tls: { enabled: true }, config: { 'ssl-ca': '/mine/ca.pem' } } });
    expect(() => instanceMyCnf(overridden, 0, 0)).toThrow(/operator-owned keys \(ssl-ca\)/);
  });

  it('mounts Secret NAME-mysql-tls, readable by the mysql group only, into mariadb and the agent', () => {
    const spec = specOf(mysqlPod(tls(), 0, 1, 'standby'));
    const mount = { name: 'mysql-tls', mountPath: '/etc/mysql/tls', readOnly: true };
    expect(container(spec, 'mariadb').volumeMounts).toContainEqual(mount);
    const agent = container(spec, 'agent');
    expect(agent.volumeMounts).toContainEqual(mount);
    expect(agent.command.join(' ')).toContain(
      '--mysql-ca /etc/mysql/tls/ca.crt --mysql-server-name mq-shard-0-primary.ns.svc',
    );
    expect(spec.volumes).toContainEqual({
      name: 'mysql-tls',
      secret: { secretName: 'mq-mysql-tls', defaultMode: 0o440 },
    });
  });

  it('has the metrics exporter use TLS on the Pod loopback', () => {
    const cr = cluster({
      mysql: { tls: { enabled: true } },
      monitoring: { mysqldExporter: { enabled: true } },
    });
    const env = envOf(container(specOf(mysqlPod(cr, 0, 0, 'primary')), 'mysqld-exporter'));
    expect(env.DATA_SOURCE_NAME).toBe(
      'mq_monitor:$(MQ_MONITOR_PASSWORD)@tcp(127.0.0.1:3306)/?tls=skip-verify',
    );
  });

  it('rolls the instance Pods for a new certificate: mariadbd reads it at start', () => {
    const hash = (certificate?: string) =>
      mysqlPod(tls(), 0, 0, 'primary', undefined, false, certificate).metadata.annotations![
        'mysqlmq.io/config-hash'
      ];
    expect(hash('cert A')).not.toBe(hash('cert B'));
    expect(hash('cert A')).toBe(hash('cert A'));
    expect(hash('cert A')).not.toBe(mysqlPodHash(cluster({ shards: 2 }), 0, 0));
  });

  it('issues one certificate naming every shard Service and the name clients check', () => {
    const { dnsNames, ipAddresses } = mysqlSubjectAltNames(tls());
    for (const svc of [
      'mq-shard-0-primary',
      'mq-shard-0-standby',
      'mq-shard-1-primary',
      'mq-shard-1-standby',
    ])
      expect(dnsNames).toEqual(
        expect.arrayContaining([svc, `${svc}.ns`, `${svc}.ns.svc`, `${svc}.ns.svc.cluster.local`]),
      );
    expect(dnsNames).toContain(mysqlServerName(tls()));
    expect(dnsNames).toContain('localhost');
    expect(ipAddresses).toEqual(['127.0.0.1']);
  });

  it('writes the certificate as a kubernetes.io/tls Secret owned by the cluster', () => {
    const secret = mysqlTlsSecret(tls(), { certPem: 'CERT', keyPem: 'KEY' }, 'CA');
    expect(secret.metadata.name).toBe('mq-mysql-tls');
    expect(secret.metadata.ownerReferences).toEqual([OWNER]);
    expect(secret.type).toBe('kubernetes.io/tls');
    const decoded = Object.fromEntries(
      Object.entries(secret.data as Record<string, string>).map(([k, v]) => [
        k,
        Buffer.from(v, 'base64').toString(),
      ]),
    );
    expect(decoded).toEqual({ 'tls.crt': 'CERT', 'tls.key': 'KEY', 'ca.crt': 'CA' });
  });

  it("gives brokers the CA and the name to check, never the instances' key", () => {
    const deployment = brokerDeployment(tls(), { mysqlCa: 'CA 1' });
    const pod = specOf(deployment).template.spec;
    const broker = container(pod, 'broker');
    expect(broker.args.join(' ')).toContain(
      '--mysql-ca /etc/mysqlmq/mysql-ca/ca.crt --mysql-server-name mq-shard-0-primary.ns.svc',
    );
    expect(pod.volumes).toContainEqual({
      name: 'mysql-ca',
      secret: { secretName: 'mq-mysql-tls', items: [{ key: 'ca.crt', path: 'ca.crt' }] },
    });
    // Brokers read the CA once: a new CA rolls them.
    const hash = (ca: string) =>
      specOf(brokerDeployment(tls(), { mysqlCa: ca })).template.metadata.annotations[
        'mysqlmq.io/config-hash'
      ];
    expect(hash('CA 1')).not.toBe(hash('CA 2'));
  });

  it('has the operator verify every connection, and replicas check their primary against the CA', () => {
    const client = { ca: 'CA', serverName: mysqlServerName(tls()) };
    const secrets = shardSecrets(
      generateCredentials(() => 'x'),
      client,
    );
    for (const user of [secrets.admin, secrets.replication, secrets.broker, secrets.monitor])
      expect(user.tls).toEqual(client);
    expect(secrets.replicationTls).toBe(true);
    expect(replicationTlsClause('/etc/mysql/tls/ca.crt')).toEqual({
      sql: ', MASTER_SSL = 1, MASTER_SSL_CA = ?, MASTER_SSL_VERIFY_SERVER_CERT = 0',
      params: ['/etc/mysql/tls/ca.crt'],
    });
  });

  it('passes the certificate and CA it is given to the instance Pods and brokers', () => {
    const cr = tls();
    const objects = desiredObjects(cr, {
      credentials: generateCredentials(() => 'x'),
      routing: initialRouting(cr),
      mysqlCertificate: 'CERT',
      mysqlCa: 'CA',
    });
    const pod = objects.find((o) => o.metadata.name === 'mq-shard-1-1')!;
    expect(pod.metadata.annotations!['mysqlmq.io/config-hash']).toBe(mysqlPodHash(cr, 1, 1, 'CERT'));
    const broker = objects.find((o) => o.kind === 'Deployment')!;
    expect(broker).toEqual(brokerDeployment(cr, { mysqlCa: 'CA' }));
  });
});

describe('changing spec.mysql.tls', () => {
  it('is refused on a running cluster, either way, with the value to put back', () => {
    expect(
      validateSpecUpdate({ mysql: { tls: { enabled: false } } }, { mysql: { tls: { enabled: true } } }),
    ).toEqual([
      expect.stringContaining(
        'spec.mysql.tls.enabled cannot change on a running cluster (from false to true)',
      ),
    ]);
    expect(
      validateSpecUpdate({ mysql: { tls: { enabled: true } } }, { mysql: { tls: { enabled: false } } })[0],
    ).toContain('put it back to true');
    expect(
      validateSpecUpdate({ mysql: { tls: { enabled: true } } }, { mysql: { tls: { enabled: true } } }),
    ).toEqual([]);
  });
});
