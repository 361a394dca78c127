import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pullAndSeed } from '../../src/agent/seed.js';
import { agentServer } from '../../src/agent/server.js';
import { agentToken } from '../../src/agent/token.js';
import type { Broker } from '../../src/broker/broker.js';
import { Consumer, Producer } from '../../src/client/index.js';
import { type KeyPairPem, issueCa, issueServingCertificate } from '../../src/common/certificates.js';
import { createLogger } from '../../src/common/logger.js';
import { defaultCluster } from '../../src/operator/api/defaults.js';
import { API_VERSION, KIND } from '../../src/operator/api/types.js';
import {
  CA_VALIDITY_DAYS,
  SERVING_VALIDITY_DAYS,
  mysqlServerName,
  generateCredentials,
  mysqlSubjectAltNames,
  shardSecrets,
} from '../../src/operator/desired/index.js';
import { type ShardSecrets, attachStandby, bootstrapShard } from '../../src/shard/bootstrap.js';
import {
  type ClientTls,
  type Credentials,
  connectAdmin,
  queryRows,
  withAdmin,
} from '../../src/shard/connection.js';
import { renderMyCnf } from '../../src/shard/mycnf.js';
import { LocalMariaDb } from '../../tools/local/mariadbd.js';
import { startBroker } from '../support/dataplane.js';

/**
 * MariaDB over TLS (issue 14.1, `spec.mysql.tls`), real handshakes on real mariadbd: instances
 * started with the my.cnf the operator renders (ssl_cert, ssl_key, ssl_ca, require_secure_transport)
 * and a certificate the operator's code issues for cluster `q` in namespace `mq`; clients dial the
 * instances' IPs and check the name the operator gives them, as in Kubernetes.
 */
/** 127.0.160.201 and up: test/e2e/mysql-tls.test.ts gives pods 127.0.160.1-126. */
const PREFIX = '127.0.160';
const cr = defaultCluster({
  apiVersion: API_VERSION,
  kind: KIND,
  metadata: { name: 'q', namespace: 'mq', uid: 'u' },
  spec: { shards: 1, mysql: { tls: { enabled: true } } },
});
const log = createLogger('test', 'error');

let dir: string;
let ca: KeyPairPem;
let otherCa: KeyPairPem;
let tls: ClientTls;
let secrets: ShardSecrets;
let primary: LocalMariaDb;
let standby: LocalMariaDb;
let broker: Broker | undefined;
let agent: Server | undefined;

const files = () => ({
  certFile: join(dir, 'tls.crt'),
  keyFile: join(dir, 'tls.key'),
  caFile: join(dir, 'ca.crt'),
});

function startInstance(name: string, host: string, serverId: number): Promise<LocalMariaDb> {
  return LocalMariaDb.start({
    dir: join(dir, name),
    host,
    admin: secrets.admin,
    myCnf: renderMyCnf({ serverId, bindAddress: host, port: 3306, tls: files() }),
  });
}

const slaveStatus = () =>
  withAdmin(standby.endpoint, secrets.admin, async (c) => (await queryRows(c, 'SHOW SLAVE STATUS'))[0]!);

