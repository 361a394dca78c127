import { X509Certificate } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Consumer, Producer } from '../../src/client/index.js';
import {
  type KeyPairPem,
  certificateFacts,
  issueCa,
  issueServingCertificate,
} from '../../src/common/certificates.js';
import { defaultCluster } from '../../src/operator/api/defaults.js';
import { API_VERSION, KIND } from '../../src/operator/api/types.js';
import {
  CA_VALIDITY_DAYS,
  SERVING_VALIDITY_DAYS,
  brokerServerName,
  brokerSubjectAltNames,
} from '../../src/operator/desired/index.js';
import { pushRouting } from '../../src/operator/shards/routing-publisher.js';
import { BrokerProcess } from '../../tools/local/broker-process.js';
import type { LocalShards } from '../../tools/local/cluster.js';
import { ADMIN_TOKEN, refusal, replaceFile, runMqctl, startShards } from '../support/dataplane.js';
import { ensureBuilt, waitFor } from '../support/operator.js';

/**
 * HTTPS on a broker process (issue 14.1), real handshakes on a real shard: the certificate is made
 * by the code the operator issues with, for a cluster `q` in namespace `mq`, and the clients dial
 * the broker's IP and check the Service name, as the operator dials pods.
 */
const PREFIX = '127.0.140';
const HOST = `${PREFIX}.100`;
const PORT = 8443;
const cr = defaultCluster({
  apiVersion: API_VERSION,
  kind: KIND,
  metadata: { name: 'q', namespace: 'mq', uid: 'u' },
});
const serverName = brokerServerName(cr);

let cluster: LocalShards;
let broker: BrokerProcess;
let dir: string;
let ca: KeyPairPem;
let otherCa: KeyPairPem;

async function issueFor(authority: KeyPairPem): Promise<KeyPairPem> {
  return issueServingCertificate(authority, serverName, brokerSubjectAltNames(cr), SERVING_VALIDITY_DAYS);
}

/** The serving certificate a new TLS connection is shown (not verified: only looked at). */
function servedCertificate(): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(
      { host: HOST, port: PORT, servername: serverName, rejectUnauthorized: false },
      () => {
        const cert = socket.getPeerCertificate();
        socket.end();
        resolve(cert.fingerprint256);
      },
    );
    socket.once('error', reject);
  });
}

const client = (authority: KeyPairPem, extra: { serverName?: string } = { serverName }) => ({
  brokers: [broker.url],
  ca: authority.certPem,
  timeoutMs: 5000,
  ...extra,
});

/** `mqctl ARGS` against the broker; its exit code and output. */
const mqctl = (args: string[], env: Record<string, string> = {}) =>
  runMqctl(['--brokers', broker.url, ...args], env);

beforeAll(async () => {
  await ensureBuilt();
  cluster = await startShards(PREFIX, 1);
  dir = await mkdtemp(join(tmpdir(), 'mq-tls-'));
  [ca, otherCa] = await Promise.all([
    issueCa('mysqlmq q CA', CA_VALIDITY_DAYS),
    issueCa('someone else', CA_VALIDITY_DAYS),
  ]);
  const serving = await issueFor(ca);
  await writeFile(join(dir, 'tls.crt'), serving.certPem);
  await writeFile(join(dir, 'tls.key'), serving.keyPem);
  const routingFile = join(dir, 'routing.json');
  await BrokerProcess.writeRouting(routingFile, cluster.routing());
  broker = await BrokerProcess.start({
    host: HOST,
    port: PORT,
    routingFile,
    db: cluster.secrets.broker,
    adminToken: ADMIN_TOKEN,
    tls: { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), ca: ca.certPem, serverName },
  });
});

afterAll(async () => {
  await broker?.stop();
  await cluster?.destroy();
});

