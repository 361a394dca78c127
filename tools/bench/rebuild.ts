#!/usr/bin/env node
/**
 * `npm run bench:rebuild`: time to rebuild a standby that lost its data (issue 10), for a
 * primary holding `--gb` GiB of messages, both ways in the same run on real mariadbd processes:
 *   replay  the old way: an empty standby replicates the primary's whole binlog from the start;
 *   clone   a physical copy streamed by the primary's agent (mariadb-backup), seeded into the
 *           empty data directory, then replication from the copy's GTID.
 * "Time to healthy" runs from the empty data directory to the standby holding everything the
 * primary has (same GTID position). Writes the section "Rebuild by physical clone (issue 10)" of
 * docs/benchmarks.md and docs/bench-results/rebuild.json.
 *
 * Flags: --gb N (1), --prefix (127.0.83: loopback addresses), --no-write, --keep (keep the data).
 */
import type { Server } from 'node:http';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pullAndSeed } from '../../src/agent/seed.js';
import { agentServer } from '../../src/agent/server.js';
import { agentToken } from '../../src/agent/token.js';
import { createLogger } from '../../src/common/logger.js';
import { generateSecrets } from '../local/cluster.js';
import { LocalMariaDb } from '../local/mariadbd.js';
import { attachStandby, bootstrapPrimary } from '../../src/shard/bootstrap.js';
import { queryRows, withAdmin } from '../../src/shard/connection.js';
import {
  describeLoad,
  describeMachine,
  loadNow,
  writeBenchmarkJson,
  writeBenchmarkSection,
} from './machine.js';

const SECTION = 'Rebuild by physical clone (issue 10)';
const RESULTS_JSON = 'docs/bench-results/rebuild.json';
const ROW_BYTES = 1000;
const ROWS_PER_INSERT = 1000;

