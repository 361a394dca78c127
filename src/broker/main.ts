#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { errorMessage } from '../common/errors.js';
import { createLogger } from '../common/logger.js';
import { BROKER_DEFAULTS, Broker, type BrokerConfig } from './broker.js';
import { parseRouting } from '../api/routing.js';
import { parseUsers } from '../api/users.js';
import { CLIENT_TLS_USAGE, clientTlsFromFlags } from '../shard/client-tls-flags.js';

/**
 * The broker process. Flags for what differs per deployment, environment variables for secrets
 * (MQ_DB_PASSWORD, MQ_AUTH_TOKEN, MQ_ADMIN_TOKEN), so they never show in `ps` or a Pod spec.
 */
const USAGE = `Usage: mq-broker --routing FILE [options]

  --routing FILE          routing document (JSON); re-read when it changes
  --users FILE            users and their rights per topic (JSON, token digests); re-read when it changes
  --no-auth               accept clients without a token (only without --users and MQ_AUTH_TOKEN)
  --host ADDR             address to listen on (default ${BROKER_DEFAULTS.host})
  --port N                port to listen on (default ${BROKER_DEFAULTS.port})
  --tls-cert FILE         serve HTTPS with this certificate (PEM; with its chain, if any); re-read when it changes
  --tls-key FILE          the certificate's private key (PEM); both or neither
  --client-ca FILE        with --tls-cert and --users: ask clients for a certificate signed by this CA
                          (PEM); one whose CN names a user authenticates as that user when no token
                          is sent; re-read when it changes
${CLIENT_TLS_USAGE}
  --max-message-bytes N   largest message accepted (default ${BROKER_DEFAULTS.maxMessageBytes})
  --commit-timeout-ms N   abandon a batch commit after this and use the next shard (default ${BROKER_DEFAULTS.writer.commitTimeoutMs})

Environment: MQ_DB_USER (default mq_broker), MQ_DB_PASSWORD, MQ_AUTH_TOKEN, MQ_ADMIN_TOKEN, MQ_LOG_LEVEL`;

function intFlag(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      routing: { type: 'string' },
      users: { type: 'string' },
      'no-auth': { type: 'boolean' },
      host: { type: 'string' },
      port: { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'client-ca': { type: 'string' },
      'mysql-ca': { type: 'string' },
      'mysql-server-name': { type: 'string' },
      'max-message-bytes': { type: 'string' },
      'commit-timeout-ms': { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (values.help || !values.routing) {
    console.log(USAGE);
    process.exit(values.help ? 0 : 2);
  }
  const authToken = process.env.MQ_AUTH_TOKEN || undefined;
  // Authentication is on unless turned off in so many words: a broker started without users by
  // mistake must not serve every topic to anyone who reaches it.
  if (!values.users && !authToken && !values['no-auth']) {
    throw new Error('give --users FILE (or MQ_AUTH_TOKEN), or --no-auth to accept clients without a token');
  }
  if (values['no-auth'] && (values.users || authToken)) {
    throw new Error('--no-auth contradicts --users and MQ_AUTH_TOKEN');
  }
  const certFile = values['tls-cert'];
  const keyFile = values['tls-key'];
  if (Boolean(certFile) !== Boolean(keyFile)) {
    throw new Error('give both --tls-cert FILE and --tls-key FILE, or neither (plain HTTP)');
  }
  const clientCaFile = values['client-ca'];
  // A certificate proves a user of the users file: without HTTPS and users it would prove nothing.
  if (clientCaFile && (!certFile || !values.users)) {
    throw new Error('--client-ca needs --tls-cert FILE, --tls-key FILE and --users FILE');
  }
  const mysqlTls = clientTlsFromFlags(values['mysql-ca'], values['mysql-server-name']);
  const log = createLogger('broker');
  const config: BrokerConfig = {
    ...BROKER_DEFAULTS,
    host: values.host ?? BROKER_DEFAULTS.host,
    port: intFlag(values.port, BROKER_DEFAULTS.port, 'port'),
    ...(certFile && keyFile ? { tls: { certFile, keyFile, ...(clientCaFile ? { clientCaFile } : {}) } } : {}),
    maxMessageBytes: intFlag(
      values['max-message-bytes'],
      BROKER_DEFAULTS.maxMessageBytes,
      'max-message-bytes',
    ),
    writer: {
      ...BROKER_DEFAULTS.writer,
      commitTimeoutMs: intFlag(
        values['commit-timeout-ms'],
        BROKER_DEFAULTS.writer.commitTimeoutMs,
        'commit-timeout-ms',
      ),
    },
    db: {
      user: process.env.MQ_DB_USER ?? 'mq_broker',
      password: process.env.MQ_DB_PASSWORD ?? '',
      ...(mysqlTls ? { tls: mysqlTls } : {}),
    },
    routing: parseRouting(JSON.parse(readFileSync(values.routing, 'utf8'))),
    routingFile: values.routing,
    ...(values.users
      ? { users: parseUsers(JSON.parse(readFileSync(values.users, 'utf8'))), usersFile: values.users }
      : {}),
    authToken,
    adminToken: process.env.MQ_ADMIN_TOKEN || undefined,
  };
  const broker = await Broker.start(config, log);
  const stop = (signal: string) => {
    log.info('stopping', { signal });
    broker.close().then(
      () => process.exit(0),
      (err) => {
        log.error('shutdown failed', { error: errorMessage(err) });
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

main().catch((err) => {
  console.error(`mq-broker: ${errorMessage(err)}`);
  process.exit(1);
});