describe('a broker serving HTTPS', () => {
  it('publishes and delivers to clients that trust its CA', async () => {
    expect(broker.url).toBe(`https://${HOST}:${PORT}`);
    const producer = new Producer(client(ca));
    await producer.createTopic('secure');
    const ack = await producer.send('secure', 'over tls');
    const consumer = new Consumer({ ...client(ca), topic: 'secure', group: 'g', waitMs: 200 });
    const messages = await consumer.poll();
    expect(messages.map((m) => [m.shard, m.id, m.value])).toEqual([[ack.shard, ack.id, 'over tls']]);
    await consumer.close();
  });

  it('is refused by a client that trusts another CA, with the setting to fix', async () => {
    const err = await refusal(new Producer(client(otherCa)).send('secure', 'x'));
    expect([err.status, err.code]).toEqual([0, 'certificate_refused']);
    expect(err.message).toContain('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    expect(err.message).toContain('mqctl --ca FILE');
  });

  it('is refused by a client that checks a name the certificate does not carry', async () => {
    // The URL's IP is no subjectAltName: without serverName the client checks the IP.
    const err = await refusal(new Producer(client(ca, {})).send('secure', 'x'));
    expect([err.status, err.code]).toEqual([0, 'certificate_refused']);
    expect(err.message).toContain('ERR_TLS_CERT_ALTNAME_INVALID');
  });

  it('answers no plain HTTP on its port', async () => {
    const outcome = await new Promise<string>((resolve) => {
      const req = httpRequest({ host: HOST, port: PORT, path: '/healthz', timeout: 5000 }, (res) =>
        resolve(`HTTP ${res.statusCode}`),
      );
      req.once('timeout', () => req.destroy(new Error('timeout')));
      req.once('error', (err) => resolve(`error: ${err.message}`));
      req.end();
    });
    expect(outcome).toMatch(/^error: /);
    const err = await refusal(
      new Producer({ brokers: [`http://${HOST}:${PORT}`], timeoutMs: 1000 }).send('secure', 'x'),
    );
    expect(err.code).toBe('brokers_unreachable');
  });

  it("takes the operator's routing pushes, which verify it against the cluster's CA", async () => {
    const doc = { ...cluster.routing(), version: 7 };
    expect(await pushRouting([broker.url], doc, ADMIN_TOKEN, 5000, { ca: ca.certPem, serverName })).toEqual([
      { url: broker.url, ok: true },
    ]);
    const [refused] = await pushRouting([broker.url], { ...doc, version: 8 }, ADMIN_TOKEN, 5000, {
      ca: otherCa.certPem,
      serverName,
    });
    expect(refused).toMatchObject({ ok: false, error: 'unable to verify the first certificate' });
  });

  it('serves mqctl given the CA with --ca or MQ_CA, and refuses it without', async () => {
    const caFile = join(dir, 'ca.crt');
    await writeFile(caFile, ca.certPem);
    const produced = await mqctl(['--ca', caFile, '--server-name', serverName, 'produce', 'secure', 'cli']);
    expect([produced.code, produced.stderr]).toEqual([0, 'acknowledged 1 message(s)\n']);
    const consumed = await mqctl(
      ['--server-name', serverName, 'consume', 'secure', '--group', 'cli', '--max', '1'],
      {
        MQ_CA: caFile,
      },
    );
    expect(consumed.code).toBe(0);
    expect(JSON.parse(consumed.stdout.trim().split('\n')[0]!).value).toBe('over tls');

    const refused = await mqctl(['--server-name', serverName, 'topics']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^mqctl: certificate_refused: .*mqctl --ca FILE/);
  });

  it('serves a renewed certificate from its files without restarting', async () => {
    const pid = broker.pid;
    const renewed = await issueFor(otherCa);
    const renewedFingerprint = new X509Certificate(renewed.certPem).fingerprint256;
    // Key first, then certificate: the broker meets a mismatched pair in between and keeps the
    // certificate in force until the pair matches.
    await replaceFile(join(dir, 'tls.key'), renewed.keyPem);
    await replaceFile(join(dir, 'tls.crt'), renewed.certPem);
    await waitFor('the renewed certificate', async () => (await servedCertificate()) === renewedFingerprint);

    expect(broker.pid).toBe(pid);
    expect(certificateFacts(renewed.certPem)?.dnsNames).toContain(serverName);
    const ack = await new Producer(client(otherCa)).send('secure', 'after renewal');
    expect(ack.id).toBeGreaterThan(0);
    const err = await refusal(new Producer(client(ca)).send('secure', 'x'));
    expect(err.code).toBe('certificate_refused');
  });
});
