import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { type Gtid, parseGtidList } from '../shard/gtid.js';
import {
  type ArchivedBinlogEntry,
  gtidCovers,
  gtidText,
  listArchivedBinlogs,
  positionOf,
} from './binlog-archive.js';
import type { BackupManifest } from './catalog.js';
import type { BackupTarget } from './target.js';

/**
 * Point-in-time restore: a full backup taken before the point, then the archived binlogs after it
 * replayed up to the point (`mariadb-binlog --stop-datetime`) into a private mariadbd started on
 * the restored data directory. Binlog event times have second resolution: the point is rounded
 * down to its second, and a transaction is replayed when it began before that second.
 */

/**
 * The newest backup taken from a standby that finished at or before `point`, or why there is none.
 * A backup taken from a primary (its standby did not replicate then) does not record its exact
 * position (see `replayToPointInTime`), so an older one from a standby is used instead. Pure.
 */
export function backupForPointInTime(
  backups: readonly { prefix: string; manifest: BackupManifest }[],
  point: Date,
): { prefix: string; manifest: BackupManifest } | string {
  const byFinish = [...backups].sort((a, b) => a.manifest.finishedAt.localeCompare(b.manifest.finishedAt));
  const before = byFinish.filter((b) => new Date(b.manifest.finishedAt) <= point);
  const chosen = before.filter((b) => b.manifest.role === 'standby').at(-1);
  if (chosen) return chosen;
  if (before.length)
    return `no backup taken from a standby finished before ${point.toISOString()} (${before.length} taken from a primary, whose exact position a copy does not record)`;
  return byFinish[0]
    ? `no backup finished before ${point.toISOString()}: the oldest kept one finished at ${byFinish[0].manifest.finishedAt}`
    : 'there is no finished backup';
}

/**
 * An RFC 3339 time with a zone (`2026-01-05T08:12:03Z`, `...+01:00`), or why `text` is not one.
 * `what` names the field or flag in the message. Pure.
 */
export function parsePointInTime(text: string, what: string): Date | string {
  const at = new Date(text);
  if (
    !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i.test(text) ||
    Number.isNaN(at.getTime())
  )
    return `${what} "${text}" is not an RFC 3339 time with a zone, e.g. 2026-01-05T08:12:03Z`;
  return at;
}

/** One archived binlog to replay, from after `startPosition` (exclusive, one GTID per domain). */
export interface ReplayStep {
  key: string;
  startPosition: string;
}

/**
 * The archived binlogs that take a server at `from` (its GTID position) to `point`, in order, or
 * why the archive cannot. Each step is a file whose start the position so far covers and that holds
 * something newer; among several (after a failover both servers' files hold the same transactions)
 * the one reaching furthest. The chain ends at the first file whose last event is at or after the
 * point; when it runs out before, the archive does not reach the point yet. Pure.
 */
export function replayPlan(
  archived: readonly ArchivedBinlogEntry[],
  from: readonly Gtid[],
  point: Date,
): ReplayStep[] | string {
  const steps: ReplayStep[] = [];
  let position = positionOf(from);
  let reached: string | undefined;
  for (;;) {
    const next = archived
      .filter(
        (a) =>
          gtidCovers(position, parseGtidList(a.binlog.gtidStart)) &&
          !gtidCovers(position, parseGtidList(a.binlog.gtidEnd)),
      )
      .sort((a, b) => a.key.localeCompare(b.key))
      .reduce<ArchivedBinlogEntry | undefined>(
        (best, a) =>
          !best || !gtidCovers(parseGtidList(best.binlog.gtidEnd), parseGtidList(a.binlog.gtidEnd))
            ? a
            : best,
        undefined,
      );
    if (!next) break;
    steps.push({ key: next.key, startPosition: gtidText(position) });
    position = positionOf(parseGtidList(next.binlog.gtidEnd));
    reached = next.binlog.lastEventTime;
    if (new Date(reached) >= point) return steps;
  }
  const newest = archived
    .map((a) => a.binlog.lastEventTime)
    .sort()
    .at(-1);
  return `the archived binlogs reach ${reached ?? newest ?? 'nothing'} from the backup's position ${gtidText(position) || '(empty)'}, not ${point.toISOString()}: wait for the next binlog archive run (spec.backup.binlogArchiveIntervalSeconds) or choose an earlier time`;
}

