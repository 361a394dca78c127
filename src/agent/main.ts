#!/usr/bin/env node
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parsePointInTime } from '../backup/point-in-time.js';
import { restoreShard } from '../backup/restore.js';
import { ADMIN_USER, MONITOR_USER, instanceInitFile } from '../shard/accounts.js';
import { CLIENT_TLS_USAGE, clientTlsFromFlags } from '../shard/client-tls-flags.js';
import { targetOf } from '../backup/target-spec.js';
import { errorMessage } from '../common/errors.js';
import { createLogger } from '../common/logger.js';
import { dataDirState, planSeed, pullAndSeed } from './seed.js';
import { accountPasswords, parseRestoreRequest, planRestore, restoreDirState } from './restore-step.js';
import { AGENT_PORT } from './contract.js';
import { agentServer } from './server.js';
import { agentToken } from './token.js';

/**
 * The agent of a MariaDB pod (the mysqlmq image, next to the mariadb container):
 *   serve  the sidecar: streams physical copies of the local instance to instances being rebuilt
 *   seed   the init step: fills an empty (or to-be-rebuilt) data directory from the shard's primary
 *   restore  fills a data directory from a backup in a directory or an S3 bucket (docs/backup.md)
 * Secrets come from the environment (MQ_ADMIN_PASSWORD, MQ_MONITOR_PASSWORD,
 * AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), never from flags.
 */
