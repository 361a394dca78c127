#!/usr/bin/env node
/**
 * `npm run bench:backup`: a full backup of one shard holding `--mib` MiB of 1 kB messages, taken
 * from its standby through the standby's agent as the operator takes it, to a directory and to a
 * local S3-compatible server (s3rver), then restored from each (fetch, `mbstream -x`,
 * `mariadb-backup --prepare`) and started to check it holds every row. Real mariadbd processes,
 * no Kubernetes. Writes the section "Backup and restore (issue 10)" of docs/benchmarks.md and
 * docs/bench-results/backup.json.
 *
 * Flags: --mib N (256), --prefix (127.0.84: loopback addresses), --no-write, --keep.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import S3rver from 's3rver';
import { agentServer } from '../../src/agent/server.js';
import { agentToken } from '../../src/agent/token.js';
import { DirectoryTarget } from '../../src/backup/directory.js';
import { restoreShard } from '../../src/backup/restore.js';
import { S3Target } from '../../src/backup/s3.js';
import { backupShard } from '../../src/backup/shard-backup.js';
import type { BackupTarget } from '../../src/backup/target.js';
import { createLogger } from '../../src/common/logger.js';
import { bootstrapShard } from '../../src/shard/bootstrap.js';
import { queryRows, withAdmin } from '../../src/shard/connection.js';
import { generateSecrets } from '../local/cluster.js';
import { LocalMariaDb } from '../local/mariadbd.js';
import {
  describeLoad,
  describeMachine,
  loadNow,
  writeBenchmarkJson,
  writeBenchmarkSection,
} from './machine.js';

const SECTION = 'Backup and restore (issue 10)';
const RESULTS_JSON = 'docs/bench-results/backup.json';
const ROW_BYTES = 1000;
const ROWS_PER_INSERT = 1000;

interface Run {
  target: string;
  backupMs: number;
  bytes: number;
  restoreMs: number;
  rowsRestored: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      mib: { type: 'string', default: '256' },
      prefix: { type: 'string', default: '127.0.84' },
      'no-write': { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
    },
  });
  const mib = Number(values.mib);
  const loadAtStart = loadNow();
  const secrets = generateSecrets();
  const dir = await mkdtemp(join(tmpdir(), 'mq-bench-backup-'));
  const start = (name: string, n: number) =>
    LocalMariaDb.start({
      dir: join(dir, name),
      host: `${values.prefix}.${n}`,
      serverId: n,
      admin: secrets.admin,
    });
  const primary = await start('primary', 1);
  const standby = await start('standby', 2);
  let agent: Server | undefined;
  let s3: S3rver | undefined;
  const targets: BackupTarget[] = [];
  try {
    await bootstrapShard(primary.endpoint, standby.endpoint, secrets);
    const batches = Math.ceil((mib * 2 ** 20) / (ROW_BYTES * ROWS_PER_INSERT));
    const rows = batches * ROWS_PER_INSERT;
    await withAdmin(primary.endpoint, secrets.admin, async (c) => {
      await c.query(
        'CREATE TABLE mq.bulk (id BIGINT AUTO_INCREMENT PRIMARY KEY, body VARBINARY(1000) NOT NULL)',
      );
      const tuples = Array.from({ length: ROWS_PER_INSERT }, () => `(RANDOM_BYTES(${ROW_BYTES}))`).join(',');
      for (let b = 0; b < batches; b++) await c.query(`INSERT INTO mq.bulk (body) VALUES ${tuples}`);
    });
    // Semi-sync: the standby received every row; wait until it applied them too.
    const count = (db: LocalMariaDb) =>
      withAdmin(db.endpoint, secrets.admin, async (c) =>
        Number((await queryRows(c, 'SELECT COUNT(*) AS n FROM mq.bulk'))[0]!.n),
      );
    while ((await count(standby)) < rows) await new Promise((r) => setTimeout(r, 200));
    console.log(`filled ${rows} rows of ${ROW_BYTES} bytes`);

    agent = agentServer({
      token: agentToken(secrets.admin.password),
      log: createLogger('bench-agent', 'warn'),
      source: {
        endpoint: standby.endpoint,
        admin: secrets.admin,
        dataDir: join(dir, 'standby', 'data'),
        workDir: join(dir, 'agent'),
      },
    });
    await new Promise<void>((resolve) => agent!.listen(0, standby.endpoint.host, resolve));
    s3 = new S3rver({
      address: `${values.prefix}.20`,
      port: 0,
      directory: join(dir, 's3'),
      silent: true,
      configureBuckets: [{ name: 'bench', configs: [] }],
    });
    const { port } = await s3.run();
    targets.push(
      new DirectoryTarget(join(dir, 'backups')),
      new S3Target({
        bucket: 'bench',
        endpoint: `http://${values.prefix}.20:${port}`,
        forcePathStyle: true,
        credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
      }),
    );
    const runs: Run[] = [];
    for (const [i, target] of targets.entries()) {
      let started = Date.now();
      const backup = await backupShard({
        target,
        cluster: 'bench',
        shard: 'shard-0',
        source: {
          name: 'standby',
          role: 'standby',
          agent: `${standby.endpoint.host}:${(agent.address() as AddressInfo).port}`,
          endpoint: standby.endpoint,
        },
        admin: secrets.admin,
        agentToken: agentToken(secrets.admin.password),
        keep: 1,
      });
      const backupMs = Date.now() - started;
      const restoredDir = join(dir, `restored-${i}`);
      started = Date.now();
      await restoreShard({ target, cluster: 'bench', shard: 'shard-0', dataDir: join(restoredDir, 'data') });
      const restoreMs = Date.now() - started;
      const restored = await start(`restored-${i}`, 10 + i);
      const rowsRestored = await count(restored);
      await restored.destroy();
      runs.push({
        target: target.description.split(' ')[0]!,
        backupMs,
        bytes: backup.manifest.bytes,
        restoreMs,
        rowsRestored,
      });
      console.log(JSON.stringify(runs.at(-1)));
      if (rowsRestored !== rows) throw new Error(`restored ${rowsRestored} rows of ${rows}`);
    }
    const results = {
      date: new Date().toISOString(),
      machine: describeMachine(),
      mib,
      rows,
      runs,
      loadAverage: [loadAtStart, loadNow()],
    };
    if (!values['no-write']) {
      await writeBenchmarkJson(RESULTS_JSON, results);
      await writeBenchmarkSection(SECTION, markdown(results));
    }
  } finally {
    for (const t of targets) t.close?.();
    agent?.close();
    await s3?.close();
    await standby.kill();
    await primary.kill();
    if (!values.keep) await rm(dir, { recursive: true, force: true });
  }
}

function markdown(r: {
  date: string;
  machine: string;
  mib: number;
  rows: number;
  runs: Run[];
  loadAverage: number[];
}): string {
  const s = (ms: number) => (ms / 1000).toFixed(1);
  const rate = (bytes: number, ms: number) => (bytes / 2 ** 20 / (ms / 1000)).toFixed(0);
  return [
    `\`npm run bench:backup -- --mib ${r.mib}\`, ${r.date.slice(0, 10)}, ${r.machine}. A shard holding`,
    `${r.rows} messages of 1 kB (random, so incompressible) is backed up from its standby through the`,
    "standby's agent, as the operator does it, to a directory and to a local S3-compatible server",
    '(s3rver, multipart upload); each backup is then restored into an empty data directory (fetch,',
    '`mbstream -x`, `mariadb-backup --prepare`) and started, and holds every row. Real mariadbd',
    `processes, no Kubernetes; ${describeLoad(r.loadAverage[0]!, r.loadAverage[1]!)}.`,
    '',
    '| target | backup (s) | backup size (MiB) | backup MiB/s | restore (s) |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...r.runs.map(
      (x) =>
        `| ${x.target} | ${s(x.backupMs)} | ${(x.bytes / 2 ** 20).toFixed(0)} | ${rate(x.bytes, x.backupMs)} | ${s(x.restoreMs)} |`,
    ),
    '',
    "The backup is InnoDB's data files as mariadb-backup streams them (the messages, their indexes",
    'and the system tablespace), so its size follows the data on disk, not the binlogs. Restore time is',
    'mostly the extract and the prepare; a restore from S3 also downloads the stream. s3rver runs in',
    "the benchmark's own Node process (it hashes and writes every part), so the S3 row measures that",
    'server as much as the upload; a real object store was not measured.',
  ].join('\n');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
