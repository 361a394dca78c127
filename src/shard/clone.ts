import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Credentials, Endpoint } from './connection.js';
import { parseGtidList } from './gtid.js';

/**
 * Physical copies of an instance with mariadb-backup: a hot backup of a running server streamed as
 * xbstream (`streamBackup`, run next to the source's data directory), and a data directory seeded
 * from such a stream (`seedDataDir`, run before the target's mariadbd starts). Used to rebuild a
 * standby from its primary instead of replaying the primary's whole binlog, which also works once
 * binlogs are purged.
 */

/** A backup in flight: its xbstream bytes, and its end (the GTID position the copy is consistent at). */
export interface BackupRun {
  stream: Readable;
  done: Promise<{ gtid: string }>;
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
  await writeFile(file, `[mariadb-backup]\nuser=${quote(admin.user)}\npassword=${quote(admin.password)}\n`, {
    mode: 0o600,
  });
  return file;
}

function exitOf(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    child.once('error', () => resolve(127));
    child.once('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

/** The "GTID of the last change" mariadb-backup reports once it has locked the binlog position. */
export function gtidFromBackupLog(log: string): string | undefined {
  const matches = [...log.matchAll(/GTID of the last change '([^']*)'/g)];
  return matches.length ? matches[matches.length - 1]![1] : undefined;
}

/** Starts a hot backup of a running instance, as an xbstream on `stream`. */
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
      '--stream=xbstream',
      `--host=${source.endpoint.host}`,
      `--port=${source.endpoint.port}`,
      `--datadir=${source.dataDir}`,
      `--target-dir=${target}`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const tail = new OutputTail();
  child.stderr!.on('data', (c: Buffer) => tail.add(c));
  const done = exitOf(child).then(async (code) => {
    await rm(defaults, { force: true });
    if (code !== 0) throw new Error(`mariadb-backup --backup failed (exit ${code}): ${tail.lines()}`);
    return { gtid: gtidFromBackupLog(tail.all) ?? '' };
  });
  // Awaited by the caller once the stream has ended; a failure before that is not unhandled.
  done.catch(() => undefined);
  return { stream: child.stdout!, done, abort: () => child.kill('SIGTERM') };
}

/** The file mariadb-backup writes with the binlog file, position and GTID the copy is consistent at. */
export const BINLOG_INFO_FILE = 'xtrabackup_binlog_info';
/** Written last into a seeded data directory: which seed request it satisfies. */
export const SEED_MARKER_FILE = '.mysqlmq-seed.json';

export interface SeedMarker {
  id: string;
  source: string;
  gtid: string;
  finishedAt: string;
}

/** `mysql-bin.000003\t1234\t0-1-17` -> `0-1-17` (empty when the source had no binlog position). */
export function gtidFromBinlogInfo(text: string): string {
  const fields = text.trim().split(/\s+/);
  return fields.length >= 3 ? fields.slice(2).join('') : '';
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

/** Removes everything inside `dir` (a volume's mount point stays). */
async function emptyDirectory(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const entry of await readdir(dir)) await rm(join(dir, entry), { recursive: true, force: true });
}

export interface SeedOptions {
  /** The request this seed satisfies (kept in the marker). */
  id: string;
  /** Where the stream came from, for the marker and messages. */
  source: string;
  /** A scratch directory outside the data directory. */
  workDir: string;
  /** InnoDB memory for --prepare. */
  prepareMemory?: string;
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
  await emptyDirectory(dataDir);
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
  const info = await readFile(join(dataDir, BINLOG_INFO_FILE), 'utf8').catch(() => undefined);
  if (info === undefined)
    throw new Error(`the stream from ${options.source} is not a complete backup (no ${BINLOG_INFO_FILE})`);
  await run('mariadb-backup', [
    '--prepare',
    `--target-dir=${dataDir}`,
    `--use-memory=${options.prepareMemory ?? '256M'}`,
  ]);
  const gtid = gtidFromBinlogInfo(info);
  await mkdir(options.workDir, { recursive: true });
  await run(
    'mariadbd',
    [
      '--no-defaults',
      '--bootstrap',
      `--datadir=${dataDir}`,
      `--user=${userInfo().username}`,
      '--skip-networking',
      `--socket=${join(options.workDir, 'seed.sock')}`,
      `--log-error=${join(options.workDir, 'seed-bootstrap.err')}`,
    ],
    gtidSlavePosSql(gtid),
  );
  const marker: SeedMarker = {
    id: options.id,
    source: options.source,
    gtid,
    finishedAt: new Date().toISOString(),
  };
  await writeFile(join(dataDir, SEED_MARKER_FILE), JSON.stringify(marker) + '\n');
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