const USAGE = `Usage: mq-agent serve|seed|restore [options]

  --data-dir DIR      the instance's data directory (default /var/lib/mysql)
  --work-dir DIR      scratch space outside the data directory (default $TMPDIR/mq-agent)
  serve: --host ADDR (default 0.0.0.0) --port N (default ${AGENT_PORT})
         --mysql-host ADDR (default $POD_IP, else 127.0.0.1) --mysql-port N (default 3306)
${CLIENT_TLS_USAGE.replace(/^ {2}/gm, '         ')}
  seed:  MQ_SEED_SOURCE (host:port of the source's agent) and MQ_SEED_ID (a rebuild request) from
         the environment; does nothing when MQ_SEED_SOURCE is empty. --init-file FILE: first
         writes the instance's init file there (its admin and monitor users, from
         MQ_ADMIN_PASSWORD and MQ_MONITOR_PASSWORD). With MQ_RESTORE (the
         mysqlmq.io/restore annotation: spec.restore of a new cluster) it restores an empty
         data directory from the source cluster's backup instead
  restore: --cluster NAME --shard shard-N [--backup STAMP, default the newest finished one]
         [--point-in-time RFC3339: the newest backup finished before it plus the archived
         binlogs replayed up to it (second resolution), instead of --backup]
         and a target: --directory PATH, or --s3-bucket B [--s3-prefix P] [--s3-endpoint URL]
         [--s3-region R] [--s3-force-path-style]; S3 credentials from AWS_ACCESS_KEY_ID and
         AWS_SECRET_ACCESS_KEY. Replaces --data-dir (mariadbd must not be running on it).

Environment: MQ_ADMIN_PASSWORD (serve, seed), MQ_MONITOR_PASSWORD (seed --init-file), MQ_LOG_LEVEL`;

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
      'mysql-ca': { type: 'string' },
      'mysql-server-name': { type: 'string' },
      'init-file': { type: 'string' },
      cluster: { type: 'string' },
      shard: { type: 'string' },
      backup: { type: 'string' },
      'point-in-time': { type: 'string' },
      directory: { type: 'string' },
      's3-bucket': { type: 'string' },
      's3-prefix': { type: 'string' },
      's3-endpoint': { type: 'string' },
      's3-region': { type: 'string' },
      's3-force-path-style': { type: 'boolean' },
      help: { type: 'boolean' },
    },
  });
  const command = positionals[0];
  if (values.help || (command !== 'serve' && command !== 'seed' && command !== 'restore')) {
    console.log(USAGE);
    process.exit(values.help ? 0 : 2);
  }
  if (command === 'restore') {
    if (!values.cluster || !values.shard || !values.directory === !values['s3-bucket'])
      throw new Error('restore needs --cluster, --shard and one of --directory and --s3-bucket (see --help)');
    if (values.backup && values['point-in-time'])
      throw new Error('restore takes --backup or --point-in-time, not both');
    const pointInTime = values['point-in-time']
      ? pointInTimeOrThrow(parsePointInTime(values['point-in-time'], '--point-in-time'))
      : undefined;
    const log = createLogger('agent-restore');
    const target = targetOf({
      ...(values.directory ? { directory: { path: values.directory } } : {}),
      ...(values['s3-bucket']
        ? {
            s3: {
              bucket: values['s3-bucket'],
              prefix: values['s3-prefix'],
              endpoint: values['s3-endpoint'],
              region: values['s3-region'],
              forcePathStyle: values['s3-force-path-style'],
            },
          }
        : {}),
    });
    const started = Date.now();
    const { manifest, replay } = await restoreShard({
      target,
      cluster: values.cluster,
      shard: values.shard,
      stamp: values.backup,
      pointInTime,
      dataDir: values['data-dir'] ?? '/var/lib/mysql',
      workDir: values['work-dir'] ?? join(tmpdir(), 'mq-agent-restore'),
    });
    log.info('restored', {
      from: target.description,
      backup: manifest.startedAt,
      gtid: manifest.gtidAtStart,
      bytes: manifest.bytes,
      ...(replay
        ? {
            pointInTime: pointInTime!.toISOString(),
            replayedFrom: replay.from,
            binlogs: replay.binlogs.length,
          }
        : {}),
      ms: Date.now() - started,
    });
    return;
  }
  const password = process.env.MQ_ADMIN_PASSWORD ?? '';
  if (!password) throw new Error('MQ_ADMIN_PASSWORD is not set');
  const dataDir = values['data-dir'] ?? '/var/lib/mysql';
  const workDir = values['work-dir'] ?? join(tmpdir(), 'mq-agent');
  const token = agentToken(password);
  const log = createLogger(`agent-${command}`);

  if (command === 'seed' && values['init-file']) {
    const monitor = process.env.MQ_MONITOR_PASSWORD ?? '';
    if (!monitor) throw new Error('MQ_MONITOR_PASSWORD is not set');
    // Only mariadbd (the same uid) reads it: it holds passwords.
    await writeFile(
      values['init-file'],
      instanceInitFile({ user: ADMIN_USER, password }, { user: MONITOR_USER, password: monitor }),
      { mode: 0o600 },
    );
  }
  if (command === 'seed' && process.env.MQ_RESTORE) {
    await restoreStep(process.env.MQ_RESTORE, dataDir, workDir, log);
    return;
  }
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
  const mysqlTls = clientTlsFromFlags(values['mysql-ca'], values['mysql-server-name']);
  const server = agentServer({
    token,
    log,
    source: {
      endpoint: {
        host: values['mysql-host'] ?? (process.env.POD_IP || '127.0.0.1'),
        port: Number(values['mysql-port'] ?? 3306),
      },
      admin: { user: ADMIN_USER, password, ...(mysqlTls ? { tls: mysqlTls } : {}) },
      dataDir,
      workDir,
    },
  });
  server.listen(port, values.host ?? '0.0.0.0', () => log.info('listening', { port }));
  const stop = () => server.close(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

function pointInTimeOrThrow(parsed: Date | string): Date {
  if (typeof parsed === 'string') throw new Error(parsed);
  return parsed;
}

/**
 * The init step of a new cluster's first primary (`spec.restore`): an empty data directory is
 * filled from the source cluster's backup and adopted (its passwords, a fresh replication
 * history). A failure exits non-zero with a message naming what is missing: the kubelet retries
 * with its back-off, `kubectl logs POD -c seed` shows it, and the operator reports RestoreFailed.
 */
async function restoreStep(
  annotation: string,
  dataDir: string,
  workDir: string,
  log: ReturnType<typeof createLogger>,
): Promise<void> {
  const request = parseRestoreRequest(annotation);
  if (typeof request === 'string' || !request) throw new Error(request ?? 'no restore request');
  const plan = planRestore(await restoreDirState(dataDir));
  if (plan.fail) throw new Error(plan.reason);
  log.info(plan.restore ? 'restoring' : 'not restoring', {
    reason: plan.reason,
    from: request.cluster,
    shard: request.shard,
    pointInTime: request.pointInTime,
  });
  if (!plan.restore) return;
  const accounts = accountPasswords(request.accounts, process.env);
  if (typeof accounts === 'string') throw new Error(accounts);
  const target = targetOf(request.target);
  const started = Date.now();
  try {
    const { manifest, replay } = await restoreShard({
      target,
      cluster: request.cluster,
      shard: request.shard,
      pointInTime: request.pointInTime
        ? pointInTimeOrThrow(parsePointInTime(request.pointInTime, 'pointInTime'))
        : undefined,
      dataDir,
      workDir,
      adopt: { accounts, serverId: request.serverId },
    });
    log.info('restored', {
      from: target.description,
      backup: manifest.startedAt,
      ...(replay ? { replayedFrom: replay.from, binlogs: replay.binlogs.length } : {}),
      ms: Date.now() - started,
    });
  } catch (err) {
    throw new Error(
      `restoring ${request.cluster}/${request.shard} from ${target.description} failed: ${errorMessage(err)}`,
    );
  } finally {
    target.close?.();
  }
}

main().catch((err) => {
  console.error(`mq-agent: ${errorMessage(err)}`);
  process.exit(1);
});
