/**
 * `spec.mysql.tls` end to end on the embedded control plane: the operator issues the instances'
 * certificate from the cluster's CA into Secret NAME-mysql-tls, the instance Pods require TLS,
 * replication, the operator, the agents and the brokers use it, a renewed certificate rolls the
 * instances, and switching TLS off on the running cluster is refused.
 */
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_PORT, CLONE_GTID_PATH } from '../../src/agent/contract.js';
import { agentToken } from '../../src/agent/token.js';
import { Consumer, Producer } from '../../src/client/index.js';
import { certificateFacts, signedBy } from '../../src/common/certificates.js';
import { defaultCluster } from '../../src/operator/api/defaults.js';
import { mysqlServerName, mysqlSubjectAltNames } from '../../src/operator/desired/mysql-tls.js';
import { type Credentials, type Endpoint, queryRows, withAdmin } from '../../src/shard/connection.js';
import { MYSQL_ADMIN_USER } from '../../src/operator/desired/credentials.js';
import { clusterManifest } from '../../tools/local/cluster-manifest.js';
import {
  type Env,
  type OperatorProcess,
  type PodJson,
  conditionOf,
  startEnv,
  waitFor,
} from '../support/operator.js';

const NS = 'sealed';
const NAME = 'sq';
const SPEC = `
shards: 1
mysql:
  storage:
    size: 1Gi
  tls:
    enabled: true
brokers:
  replicas: 1
failover:
  probePeriodSeconds: 1
`;

let env: Env;
let operator: OperatorProcess;

async function secretText(name: string, key: string): Promise<string> {
  const s = JSON.parse(await env.kubectl(['get', 'secret', name, '-n', NS, '-o', 'json'])) as {
    data: Record<string, string>;
  };
  return Buffer.from(s.data[key] ?? '', 'base64').toString('utf8');
}

async function pods(component: string): Promise<PodJson[]> {
  return (await env.pods(NS, `mysqlmq.io/cluster=${NAME},app.kubernetes.io/component=${component}`)).filter(
    (p) => !p.metadata.deletionTimestamp,
  );
}

async function instance(role: 'primary' | 'standby'): Promise<PodJson & { endpoint: Endpoint }> {
  const pod = (await pods('mysql')).find((p) => p.metadata.labels?.['mysqlmq.io/role'] === role);
  if (!pod?.status?.podIP) throw new Error(`no ${role} pod with an IP`);
  return { ...pod, endpoint: { host: pod.status.podIP, port: 3306 } };
}

async function admin(): Promise<Credentials> {
  const cr = defaultCluster(await env.getCluster(NS, NAME));
  return {
    user: MYSQL_ADMIN_USER,
    password: await secretText(`${NAME}-credentials`, 'admin-password'),
    tls: { ca: await secretText(`${NAME}-ca`, 'ca.crt'), serverName: mysqlServerName(cr) },
  };
}

const waitReady = () =>
  waitFor(
    'the cluster Ready',
    async () => {
      const cr = await env.getCluster(NS, NAME);
      return conditionOf(cr, 'Ready')?.status === 'True' ? cr : undefined;
    },
    300_000,
    500,
  );

beforeAll(async () => {
  env = await startEnv('127.0.160.0/25');
  await env.kubectl(['create', 'namespace', NS]);
  operator = env.startOperator();
}, 600_000);

afterAll(async () => {
  if (operator && process.env.MQ_E2E_OPERATOR_LOG) process.stderr.write(operator.logs());
  await env?.stop();
});