async function waitFor<T>(read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  for (let i = 0; ; i++) {
    const value = await read();
    if (done(value) || i === 300) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function refusal(p: Promise<unknown>): Promise<Error & { code?: string; errno?: number }> {
  try {
    await p;
  } catch (err) {
    return err as Error & { code?: string; errno?: number };
  }
  throw new Error('expected a refusal');
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mq-mysql-tls-'));
  [ca, otherCa] = await Promise.all([
    issueCa('mysqlmq q CA', CA_VALIDITY_DAYS),
    issueCa('someone else', CA_VALIDITY_DAYS),
  ]);
  const serving = await issueServingCertificate(
    ca,
    mysqlServerName(cr),
    mysqlSubjectAltNames(cr),
    SERVING_VALIDITY_DAYS,
  );
  await writeFile(files().certFile, serving.certPem);
  await writeFile(files().keyFile, serving.keyPem, { mode: 0o600 });
  await writeFile(files().caFile, ca.certPem);
  tls = { ca: ca.certPem, serverName: mysqlServerName(cr) };
  secrets = shardSecrets(generateCredentials(), tls);
  secrets.admin = { ...secrets.admin, user: 'mq_admin' };
  [primary, standby] = await Promise.all([
    startInstance('p', `${PREFIX}.201`, 1),
    startInstance('s', `${PREFIX}.202`, 2),
  ]);
  await bootstrapShard(primary.endpoint, standby.endpoint, secrets);
}, 120_000);

afterAll(async () => {
  agent?.close();
  await broker?.close();
  await primary?.kill();
  await standby?.kill();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('MariaDB requiring TLS', () => {
  it('replicates to its standby over TLS, semi-sync included', async () => {
    const status = await slaveStatus();
    expect(status).toMatchObject({
      Master_Host: primary.endpoint.host,
      Master_SSL_Allowed: 'Yes',
      Master_SSL_CA_File: files().caFile,
      Slave_IO_Running: 'Yes',
      Slave_SQL_Running: 'Yes',
    });
    const clients = await withAdmin(primary.endpoint, secrets.admin, (c) =>
      queryRows(c, `SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_clients'`),
    );
    expect(Number(clients[0]!.Value)).toBe(1);
  });

  it('encrypts the operator-side connections', async () => {
    const [row] = await withAdmin(primary.endpoint, secrets.admin, (c) =>
      queryRows(c, `SHOW SESSION STATUS LIKE 'Ssl_version'`),
    );
    expect(String(row!.Value)).toMatch(/^TLSv1\.[23]$/);
  });

  it('refuses a client without TLS (require_secure_transport)', async () => {
    const plain = () =>
      mysql.createConnection({
        ...primary.endpoint,
        user: secrets.admin.user,
        password: secrets.admin.password,
      });
    // MariaDB 10.11 answers "access denied" (1045), not MySQL's ER_SECURE_TRANSPORT_REQUIRED (3159).
    const err = await refusal(plain());
    expect([err.code, err.errno]).toEqual(['ER_ACCESS_DENIED_ERROR', 1045]);
    // The same user and password over plain TCP are accepted once the setting is off: it was TLS.
    const setRequired = (on: boolean) =>
      primary.asRoot((c) => c.query(`SET GLOBAL require_secure_transport = ${on ? 'ON' : 'OFF'}`));
    await setRequired(false);
    try {
      await (await plain()).end();
    } finally {
      await setRequired(true);
    }
    expect((await refusal(plain())).errno).toBe(1045);
  });

  it('is refused by a client that trusts another CA, or expects another name', async () => {
    const wrongCa: Credentials = { ...secrets.admin, tls: { ...tls, ca: otherCa.certPem } };
    const caErr = await refusal(connectAdmin(primary.endpoint, wrongCa));
    expect(caErr.message).toMatch(/certificate/i);
    const wrongName: Credentials = { ...secrets.admin, tls: { ...tls, serverName: 'q-broker.mq.svc' } };
    const nameErr = await refusal(connectAdmin(primary.endpoint, wrongName));
    expect(nameErr.message).toMatch(/q-broker\.mq\.svc/);
  });

  it('serves a broker that publishes and consumes over TLS', async () => {
    broker = await startBroker(undefined, {
      db: secrets.broker,
      routing: {
        version: 1,
        shards: [
          { name: 'shard-0', write: primary.endpoint, read: primary.endpoint, requireStandbyAck: true },
        ],
      },
    });
    const producer = new Producer({ brokers: [broker.url], timeoutMs: 5000 });
    await producer.createTopic('secure');
    await producer.send('secure', 'over tls to mariadb');
    const consumer = new Consumer({ brokers: [broker.url], topic: 'secure', group: 'g', waitMs: 200 });
    const messages = await waitFor(
      () => consumer.poll(),
      (m) => m.length > 0,
    );
    expect(messages.map((m) => m.value)).toEqual(['over tls to mariadb']);
    await consumer.close();
    // The standby has it too: written through the encrypted replication stream.
    const onStandby = () =>
      withAdmin(standby.endpoint, secrets.admin, async (c) => {
        const [row] = await queryRows(c, 'SELECT COUNT(*) AS n FROM mq.topics WHERE name = ?', ['secure']);
        return Number(row!.n);
      });
    expect(await waitFor(onStandby, (n) => n === 1)).toBe(1);
  });

  it('seeds a new instance by physical clone over TLS (mariadb-backup)', async () => {
    const token = agentToken(secrets.admin.password);
    agent = agentServer({
      token,
      log,
      source: {
        endpoint: primary.endpoint,
        admin: secrets.admin,
        dataDir: join(dir, 'p', 'data'),
        workDir: join(dir, 'agent-work'),
      },
    });
    await new Promise<void>((resolve) => agent!.listen(9080, `${PREFIX}.201`, resolve));
    const marker = await pullAndSeed({
      source: `${PREFIX}.201:${(agent.address() as AddressInfo).port}`,
      id: '',
      token,
      dataDir: join(dir, 'c', 'data'),
      workDir: join(dir, 'seed-work'),
    });
    expect(marker.gtid).toMatch(/^0-1-\d+$/);
  }, 120_000);

  it('leaves a replica that trusts another CA unable to replicate', async () => {
    const wrongCaFile = join(dir, 'other-ca.crt');
    await writeFile(wrongCaFile, otherCa.certPem);
    await withAdmin(standby.endpoint, secrets.admin, async (c) => {
      await c.query('STOP SLAVE');
      await c.query('CHANGE MASTER TO MASTER_SSL = 1, MASTER_SSL_CA = ?', [wrongCaFile]);
      await c.query('START SLAVE');
    });
    const refused = await waitFor(slaveStatus, (s) => Number(s.Last_IO_Errno) !== 0);
    expect(refused.Slave_IO_Running).not.toBe('Yes');
    expect(String(refused.Last_IO_Error)).toMatch(/SSL|certificate|TLS/i);
    // The operator's next attach puts the cluster's CA back.
    await attachStandby(standby.endpoint, primary.endpoint, secrets);
    const back = await waitFor(slaveStatus, (s) => s.Slave_IO_Running === 'Yes');
    expect(back).toMatchObject({ Slave_IO_Running: 'Yes', Master_SSL_CA_File: files().caFile });
  }, 60_000);
});
