import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type Credentials, type Endpoint, queryRows, withAdmin } from './connection.js';
import { parseGtidList } from './gtid.js';

/**
 * Physical copies of an instance with mariadb-backup: a hot backup of a running server streamed as
 * xbstream (`streamBackup`, run next to the source's data directory), and a data directory seeded
 * from such a stream (`seedDataDir`, run before the target's mariadbd starts). Used to rebuild a
 * standby from its primary instead of replaying the primary's whole binlog, which also works once
 * binlogs are purged.
 */

/** A backup in flight: its xbstream bytes, and its end. */
export interface BackupRun {
  stream: Readable;
  done: Promise<void>;
  /** Stops the backup (the client went away). */
  abort(): void;
}

export interface BackupSource {
  endpoint: Endpoint;
  admin: Credentials;
  /** The running server's data directory (mariadb-backup copies its files). */
  dataDir: string;
  /** A private scratch directory (credentials file, mariadb-backup's own target directory). */
  workDir: string;
}

/** mariadb-backup's last stderr lines, for an error message a user can act on. */
class OutputTail {
  private text = '';
  add(chunk: Buffer | string): void {
    this.text = (this.text + chunk.toString()).slice(-4000);
  }
  lines(n = 5): string {
    return this.text.trim().split('\n').slice(-n).join(' | ');
  }
  get all(): string {
    return this.text;
  }
}

/**
 * Credentials go to mariadb-backup in a defaults file readable by this user only, never on the
 * command line (`ps` shows arguments).
 */
async function credentialsFile(workDir: string, admin: Credentials): Promise<string> {
  await mkdir(workDir, { recursive: true, mode: 0o700 });
  const file = join(workDir, 'backup-credentials.cnf');
  const quote = (s: string) => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  let text = `[mariadb-backup]\nuser=${quote(admin.user)}\npassword=${quote(admin.password)}\n`;
  if (admin.tls) {
    // An instance that requires TLS refuses mariadb-backup's plain connection. The CA makes it
    // check the certificate's chain; not its name, which it would compare with the pod IP it dials.
    const caFile = join(workDir, 'backup-ca.crt');
    await writeFile(caFile, admin.tls.ca, { mode: 0o600 });
    text += `ssl\nssl-ca=${quote(caFile)}\n`;
  }
  await writeFile(file, text, { mode: 0o600 });
  return file;
}

