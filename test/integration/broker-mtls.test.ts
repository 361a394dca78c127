import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TopicRight } from '../../src/api/users.js';
import { Consumer, MqClientError, Producer } from '../../src/client/index.js';
import {
  type KeyPairPem,
  issueCa,
  issueClientCertificate,
  issueServingCertificate,
} from '../../src/common/certificates.js';
import { defaultCluster } from '../../src/operator/api/defaults.js';
import { API_VERSION, KIND } from '../../src/operator/api/types.js';
import {
  CA_VALIDITY_DAYS,
  CLIENT_VALIDITY_DAYS,
  SERVING_VALIDITY_DAYS,
  brokerServerName,
  brokerSubjectAltNames,
} from '../../src/operator/desired/index.js';
import { BrokerProcess } from '../../tools/local/broker-process.js';
import type { LocalShards } from '../../tools/local/cluster.js';
import {
  ADMIN_TOKEN,
  refusal,
  replaceFile,
  runMqctl,
  startShards,
  usersFileText,
} from '../support/dataplane.js';
import { ensureBuilt, waitFor } from '../support/operator.js';

/**
 * mTLS client certificates (issue 14) on a broker process started as the operator starts it
 * (`--tls-cert`, `--tls-key`, `--users`, `--client-ca`), real handshakes on a real shard. The
 * certificates are made by the code the operator issues with. A certificate that does not verify
 * still completes the handshake (the broker asks without insisting, so token clients connect); the
 * request then gets 401 `unauthenticated` saying why.
 */
const PREFIX = '127.0.146';
const HOST = `${PREFIX}.100`;
const PORT = 8443;
const cr = defaultCluster({
  apiVersion: API_VERSION,
  kind: KIND,
  metadata: { name: 'q', namespace: 'mq', uid: 'u' },
});
const serverName = brokerServerName(cr);

const USERS: Record<string, TopicRight[]> = {
  root: [{ topic: '*', actions: ['produce', 'consume', 'admin'] }],
  billing: [{ topic: 'orders', actions: ['produce', 'consume'] }],
  reader: [{ topic: 'orders', actions: ['consume'] }],
  leaver: [{ topic: 'orders', actions: ['produce'] }],
};
const tokenOf = (name: string) => `token-of-${name}-0123456789abcdef`;

let cluster: LocalShards;
let broker: BrokerProcess;
let dir: string;
let ca: KeyPairPem;
let otherCa: KeyPairPem;
let serving: KeyPairPem;
const certs: Record<string, KeyPairPem> = {};

async function writeUsers(users: Record<string, TopicRight[]>): Promise<void> {
  await replaceFile(join(dir, 'users.json'), usersFileText(users, tokenOf));
}

/** Client options presenting `pair` (a fresh agent, so a fresh handshake), and a token if given. */
const withCert = (pair: KeyPairPem | undefined, token?: string) => ({
  brokers: [broker.url],
  ca: ca.certPem,
  serverName,
  timeoutMs: 5000,
  ...(pair ? { cert: pair.certPem, key: pair.keyPem } : {}),
  ...(token ? { token } : {}),
});

/** `mqctl ARGS` against the broker; its exit code and output. */
const mqctl = (args: string[], env: Record<string, string> = {}) =>
  runMqctl(['--brokers', broker.url, '--server-name', serverName, ...args], { MQ_TOKEN: '', ...env });