describe('a cluster with spec.mysql.tls', () => {
  it('runs instances that require TLS, replicate over it and serve the brokers over it', async () => {
    await env.apply(clusterManifest(NS, NAME, SPEC));
    const cr = defaultCluster(await waitReady());

    const ca = await secretText(`${NAME}-ca`, 'ca.crt');
    const cert = await secretText(`${NAME}-mysql-tls`, 'tls.crt');
    expect(signedBy(cert, ca)).toBe(true);
    expect(certificateFacts(cert)!.dnsNames).toEqual(mysqlSubjectAltNames(cr).dnsNames);

    const creds = await admin();
    const primary = await instance('primary');
    const standby = await instance('standby');
    const [status] = await withAdmin(standby.endpoint, creds, (c) => queryRows(c, 'SHOW SLAVE STATUS'));
    expect(status).toMatchObject({
      Master_Host: primary.endpoint.host,
      Master_SSL_Allowed: 'Yes',
      // The instance's own ssl_ca (its Pod's mount; a local path under the test kubelet).
      Master_SSL_CA_File: expect.stringMatching(/ca\.crt$/),
      Slave_IO_Running: 'Yes',
    });
    // Plain TCP with the right password is refused (MariaDB answers "access denied").
    const plain = await mysql
      .createConnection({ ...primary.endpoint, user: creds.user, password: creds.password })
      .then(
        (c) => c.end().then(() => undefined),
        (err: { errno?: number }) => err.errno,
      );
    expect(plain).toBe(1045);

    // The agent sidecar (--mysql-ca, --mysql-server-name) reaches its instance over TLS too.
    const [firstBinlog] = await withAdmin(primary.endpoint, creds, (c) => queryRows(c, 'SHOW BINARY LOGS'));
    const res = await fetch(
      `http://${primary.endpoint.host}:${AGENT_PORT}${CLONE_GTID_PATH}?file=${String(firstBinlog!.Log_name)}&position=4`,
      { headers: { authorization: `Bearer ${agentToken(creds.password)}` } },
    );
    expect([res.status, await res.json()]).toEqual([200, { gtid: expect.any(String) }]);

    const client = { ...(await env.brokerClient(NS, NAME)), timeoutMs: 20_000 };
    const producer = new Producer(client);
    await producer.createTopic('orders');
    const ack = await producer.send('orders', 'sealed');
    const consumer = new Consumer({ ...client, topic: 'orders', group: 'g', waitMs: 500 });
    const messages = await waitFor('the message', async () => {
      const got = await consumer.poll();
      return got.length ? got : undefined;
    });
    expect(messages.map((m) => [m.shard, m.id, m.value])).toEqual([[ack.shard, ack.id, 'sealed']]);
    await consumer.close();
  }, 600_000);

  it('refuses to switch TLS off on the running cluster, and keeps serving', async () => {
    await env.apply(clusterManifest(NS, NAME, SPEC.replace('enabled: true', 'enabled: false')));
    const cr = await waitFor('an InvalidSpec condition', async () => {
      const c = await env.getCluster(NS, NAME);
      return conditionOf(c, 'Ready')?.reason === 'InvalidSpec' ? c : undefined;
    });
    expect(conditionOf(cr, 'Ready')?.message).toContain(
      'spec.mysql.tls.enabled cannot change on a running cluster (from true to false)',
    );
    await env.apply(clusterManifest(NS, NAME, SPEC));
    await waitReady();
  }, 300_000);

  it('rolls the instances onto a certificate issued anew, and they serve it', async () => {
    const oldCert = await secretText(`${NAME}-mysql-tls`, 'tls.crt');
    const before = new Set((await pods('mysql')).map((p) => p.metadata.uid));
    await env.kubectl(['delete', 'secret', `${NAME}-mysql-tls`, '-n', NS]);
    const renewed = await waitFor('a new certificate in the Secret', async () => {
      const cert = await secretText(`${NAME}-mysql-tls`, 'tls.crt').catch(() => '');
      return cert && cert !== oldCert ? cert : undefined;
    });
    await waitFor(
      'both instances replaced and the cluster Ready',
      async () => {
        const now = await pods('mysql');
        const cr = await env.getCluster(NS, NAME);
        return now.length === 2 &&
          now.every((p) => !before.has(p.metadata.uid) && p.status?.phase === 'Running') &&
          conditionOf(cr, 'Ready')?.status === 'True'
          ? true
          : undefined;
      },
      480_000,
      1000,
    );
    const creds = await admin();
    for (const role of ['primary', 'standby'] as const) {
      const { endpoint } = await instance(role);
      const served = await withAdmin(endpoint, creds, async (c) => {
        const stream = (c.connection as unknown as { stream: { getPeerCertificate(): { raw: Buffer } } })
          .stream;
        return stream.getPeerCertificate().raw.toString('base64');
      });
      expect(renewed.replace(/-----[^-]+-----|\s/g, '')).toBe(served);
    }
  }, 600_000);
});