/** `2026-01-05T08:12:03.900Z` -> `2026-01-05 08:12:03` (UTC, mariadb-binlog's format). Pure. */
export function stopDatetime(point: Date): string {
  return point
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, '');
}

function exitOf(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    child.once('error', () => resolve(127));
    child.once('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

function stderrTail(child: ChildProcess): () => string {
  let text = '';
  child.stderr?.on('data', (c: Buffer) => (text = (text + c.toString()).slice(-2000)));
  return () => text.trim().split('\n').slice(-3).join(' | ');
}

/** A mariadbd on the restored data directory, reachable only through its socket. */
export class PrivateServer {
  private constructor(
    private readonly child: ChildProcess,
    readonly socket: string,
    private readonly errorLog: string,
  ) {}

  /**
   * `binlog`: write a binlog as the instance will (`mysql-bin` in the data directory, its
   * server_id), for statements that must be in the new server's own binlog; else none.
   */
  static async start(
    dataDir: string,
    workDir: string,
    binlog?: { serverId: number },
  ): Promise<PrivateServer> {
    const socket = join(workDir, 'pitr.sock');
    const errorLog = join(workDir, 'pitr.err');
    await rm(errorLog, { force: true });
    const asRoot = process.getuid?.() === 0 ? ['--user=root'] : [];
    // No networking, no replication start; grant tables off, so the restore needs no password
    // (nothing but this process can reach the socket in its private work directory).
    const child = spawn(
      'mariadbd',
      [
        '--no-defaults',
        `--datadir=${dataDir}`,
        ...asRoot,
        '--skip-networking',
        ...(binlog
          ? [
              '--log-bin=mysql-bin',
              `--server-id=${binlog.serverId}`,
              '--binlog-format=ROW',
              '--gtid-strict-mode=ON',
            ]
          : ['--skip-log-bin']),
        '--skip-slave-start',
        '--skip-grant-tables',
        `--socket=${socket}`,
        `--pid-file=${join(workDir, 'pitr.pid')}`,
        `--log-error=${errorLog}`,
        '--max-allowed-packet=1G',
        '--innodb-buffer-pool-size=256M',
      ],
      { stdio: 'ignore' },
    );
    const server = new PrivateServer(child, socket, errorLog);
    const exited = exitOf(child);
    for (let i = 0; i < 600; i++) {
      if (
        await server.sql('SELECT 1').then(
          () => true,
          () => false,
        )
      )
        return server;
      const gone = await Promise.race([exited, new Promise<undefined>((r) => setTimeout(r, 100))]);
      if (gone !== undefined)
        throw new Error(`mariadbd on the restored data did not start: ${await server.errors()}`);
    }
    child.kill('SIGKILL');
    throw new Error(`mariadbd on the restored data did not answer within 60 s: ${await server.errors()}`);
  }

  async errors(): Promise<string> {
    const log = await readFile(this.errorLog, 'utf8').catch(() => '');
    return (
      log
        .split('\n')
        .filter((l) => /ERROR/.test(l))
        .slice(-3)
        .join(' | ') || 'no error logged'
    );
  }

  /** Runs `statement` with the mariadb client; resolves to its output (tab-separated, no headers). */
  sql(statement: string): Promise<string> {
    const child = spawn('mariadb', this.clientArgs(['-N', '-B', '-e', statement]), {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    const tail = stderrTail(child);
    return exitOf(child).then((code) => {
      if (code !== 0) throw new Error(`mariadb -e failed (exit ${code}): ${tail()}`);
      return out.trim();
    });
  }

  /** Runs `script` (statements ending in `;`) in one session fed on stdin, so no value shows in `ps`. */
  script(script: string): Promise<void> {
    const child = spawn('mariadb', this.clientArgs([]), { stdio: ['pipe', 'ignore', 'pipe'] });
    const tail = stderrTail(child);
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(script);
    return exitOf(child).then((code) => {
      if (code !== 0) throw new Error(`mariadb failed (exit ${code}): ${tail()}`);
    });
  }

  clientArgs(extra: string[]): string[] {
    return ['--no-defaults', `--socket=${this.socket}`, '--user=root', '--max-allowed-packet=1G', ...extra];
  }

  async stop(): Promise<void> {
    const exited = exitOf(this.child);
    this.child.kill('SIGTERM');
    await exited;
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }
}

export interface ReplayOptions {
  target: BackupTarget;
  cluster: string;
  shard: string;
  manifest: BackupManifest;
  point: Date;
  /** The restored (prepared) data directory. */
  dataDir: string;
  workDir: string;
}

export interface ReplayResult {
  /** The restored backup's position the replay started after. */
  from: string;
  binlogs: string[];
}

/**
 * Replays the archived binlogs after the restored backup up to `point` into the data directory:
 * starts a private mariadbd on it, reads the backup's exact position, pipes each planned binlog
 * through `mariadb-binlog --start-position=GTID --stop-datetime` into it, and stops it.
 */
export async function replayToPointInTime(options: ReplayOptions): Promise<ReplayResult> {
  const { manifest, point } = options;
  // A standby records what it applied in mysql.gtid_slave_pos in the same InnoDB transaction, so
  // the prepared copy's value is its exact position; a primary's own writes are not recorded there.
  if (manifest.role !== 'standby')
    throw new Error(
      `backup ${manifest.startedAt} was taken from the primary ${manifest.instance}, whose exact position a copy does not record; point-in-time restore needs a backup taken from a standby (the default while it replicates)`,
    );
  await mkdir(options.workDir, { recursive: true, mode: 0o700 });
  const archived = await listArchivedBinlogs(options.target, options.cluster, options.shard);
  const server = await PrivateServer.start(options.dataDir, options.workDir);
  try {
    const from = parseGtidList(await server.sql('SELECT @@gtid_slave_pos'));
    const plan = replayPlan(archived, from, point);
    if (typeof plan === 'string') throw new Error(plan);
    await replay(server, plan, point, options);
    await server.stop();
    return { from: gtidText(from), binlogs: plan.map((s) => s.key) };
  } catch (err) {
    server.kill();
    throw err;
  }
}

/**
 * Every planned file through one client session: the server started without grant tables (so no
 * password is needed), and the session loads them first (FLUSH PRIVILEGES keeps its own rights),
 * so account statements in the binlog apply like any other. A later session could not log in.
 */
async function replay(
  server: PrivateServer,
  plan: ReplayStep[],
  point: Date,
  options: ReplayOptions,
): Promise<void> {
  const apply = spawn('mariadb', server.clientArgs([]), { stdio: ['pipe', 'ignore', 'pipe'] });
  const applyTail = stderrTail(apply);
  const applied = exitOf(apply);
  const failed = async (what: string) => {
    apply.kill('SIGKILL');
    const code = await applied;
    const reason = applyTail();
    return new Error(
      reason ? `replaying ${what} failed (exit ${code}): ${reason}` : `replaying ${what} failed`,
    );
  };
  apply.stdin!.on('error', () => undefined);
  apply.stdin!.write('FLUSH PRIVILEGES;\n');
  const file = join(options.workDir, 'replay.binlog');
  for (const step of plan) {
    await pipeline(await options.target.get(step.key), createWriteStream(file));
    const decode = spawn(
      'mariadb-binlog',
      [
        ...(step.startPosition ? [`--start-position=${step.startPosition}`] : []),
        `--stop-datetime=${stopDatetime(point)}`,
        file,
      ],
      // --stop-datetime is read in the local time zone.
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TZ: 'UTC' } },
    );
    const decodeTail = stderrTail(decode);
    const decoded = exitOf(decode);
    try {
      await pipeline(decode.stdout!, apply.stdin!, { end: false });
    } catch {
      decode.kill('SIGKILL');
      throw await failed(step.key);
    }
    const code = await decoded;
    if (code !== 0) {
      apply.kill('SIGKILL');
      throw new Error(`mariadb-binlog ${step.key} failed (exit ${code}): ${decodeTail()}`);
    }
    await rm(file, { force: true });
  }
  apply.stdin!.end();
  if ((await applied) !== 0) throw await failed(plan.map((s) => s.key).join(', '));
}