beforeAll(async () => {
  await ensureBuilt();
  cluster = await startShards(PREFIX, 1);
  dir = await mkdtemp(join(tmpdir(), 'mq-mtls-'));
  [ca, otherCa] = await Promise.all([
    issueCa('mysqlmq q CA', CA_VALIDITY_DAYS),
    issueCa('someone else', CA_VALIDITY_DAYS),
  ]);
  serving = await issueServingCertificate(ca, serverName, brokerSubjectAltNames(cr), SERVING_VALIDITY_DAYS);
  for (const name of ['billing', 'reader', 'leaver', 'stranger']) {
    certs[name] = await issueClientCertificate(ca, name, CLIENT_VALIDITY_DAYS);
  }
  certs.otherCaBilling = await issueClientCertificate(otherCa, 'billing', CLIENT_VALIDITY_DAYS);
  await writeFile(join(dir, 'tls.crt'), serving.certPem);
  await writeFile(join(dir, 'tls.key'), serving.keyPem);
  await writeFile(join(dir, 'ca.crt'), ca.certPem);
  await writeUsers(USERS);
  const routingFile = join(dir, 'routing.json');
  await BrokerProcess.writeRouting(routingFile, cluster.routing());
  broker = await BrokerProcess.start({
    host: HOST,
    port: PORT,
    routingFile,
    db: cluster.secrets.broker,
    adminToken: ADMIN_TOKEN,
    usersFile: join(dir, 'users.json'),
    tls: {
      certFile: join(dir, 'tls.crt'),
      keyFile: join(dir, 'tls.key'),
      ca: ca.certPem,
      serverName,
      clientCaFile: join(dir, 'ca.crt'),
    },
  });
  await new Producer(withCert(undefined, tokenOf('root'))).createTopic('orders');
});

afterAll(async () => {
  await broker?.stop();
  await cluster?.destroy();
});

