#!/usr/bin/env node
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { errorMessage } from '../common/errors.js';
import { createLogger } from '../common/logger.js';
import { dataDirState, planSeed, pullAndSeed } from './seed.js';
import { AGENT_PORT } from './contract.js';
import { agentServer } from './server.js';
import { agentToken } from './token.js';

/**
 * The agent of a MariaDB pod (the mysqlmq image, next to the mariadb container):
 *   serve  the sidecar: streams physical copies of the local instance to instances being rebuilt
 *   seed   the init step: fills an empty (or to-be-rebuilt) data directory from the shard's primary
 * Secrets come from the environment (MARIADB_ROOT_PASSWORD), never from flags.
 */
const USAGE = `Usage: mq-agent serve|seed [options]

  --data-dir DIR      the instance's data directory (default /var/lib/mysql)
  --work-dir DIR      scratch space outside the data directory (default $TMPDIR/mq-agent)
  serve: --host ADDR (default 0.0.0.0) --port N (default ${AGENT_PORT})
         --mysql-host ADDR (default $POD_IP, else 127.0.0.1) --mysql-port N (default 3306)
  seed:  MQ_SEED_SOURCE (host:port of the source's agent) and MQ_SEED_ID (a rebuild request) from
         the environment; does nothing when MQ_SEED_SOURCE is empty

Environment: MARIADB_ROOT_PASSWORD, MQ_LOG_LEVEL`;

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      'data-dir': { type: 'string' },
      'work-dir': { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string' },
      'mysql-host': { type: 'string' },
      'mysql-port': { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  const command = positionals[0];
  if (values.help || (command !== 'serve' && command !== 'seed')) {
    console.log(USAGE);
    process.exit(values.help ? 0 : 2);
  }
  const password = process.env.MARIADB_ROOT_PASSWORD ?? '';
  if (!password) throw new Error('MARIADB_ROOT_PASSWORD is not set');
  const dataDir = values['data-dir'] ?? '/var/lib/mysql';
  const workDir = values['work-dir'] ?? join(tmpdir(), 'mq-agent');
  const token = agentToken(password);
  const log = createLogger(`agent-${command}`);

  if (command === 'seed') {
    const req = { source: process.env.MQ_SEED_SOURCE ?? '', id: process.env.MQ_SEED_ID ?? '' };
    const plan = planSeed(await dataDirState(dataDir), req);
    log.info(plan.seed ? 'seeding' : 'not seeding', { reason: plan.reason, source: req.source || undefined });
    if (!plan.seed) return;
    const started = Date.now();
    // A failure exits non-zero: the kubelet runs the init step again, with its back-off.
    const marker = await pullAndSeed({ ...req, token, dataDir, workDir });
    log.info('seeded', { source: marker.source, gtid: marker.gtid, ms: Date.now() - started });
    return;
  }

  const port = Number(values.port ?? AGENT_PORT);
  const server = agentServer({
    token,
    log,
    source: {
      endpoint: {
        host: values['mysql-host'] ?? (process.env.POD_IP || '127.0.0.1'),
        port: Number(values['mysql-port'] ?? 3306),
      },
      admin: { user: 'root', password },
      dataDir,
      workDir,
    },
  });
  server.listen(port, values.host ?? '0.0.0.0', () => log.info('listening', { port }));
  const stop = () => server.close(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err) => {
  console.error(`mq-agent: ${errorMessage(err)}`);
  process.exit(1);
});