function exitOf(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    child.once('error', () => resolve(127));
    child.once('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

/**
 * A whole stderr line of mariadb-backup reporting a statement the server refused. It logs
 * "Error: failed to execute query FLUSH NO_WRITE_TO_BINLOG ENGINE LOGS: Access denied; ..." and
 * still exits 0 with "completed OK!", though the copy skipped what that statement was for.
 */
const REFUSED_STATEMENT = /^.*(?:Access denied|command denied to user).*\n/m;

/**
 * Starts a hot backup of a running instance, as an xbstream on `stream`.
 *
 * Without backup locks (`--no-lock`): `BACKUP STAGE BLOCK_COMMIT` waits for every running commit,
 * and on a primary whose standby is gone (the usual reason for a copy) commits under durability
 * "required" wait for a standby acknowledgement forever, so the copy would never finish. The copy's
 * position is then InnoDB's own record of the last binlog position it committed (the redo log
 * carries it with each commit; `--prepare` writes it to `xtrabackup_binlog_pos_innodb`), turned
 * into a GTID by the source (`gtidAtBinlogPosition`). Statements on other engines and DDL are not
 * covered by that position: the queue's tables are InnoDB, and its DDL is idempotent
 * (`CREATE TABLE IF NOT EXISTS`, `ADD COLUMN IF NOT EXISTS`), so replaying a statement the copy
 * already holds is harmless. A statement the server refuses fails the backup (`REFUSED_STATEMENT`).
 */
export async function streamBackup(source: BackupSource): Promise<BackupRun> {
  const defaults = await credentialsFile(source.workDir, source.admin);
  const target = join(source.workDir, 'target');
  await rm(target, { recursive: true, force: true });
  await mkdir(target, { recursive: true });
  const child = spawn(
    'mariadb-backup',
    [
      `--defaults-extra-file=${defaults}`,
      '--backup',
      '--no-lock',
      // Its SHOW MASTER STATUS waits behind commits waiting for an acknowledgement, like the locks.
      '--binlog-info=OFF',
      '--stream=xbstream',
      `--host=${source.endpoint.host}`,
      `--port=${source.endpoint.port}`,
      `--datadir=${source.dataDir}`,
      `--target-dir=${target}`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const tail = new OutputTail();
  let refused: string | undefined;
  child.stderr!.on('data', (c: Buffer) => {
    tail.add(c);
    if (refused) return;
    refused = REFUSED_STATEMENT.exec(tail.all)?.[0].trim();
    // No use streaming the rest of a copy that is rejected at the end.
    if (refused) child.kill('SIGTERM');
  });
  const done = exitOf(child).then(async (code) => {
    await rm(defaults, { force: true });
    if (refused)
      throw new Error(
        `mariadb-backup --backup: the server refused it (a missing privilege, or the login): ${refused}`,
      );
    if (code !== 0) throw new Error(`mariadb-backup --backup failed (exit ${code}): ${tail.lines()}`);
  });
  // Awaited by the caller once the stream has ended; a failure before that is not unhandled.
  done.catch(() => undefined);
  return { stream: child.stdout!, done, abort: () => child.kill('SIGTERM') };
}

/** Written by `--prepare`: the binlog file and position of the last transaction InnoDB committed. */
export const INNODB_BINLOG_POS_FILE = 'xtrabackup_binlog_pos_innodb';
/** Written by `--backup`: proves the stream was a complete backup. */
export const CHECKPOINTS_FILE = 'xtrabackup_checkpoints';
/** Written last into a seeded data directory: which seed request it satisfies. */
export const SEED_MARKER_FILE = '.mysqlmq-seed.json';
/** Present while a seed runs: a data directory holding it is a partial copy, never to be started. */
export const SEED_INCOMPLETE_FILE = '.mysqlmq-seed-incomplete';

export interface SeedMarker {
  id: string;
  source: string;
  gtid: string;
  finishedAt: string;
}

export interface BinlogPosition {
  file: string;
  position: number;
}

/** `./mysql-bin.000003\t1234` -> {file: 'mysql-bin.000003', position: 1234}. */
export function parseInnodbBinlogPos(text: string): BinlogPosition | undefined {
  const m = /^(?:.*\/)?([^/\s]+)\s+(\d+)\s*$/.exec(text.trim());
  return m ? { file: m[1]!, position: Number(m[2]) } : undefined;
}

/** The GTID position of a binlog file and offset, on the server that wrote that binlog. */
export async function gtidAtBinlogPosition(
  endpoint: Endpoint,
  admin: Credentials,
  at: BinlogPosition,
): Promise<string> {
  const rows = await withAdmin(endpoint, admin, (conn) =>
    queryRows(conn, 'SELECT BINLOG_GTID_POS(?, ?) AS gtid', [at.file, at.position]),
  );
  const gtid = rows[0]?.gtid;
  if (gtid === null || gtid === undefined)
    throw new Error(`the source no longer has binlog ${at.file} (purged?): the copy's position is unknown`);
  return String(gtid);
}

/**
 * SQL that makes `gtid` the replication position of a server started on this data directory, run
 * with `mariadbd --bootstrap` (one statement per line, no server networking). The position lives in
 * the table mysql.gtid_slave_pos, which the server loads at start; a copy of a primary carries the
 * primary's own (stale) rows there, so they are replaced. Pure.
 */
export function gtidSlavePosSql(gtid: string): string {
  const rows = parseGtidList(gtid).map(
    (g, i) =>
      `INSERT INTO mysql.gtid_slave_pos (domain_id, sub_id, server_id, seq_no) VALUES (${g.domain}, ${i + 1}, ${g.server}, ${g.seq});`,
  );
  return ['SET sql_log_bin = 0;', 'DELETE FROM mysql.gtid_slave_pos;', ...rows].join('\n') + '\n';
}

async function run(command: string, args: string[], input?: string): Promise<void> {
  const child = spawn(command, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'ignore', 'pipe'] });
  const tail = new OutputTail();
  child.stderr!.on('data', (c: Buffer) => tail.add(c));
  if (input !== undefined) child.stdin!.end(input);
  const code = await exitOf(child);
  if (code !== 0) throw new Error(`${command} ${args[0] ?? ''} failed (exit ${code}): ${tail.lines()}`);
}

/**
 * Runs mariadbd once on a copy, without networking, to decide the transactions the copy holds
 * prepared but not committed (a copy taken under load has some; without the binlog that decides
 * them mariadbd refuses to start): they were not committed when the copy was taken, so they are
 * rolled back. `sql` runs in the same pass (e.g. the copy's replication position).
 */
export async function rollBackPreparedTransactions(
  dataDir: string,
  workDir: string,
  sql = '',
): Promise<void> {
  await mkdir(workDir, { recursive: true });
  const bootstrapLog = join(workDir, 'bootstrap.err');
  await rm(bootstrapLog, { force: true });
  await run(
    'mariadbd',
    [
      '--no-defaults',
      '--bootstrap',
      `--datadir=${dataDir}`,
      // mariadbd refuses to run as root unless told so; any other uid (999 in the pod) runs as itself.
      ...(process.getuid?.() === 0 ? ['--user=root'] : []),
      '--skip-networking',
      '--tc-heuristic-recover=ROLLBACK',
      `--socket=${join(workDir, 'bootstrap.sock')}`,
      `--log-error=${bootstrapLog}`,
    ],
    sql,
  ).catch(async (err: Error) => {
    const log = await readFile(bootstrapLog, 'utf8').catch(() => '');
    const errors = log.split('\n').filter((l) => /ERROR/.test(l));
    throw new Error(errors.slice(-3).join(' | ') || err.message);
  });
}

/** Removes everything inside `dir` (a volume's mount point stays). */
async function emptyDirectory(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const entry of await readdir(dir)) await rm(join(dir, entry), { recursive: true, force: true });
}

/** What `extractAndPrepare` needs: where the stream came from, scratch space, prepare memory. */
export interface PrepareOptions {
  /** Why the directory is being replaced (kept in the partial-copy file). */
  id: string;
  /** Where the stream came from, for messages. */
  source: string;
  /** InnoDB memory for --prepare. */
  prepareMemory?: string;
}

/**
 * Replaces the contents of `dataDir` with the xbstream in `stream` and applies its redo log
 * (`mbstream -x`, `mariadb-backup --prepare`): a data directory mariadbd can start on. The
 * partial-copy file stays until the caller removes it (`SEED_INCOMPLETE_FILE`), so a copy that
 * stopped half way is never started. Used by rebuilds (`seedDataDir`) and restores from a backup.
 */
export async function extractAndPrepare(
  stream: Readable,
  dataDir: string,
  options: PrepareOptions,
): Promise<void> {
  await emptyDirectory(dataDir);
  await writeFile(join(dataDir, SEED_INCOMPLETE_FILE), `${options.id} from ${options.source}\n`);
  const extract = spawn('mbstream', ['-x', '-C', dataDir], { stdio: ['pipe', 'ignore', 'pipe'] });
  const tail = new OutputTail();
  extract.stderr!.on('data', (c: Buffer) => tail.add(c));
  const extracted = exitOf(extract);
  try {
    await pipeline(stream, extract.stdin!);
  } catch (err) {
    extract.kill('SIGKILL');
    await extracted;
    throw new Error(`the backup stream from ${options.source} broke off: ${(err as Error).message}`);
  }
  const code = await extracted;
  if (code !== 0) throw new Error(`mbstream -x failed (exit ${code}): ${tail.lines()}`);
  if (!existsSync(join(dataDir, CHECKPOINTS_FILE)))
    throw new Error(`the stream from ${options.source} is not a complete backup (no ${CHECKPOINTS_FILE})`);
  await run('mariadb-backup', [
    '--prepare',
    `--target-dir=${dataDir}`,
    `--use-memory=${options.prepareMemory ?? '256M'}`,
  ]);
}

export interface SeedOptions extends PrepareOptions {
  /** Turns the copy's binlog position into a GTID on the source (`gtidAtBinlogPosition` there). */
  gtidAt(at: BinlogPosition): Promise<string>;
  /** A scratch directory outside the data directory. */
  workDir: string;
}

/**
 * Replaces the contents of `dataDir` with the copy in `stream` (xbstream from `streamBackup`):
 * extract, apply the redo log (`--prepare`), and set the replication position to the copy's GTID,
 * so the server that starts on it replicates from its source's next transaction. The marker is
 * written last: a seed that stopped half way is redone.
 */
export async function seedDataDir(
  stream: Readable,
  dataDir: string,
  options: SeedOptions,
): Promise<SeedMarker> {
  await extractAndPrepare(stream, dataDir, options);
  // No InnoDB commit with a binlog position yet (a shard without messages): replicate from the start.
  const at = parseInnodbBinlogPos(
    await readFile(join(dataDir, INNODB_BINLOG_POS_FILE), 'utf8').catch(() => ''),
  );
  const gtid = at ? await options.gtidAt(at) : '';
  await rollBackPreparedTransactions(dataDir, options.workDir, gtidSlavePosSql(gtid)).catch((err: Error) => {
    throw new Error(`setting the copy's replication position (${gtid}) failed: ${err.message}`);
  });
  const marker: SeedMarker = {
    id: options.id,
    source: options.source,
    gtid,
    finishedAt: new Date().toISOString(),
  };
  await writeFile(join(dataDir, SEED_MARKER_FILE), JSON.stringify(marker) + '\n');
  await rm(join(dataDir, SEED_INCOMPLETE_FILE));
  return marker;
}

/** The marker of the last seed of `dataDir`, if any. */
export async function readSeedMarker(dataDir: string): Promise<SeedMarker | undefined> {
  try {
    return JSON.parse(await readFile(join(dataDir, SEED_MARKER_FILE), 'utf8')) as SeedMarker;
  } catch {
    return undefined;
  }
}