describe('a broker taking client certificates', () => {
  it("authenticates a user's certificate, which publishes and consumes within the user's rights", async () => {
    const ack = await new Producer(withCert(certs.billing)).send('orders', 'by certificate');
    const consumer = new Consumer({ ...withCert(certs.billing), topic: 'orders', group: 'g', waitMs: 200 });
    const messages = await consumer.poll();
    expect(messages.map((m) => [m.shard, m.id, m.value])).toEqual([[ack.shard, ack.id, 'by certificate']]);
    await consumer.close();
  });

  it('answers 403 to a consume-only user publishing, 200 to it consuming', async () => {
    const err = await refusal(new Producer(withCert(certs.reader)).send('orders', 'x'));
    expect([err.status, err.code, err.message]).toEqual([
      403,
      'forbidden',
      'user reader lacks the produce right on topic orders',
    ]);
    const consumer = new Consumer({ ...withCert(certs.reader), topic: 'orders', group: 'r', waitMs: 200 });
    expect((await consumer.poll()).map((m) => m.value)).toContain('by certificate');
    await consumer.close();
  });

  it('answers 401 to a certificate of another CA: the handshake completes, the request is refused', async () => {
    const err = await refusal(new Producer(withCert(certs.otherCaBilling)).send('orders', 'x'));
    expect([err.status, err.code]).toEqual([401, 'unauthenticated']);
    expect(err.message).toMatch(/^the client certificate is not signed by the brokers' client CA \(\w+\)$/);
  });

  it("answers 401 to the brokers' own serving certificate used as a client certificate", async () => {
    const err = await refusal(new Producer(withCert(serving)).send('orders', 'x'));
    expect([err.status, err.code, err.message]).toEqual([
      401,
      'unauthenticated',
      'the client certificate is not meant for client authentication (no clientAuth extended key usage)',
    ]);
  });

  it('answers 401 to a certificate naming nobody in the users file', async () => {
    const err = await refusal(new Producer(withCert(certs.stranger)).send('orders', 'x'));
    expect([err.status, err.code, err.message]).toEqual([
      401,
      'unauthenticated',
      'the client certificate names stranger, who is not a user of these brokers',
    ]);
  });

  it('answers 401 without token or certificate, saying both are accepted', async () => {
    const err = await refusal(new Producer(withCert(undefined)).send('orders', 'x'));
    expect([err.status, err.code]).toEqual([401, 'unauthenticated']);
    expect(err.message).toContain('or a client certificate of a user');
  });

  it('lets a token decide when one is sent, whatever the certificate', async () => {
    expect(
      (await new Producer(withCert(undefined, tokenOf('billing'))).send('orders', 'token')).id,
    ).toBeGreaterThan(0);
    // The reader's certificate cannot publish, the root token with it can.
    expect(
      (await new Producer(withCert(certs.reader, tokenOf('root'))).send('orders', 'both')).id,
    ).toBeGreaterThan(0);
    // A bad token is refused even beside a good certificate.
    const err = await refusal(new Producer(withCert(certs.billing, 'not-a-token')).send('orders', 'x'));
    expect([err.status, err.code]).toEqual([401, 'unauthenticated']);
    expect(err.message).toContain('bearer token belongs to no user');
  });

  it('serves mqctl given --cert and --key, or MQ_CERT and MQ_KEY', async () => {
    await writeFile(join(dir, 'billing.crt'), certs.billing!.certPem);
    await writeFile(join(dir, 'billing.key'), certs.billing!.keyPem);
    const produced = await mqctl([
      '--ca',
      join(dir, 'ca.crt'),
      '--cert',
      join(dir, 'billing.crt'),
      '--key',
      join(dir, 'billing.key'),
      'produce',
      'orders',
      'cli',
    ]);
    expect([produced.code, produced.stderr]).toEqual([0, 'acknowledged 1 message(s)\n']);
    const consumed = await mqctl(['consume', 'orders', '--group', 'cli', '--max', '1'], {
      MQ_CA: join(dir, 'ca.crt'),
      MQ_CERT: join(dir, 'billing.crt'),
      MQ_KEY: join(dir, 'billing.key'),
    });
    expect(consumed.code).toBe(0);
    expect(JSON.parse(consumed.stdout.trim().split('\n')[0]!).value).toBe('by certificate');
    const half = await mqctl(['--ca', join(dir, 'ca.crt'), '--cert', join(dir, 'billing.crt'), 'topics']);
    expect([half.code, half.stderr]).toEqual([
      1,
      'mqctl: give both --cert FILE and --key FILE (MQ_CERT, MQ_KEY), or neither\n',
    ]);
  });

  it('refuses the certificate of a user removed from the users file, once the file is re-read', async () => {
    // One producer, so its open connection too: the certificate is judged once per connection,
    // the user it names on every request.
    const producer = new Producer(withCert(certs.leaver));
    expect((await producer.send('orders', 'still here')).id).toBeGreaterThan(0);
    await writeUsers(Object.fromEntries(Object.entries(USERS).filter(([name]) => name !== 'leaver')));
    const err = await waitFor('the removed user refused', async () => {
      try {
        await producer.send('orders', 'x');
        return undefined;
      } catch (e) {
        return e instanceof MqClientError ? e : undefined;
      }
    });
    expect([err.status, err.code, err.message]).toEqual([
      401,
      'unauthenticated',
      'the client certificate names leaver, who is not a user of these brokers',
    ]);
  });

  it('trusts a replaced client CA from its file without restarting', async () => {
    const pid = broker.pid;
    await replaceFile(join(dir, 'ca.crt'), otherCa.certPem);
    await waitFor('the new client CA in force', async () => {
      try {
        return (await new Producer(withCert(certs.otherCaBilling)).send('orders', 'new CA')).id > 0;
      } catch {
        return false;
      }
    });
    expect(broker.pid).toBe(pid);
    const err = await refusal(new Producer(withCert(certs.billing)).send('orders', 'x'));
    expect([err.status, err.code]).toEqual([401, 'unauthenticated']);
  });

  it('refuses TLS renegotiation, also after a reload: a connection keeps the certificate it showed', async () => {
    // Runs after the test above replaced the client CA: the server's context is a reloaded one.
    expect(await renegotiation(certs.otherCaBilling)).toMatch(/no renegotiation/);
  });
});

/** What becomes of a TLS 1.2 connection presenting `pair` that asks to renegotiate. */
async function renegotiation(pair: KeyPairPem): Promise<string> {
  const socket = connect({
    host: HOST,
    port: PORT,
    ca: ca.certPem,
    servername: serverName,
    rejectUnauthorized: false,
    maxVersion: 'TLSv1.2',
    cert: pair.certPem,
    key: pair.keyPem,
  });
  try {
    await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    return await new Promise<string>((resolve) => {
      socket.once('error', (err) => resolve(err.message));
      socket.renegotiate({ rejectUnauthorized: false }, (err) => resolve(err ? err.message : 'renegotiated'));
    });
  } finally {
    socket.destroy();
  }
}
