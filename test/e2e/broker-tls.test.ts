/**
 * `spec.brokers.tls` end to end on the embedded control plane: the operator issues a CA and the
 * brokers' certificate into Secrets, the broker Pods serve HTTPS with it (probes included), the
 * SDK and `kubectl mqc` verify it with the CA from the Secret, and a certificate the operator
 * issues anew reaches the running broker without restarting its Pod. With
 * `clientCertificates.enabled` the admin user's Secret gets a client certificate beside its token
 * and the rolled broker takes it instead of a token.
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Consumer, MqClientError, Producer } from '../../src/client/index.js';
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

  it('with clientCertificates: issues the admin user a client certificate the rolled brokers take', async () => {
    const token = text(await secret(`${NAME}-user-admin`), 'token');
    await env.kubectl([
      'patch',
      'mqc',
      NAME,
      '-n',
      NS,
      '--type',
      'merge',
      '-p',
      JSON.stringify({ spec: { brokers: { tls: { clientCertificates: { enabled: true } } } } }),
    ]);
    const caPem = text(await secret(`${NAME}-ca`), 'ca.crt');
    const admin = await waitFor('a client certificate in the admin Secret', async () => {
      const s = await secret(`${NAME}-user-admin`);
      return s.data['tls.crt'] && s.data['tls.key'] ? s : undefined;
    });
    expect(text(admin, 'token')).toBe(token); // the operator never rewrites the token
    expect(text(admin, 'ca.crt')).toBe(caPem);
    const cert = new X509Certificate(text(admin, 'tls.crt'));
    expect(cert.subject).toBe('CN=admin');
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']); // clientAuth only
    expect(signedBy(text(admin, 'tls.crt'), caPem)).toBe(true);

    const deployment = JSON.parse(
      await env.kubectl(['get', 'deployment', `${NAME}-broker`, '-n', NS, '-o', 'json']),
    ) as { spec: { template: { spec: { containers: { name: string; args: string[] }[] } } } };
    const args = deployment.spec.template.spec.containers.find((c) => c.name === 'broker')!.args;
    expect(args.slice(args.indexOf('--client-ca'), args.indexOf('--client-ca') + 2)).toEqual([
      '--client-ca',
      '/etc/mysqlmq/client-ca/ca.crt',
    ]);

    // A real request with the certificate and no token, once the rolled broker is the only one.
    const cr = defaultCluster(await env.getCluster(NS, NAME));
    const ack = await waitFor(
      'the rolled broker taking the certificate',
      async () => {
        const pod = await brokerPod();
        if (!pod.spec.containers.some((c) => c.args?.includes('--client-ca'))) return undefined;
        const { brokers } = await env.brokerClient(NS, NAME, { ready: true });
        if (brokers.length !== 1) return undefined;
        return new Producer({
          brokers,
          ca: caPem,
          serverName: brokerServerName(cr),
          cert: text(admin, 'tls.crt'),
          key: text(admin, 'tls.key'),
          timeoutMs: 5000,
        }).send('orders', 'by certificate');
      },
      240_000,
      500,
    );
    expect(ack.id).toBeGreaterThan(0);
    // Neither token nor certificate: still 401, tokens and certificates both being accepted.
    const { brokers } = await env.brokerClient(NS, NAME, { ready: true });
    const refused = await new Producer({
      brokers,
      ca: caPem,
      serverName: brokerServerName(cr),
      timeoutMs: 5000,
    })
      .send('orders', 'x')
      .then(
        () => undefined,
        (err: unknown) => err,
      );
    expect(refused).toBeInstanceOf(MqClientError);
    expect((refused as MqClientError).status).toBe(401);
  });
});