async function directoryBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    total += entry.isDirectory() ? await directoryBytes(path) : (await stat(path)).size;
  }
  return total;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      gb: { type: 'string', default: '1' },
      prefix: { type: 'string', default: '127.0.83' },
      'no-write': { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
    },
  });
  const gib = Number(values.gb);
  const loadAtStart = loadNow();
  const secrets = generateSecrets();
  const log = createLogger('bench-rebuild', 'warn');
  const dir = await mkdtemp(join(tmpdir(), 'mq-bench-rebuild-'));
  const primary = await LocalMariaDb.start({
    dir: join(dir, 'primary'),
    host: `${values.prefix}.1`,
    serverId: 1,
    admin: secrets.admin,
  });
  const standbyOptions = { host: `${values.prefix}.2`, serverId: 2, admin: secrets.admin };
  let standby: LocalMariaDb | undefined;
  let agent: Server | undefined;
  try {
    await bootstrapPrimary(primary.endpoint, secrets);
    await withAdmin(primary.endpoint, secrets.admin, async (c) => {
      await c.query(
        'CREATE TABLE mq.bulk (id BIGINT AUTO_INCREMENT PRIMARY KEY, body VARBINARY(1000) NOT NULL)',
      );
      const batches = Math.ceil((gib * 2 ** 30) / (ROW_BYTES * ROWS_PER_INSERT));
      const values = Array.from({ length: ROWS_PER_INSERT }, () => `(RANDOM_BYTES(${ROW_BYTES}))`).join(',');
      const started = Date.now();
      for (let b = 0; b < batches; b++) await c.query(`INSERT INTO mq.bulk (body) VALUES ${values}`);
      console.log(
        `filled ${batches * ROWS_PER_INSERT} rows in ${Math.round((Date.now() - started) / 1000)} s`,
      );
    });
    const dataBytes = await directoryBytes(join(dir, 'primary', 'data'));
    const target = await withAdmin(primary.endpoint, secrets.admin, async (c) =>
      String((await queryRows(c, 'SELECT @@gtid_binlog_pos AS pos'))[0]!.pos),
    );
    const caughtUp = async (db: LocalMariaDb) => {
      for (;;) {
        const pos = await withAdmin(db.endpoint, secrets.admin, async (c) =>
          String((await queryRows(c, 'SELECT @@gtid_current_pos AS pos'))[0]!.pos),
        );
        if (pos === target) return;
        await new Promise((r) => setTimeout(r, 200));
      }
    };

    // The old way: an empty standby replays the whole binlog.
    const replayDir = join(dir, 'standby-replay');
    let started = Date.now();
    standby = await LocalMariaDb.start({ ...standbyOptions, dir: replayDir });
    await attachStandby(standby.endpoint, primary.endpoint, secrets);
    await caughtUp(standby);
    const replayMs = Date.now() - started;
    console.log(`replay: ${replayMs} ms`);
    await standby.destroy();

    // By clone: the primary's agent streams a copy into the empty data directory.
    agent = agentServer({
      token: agentToken(secrets.admin.password),
      log,
      source: {
        endpoint: primary.endpoint,
        admin: secrets.admin,
        dataDir: join(dir, 'primary', 'data'),
        workDir: join(dir, 'agent'),
      },
    });
    await new Promise<void>((resolve) => agent!.listen(9080, primary.endpoint.host, resolve));
    const cloneDir = join(dir, 'standby-clone');
    started = Date.now();
    const marker = await pullAndSeed({
      source: `${primary.endpoint.host}:9080`,
      id: 'bench',
      token: agentToken(secrets.admin.password),
      dataDir: join(cloneDir, 'data'),
      workDir: join(dir, 'seed'),
    });
    const seededMs = Date.now() - started;
    standby = await LocalMariaDb.start({ ...standbyOptions, dir: cloneDir });
    await attachStandby(standby.endpoint, primary.endpoint, secrets);
    await caughtUp(standby);
    const cloneMs = Date.now() - started;
    console.log(`clone: ${cloneMs} ms (copy and prepare ${seededMs} ms, at ${marker.gtid})`);

    const results = {
      date: new Date().toISOString(),
      machine: describeMachine(),
      gib,
      dataBytes,
      replayMs,
      cloneMs,
      cloneCopyAndPrepareMs: seededMs,
      loadAverage: [loadAtStart, loadNow()],
    };
    if (!values['no-write']) {
      await writeBenchmarkJson(RESULTS_JSON, results);
      await writeBenchmarkSection(SECTION, markdown(results));
    }
  } finally {
    agent?.close();
    await standby?.kill();
    await primary.kill();
    if (!values.keep) await rm(dir, { recursive: true, force: true });
  }
}

function markdown(r: {
  date: string;
  machine: string;
  gib: number;
  dataBytes: number;
  replayMs: number;
  cloneMs: number;
  cloneCopyAndPrepareMs: number;
  loadAverage: number[];
}): string {
  const s = (ms: number) => (ms / 1000).toFixed(1);
  return [
    `\`npm run bench:rebuild -- --gb ${r.gib}\`, ${r.date.slice(0, 10)}, ${r.machine}. A primary holding`,
    `${(r.dataBytes / 2 ** 30).toFixed(2)} GiB on disk, data files and binlogs (${r.gib} GiB of 1 kB messages); a standby whose data directory is`,
    'empty is brought to the same GTID position both ways, one after the other in the same run, on',
    `real mariadbd processes (no Kubernetes); ${describeLoad(r.loadAverage[0]!, r.loadAverage[1]!)}.`,
    'Other work on the machine moves both times alike; the ratio is what matters.',
    '',
    '| rebuild | time to healthy (s) |',
    '| --- | ---: |',
    `| binlog replay from the start (before issue 10) | ${s(r.replayMs)} |`,
    `| physical clone (mariadb-backup stream, prepare, then replication) | ${s(r.cloneMs)} |`,
    `| of which copy and prepare | ${s(r.cloneCopyAndPrepareMs)} |`,
    '',
    "Replay applies every row event again through the SQL thread (and writes the standby's own",
    'binlog); the clone copies pages. Replay is also impossible once the primary purged its first',
    'binlogs, which retention does.',
  ].join('\n');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
