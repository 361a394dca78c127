/**
 * `spec.brokers.tls` end to end on the embedded control plane: the operator issues a CA and the
 * brokers' certificate into Secrets, the broker Pods serve HTTPS with it (probes included), the
 * SDK and `kubectl mqc` verify it with the CA from the Secret, and a certificate the operator
 * issues anew reaches the running broker without restarting its Pod.
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Consumer, Producer } from '../../src/client/index.js';
import { certificateFacts, signedBy } from '../../src/common/certificates.js';
import { defaultCluster } from '../../src/operator/api/defaults.js';
import type { MessageQueueCluster } from '../../src/operator/api/types.js';
import { brokerServerName, brokerSubjectAltNames } from '../../src/operator/desired/broker-tls.js';
import { clusterManifest } from '../../tools/local/cluster-manifest.js';
import {
  type Env,
  type OperatorProcess,
  type PodJson,
  REPO,
  conditionOf,
  startEnv,
  waitFor,
} from '../support/operator.js';

const NS = 'secure';
const NAME = 'tq';

let env: Env;
let operator: OperatorProcess;

interface SecretJson {
  type: string;
  data: Record<string, string>;
}

async function secret(name: string): Promise<SecretJson> {
  return JSON.parse(await env.kubectl(['get', 'secret', name, '-n', NS, '-o', 'json'])) as SecretJson;
}

const text = (s: SecretJson, key: string) => Buffer.from(s.data[key] ?? '', 'base64').toString('utf8');

async function brokerPod(): Promise<PodJson> {
  const pods = (await env.pods(NS, `mysqlmq.io/cluster=${NAME},app.kubernetes.io/component=broker`)).filter(
    (p) => !p.metadata.deletionTimestamp,
  );
  if (pods.length !== 1 || !pods[0]!.status?.podIP) throw new Error('no single broker pod with an IP');
  return pods[0]!;
}

/** The fingerprint of the certificate a new connection to `ip` is shown (looked at, not verified). */
function servedFingerprint(ip: string, serverName: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(
      { host: ip, port: 8080, servername: serverName, rejectUnauthorized: false },
      () => {
        resolve(socket.getPeerCertificate().fingerprint256);
        socket.end();
      },
    );
    socket.once('error', reject);
  });
}

beforeAll(async () => {
  env = await startEnv('127.0.140');
  await env.kubectl(['create', 'namespace', NS]);
  operator = env.startOperator();
}, 600_000);

afterAll(async () => {
  if (operator && process.env.MQ_E2E_OPERATOR_LOG) process.stderr.write(operator.logs());
  await env?.stop();
});

describe('brokers with spec.brokers.tls', () => {
  it('serve HTTPS with a certificate the operator issued for the Service, which clients verify', async () => {
    await env.apply(
      clusterManifest(
        NS,
        NAME,
        `
shards: 1
mysql:
  storage:
    size: 1Gi
brokers:
  replicas: 1
  tls:
    enabled: true
failover:
  probePeriodSeconds: 1
`,
      ),
    );
    const live: MessageQueueCluster = await waitFor(
      'the cluster Ready',
      async () => {
        const cr = await env.getCluster(NS, NAME);
        return conditionOf(cr, 'Ready')?.status === 'True' ? cr : undefined;
      },
      240_000,
      500,
    );
    const cr = defaultCluster(live);
    const ca = await secret(`${NAME}-ca`);
    const tls = await secret(`${NAME}-broker-tls`);
    expect(tls.type).toBe('kubernetes.io/tls');
    expect(text(tls, 'ca.crt')).toBe(text(ca, 'ca.crt'));
    expect(signedBy(text(tls, 'tls.crt'), text(ca, 'ca.crt'))).toBe(true);
    const facts = certificateFacts(text(tls, 'tls.crt'))!;
    expect(facts.dnsNames).toEqual(brokerSubjectAltNames(cr).dnsNames);
    expect(new X509Certificate(text(ca, 'ca.crt')).ca).toBe(true);

    await brokerPod(); // exactly one, with an IP
    const client = {
      ...(await env.brokerClient(NS, NAME)),
      ca: text(tls, 'ca.crt'),
      serverName: brokerServerName(cr),
      timeoutMs: 20_000,
    };
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
  });

  it('lets kubectl mqc reach the brokers with the CA from the cluster Secret', async () => {
    const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>(
      (resolve) =>
        execFile(
          process.execPath,
          [join(REPO, 'dist/cli/kubectl-mqc.js'), 'topics', NAME, '-n', NS],
          { env: { ...process.env, KUBECONFIG: env.kubeconfig } },
          (err, out, errOut) =>
            resolve({ code: err ? Number(err.code ?? 1) : 0, stdout: out, stderr: errOut }),
        ),
    );
    expect([code, stderr]).toEqual([0, '']);
    expect(stdout).toContain('orders');
  });

  it('issues the certificate anew when its Secret is lost, and the running broker serves it', async () => {
    const cr = defaultCluster(await env.getCluster(NS, NAME));
    const before = await brokerPod();
    const caPem = text(await secret(`${NAME}-ca`), 'ca.crt');
    const oldCert = text(await secret(`${NAME}-broker-tls`), 'tls.crt');
    await env.kubectl(['delete', 'secret', `${NAME}-broker-tls`, '-n', NS]);

    const renewed = await waitFor('a new certificate in the Secret', async () => {
      const cert = text(await secret(`${NAME}-broker-tls`), 'tls.crt');
      return cert && cert !== oldCert ? cert : undefined;
    });
    expect(signedBy(renewed, caPem)).toBe(true);
    const fingerprint = new X509Certificate(renewed).fingerprint256;
    await waitFor(
      'the broker serving the new certificate',
      async () => (await servedFingerprint(before.status!.podIP!, brokerServerName(cr))) === fingerprint,
      120_000,
      500,
    );
    expect((await brokerPod()).metadata.uid).toBe(before.metadata.uid);
  });
});
