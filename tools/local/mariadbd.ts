import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { cp, mkdir, rename, rm, writeFile, access } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';
import { adminAccountStatements } from '../../src/shard/accounts.js';
import {
  type Credentials,
  type Endpoint,
  SET_SESSION_SQL_MODE,
  connectionOptions,
} from '../../src/shard/connection.js';
import { type ServerTlsFiles, renderMyCnf } from '../../src/shard/mycnf.js';

const run = promisify(execFile);

/**
 * A `mariadbd` process on this machine with its own data directory and loopback address, for tests,
 * the demo and benchmarks. It never touches the machine's default instance.
 */
export interface LocalMariaDbOptions {
  /** Directory that holds this instance's data, config and logs. */
  dir: string;
  host: string;
  port?: number;
  /** Required unless `myCnf` is given (then the text's own `server_id` applies). */
  serverId?: number;
  admin: Credentials;
  /**
   * The host `admin` (root) may connect from (default '%'). The official image's MARIADB_ROOT_HOST:
   * 'localhost' leaves it to the unix socket, and TCP clients are refused.
   */
  adminHost?: string;
  /** SQL run after the admin's at every start: the `init_file` of a Pod's my.cnf. */
  initSql?: string;
  overrides?: Record<string, string>;
  /** Serve TLS with these files and refuse plain TCP (as under `spec.mysql.tls`); not with `myCnf`. */
  tls?: ServerTlsFiles;
  /**
   * A my.cnf text to use instead of rendering one (e.g. a shard's ConfigMap). Its settings apply
   * as written, except the ones that must point at this machine: bind_address, port, datadir,
   * socket, pid_file, log_error and init_file are replaced with this instance's own. `overrides`
   * are appended after it.
   */
  myCnf?: string;
  /**
   * The data directory (default `<dir>/data`). Initialised from a template when it holds no
   * `mysql` schema yet, so an existing empty directory (a fresh volume) is fine.
   */
  dataDir?: string;
}

/** How a mariadbd process ended: its exit code, or the signal that ended it. */
export interface MariaDbExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Keys of a given my.cnf that `LocalMariaDb` replaces with its own local values. */
const LOCAL_KEYS = new Set([
  'bind_address',
  'port',
  'datadir',
  'socket',
  'pid_file',
  'log_error',
  'init_file',
]);

export class LocalMariaDb {
  private child?: ChildProcess;
  private exited?: Promise<MariaDbExit>;

  private constructor(readonly options: LocalMariaDbOptions) {}

  get endpoint(): Endpoint {
    return { host: this.options.host, port: this.options.port ?? 3306 };
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  /** The server's process id while it runs. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Initialises the data directory on first use, then starts the server and waits for it. */
  static async start(options: LocalMariaDbOptions): Promise<LocalMariaDb> {
    const db = new LocalMariaDb(options);
    await db.prepare();
    await db.launch();
    return db;
  }

  /**
   * Like `start`, but returns as soon as the process is spawned, without waiting for it to accept
   * connections (a kubelet probes readiness itself). Watch the process with `waitExit`.
   */
  static async spawn(options: LocalMariaDbOptions): Promise<LocalMariaDb> {
    const db = new LocalMariaDb(options);
    await db.prepare();
    db.spawnChild();
    return db;
  }

  private get dataDir() {
    return this.options.dataDir ?? join(this.options.dir, 'data');
  }

  private async prepare(): Promise<void> {
    const { dir, host, serverId, admin, adminHost, initSql, overrides, myCnf } = this.options;
    await mkdir(dir, { recursive: true });
    if (!(await exists(join(this.dataDir, 'mysql')))) {
      await cp(await templateDataDir(), this.dataDir, { recursive: true });
    }
    // The init file runs on every start; sql_log_bin=0 keeps it out of the binlog so primary and
    // standby never carry local GTIDs of their own. SET PASSWORD: root@localhost of the data
    // directory template exists already, without this password (the image sets it). Root is the
    // image's, with everything; any other admin gets the operator's admin rights, so that tests
    // run its statements with exactly those (root-only steps use `asRoot`).
    if (admin.user !== 'root' && (adminHost ?? '%') !== '%')
      throw new Error(`adminHost is the image's root's: ${admin.user} connects from '%'`);
    const account = `'${admin.user}'@'${adminHost ?? '%'}'`;
    const password = `'${admin.password.replace(/'/g, "''")}'`;
    await writeFile(
      join(dir, 'init.sql'),
      [
        'SET sql_log_bin = 0;',
        `CREATE USER IF NOT EXISTS ${account} IDENTIFIED BY ${password};`,
        `SET PASSWORD FOR ${account} = PASSWORD(${password});`,
        ...(admin.user === 'root'
          ? [`GRANT ALL PRIVILEGES ON *.* TO ${account} WITH GRANT OPTION;`]
          : adminAccountStatements(admin)),
        'SET sql_log_bin = 1;',
        ...(initSql ? [initSql] : []),
      ].join('\n') + '\n',
      { mode: 0o600 },
    );
    if (myCnf !== undefined) {
      await writeFile(join(dir, 'my.cnf'), this.localisedCnf(myCnf, overrides ?? {}), { mode: 0o600 });
      return;
    }
    if (serverId === undefined) throw new Error('LocalMariaDb needs serverId or myCnf');
    const cnf = renderMyCnf({
      serverId,
      bindAddress: host,
      port: this.endpoint.port,
      dataDir: this.dataDir,
      socket: join(dir, 'mysqld.sock'),
      pidFile: join(dir, 'mysqld.pid'),
      logError: join(dir, 'error.log'),
      ...(this.options.tls ? { tls: this.options.tls } : {}),
      overrides: { innodb_buffer_pool_size: '128M', innodb_log_file_size: '64M', ...overrides },
    });
    await writeFile(join(dir, 'my.cnf'), cnf + `init_file = ${join(dir, 'init.sql')}\n`);
  }

  /** The given my.cnf without the keys that must be local, then this instance's own values. */
  private localisedCnf(text: string, overrides: Record<string, string>): string {
    const { dir } = this.options;
    const kept = text.split('\n').filter((line) => {
      const m = /^\s*(?:loose[-_])?([A-Za-z0-9_-]+)\s*(?:=|$)/.exec(line);
      return !m || !LOCAL_KEYS.has(m[1]!.toLowerCase().replace(/-/g, '_'));
    });
    const local: [string, string | number][] = [
      ['bind_address', this.options.host],
      ['port', this.endpoint.port],
      ['datadir', this.dataDir],
      ['socket', join(dir, 'mysqld.sock')],
      ['pid_file', join(dir, 'mysqld.pid')],
      ['log_error', join(dir, 'error.log')],
      ['init_file', join(dir, 'init.sql')],
      ...Object.entries(overrides),
    ];
    // Later settings win, so the local ones go last, in a group every mariadbd reads.
    return [...kept, '', '[mariadbd]', ...local.map(([k, v]) => `${k} = ${v}`)].join('\n') + '\n';
  }

  private spawnChild(): void {
    const child = spawn('mariadbd', [`--defaults-file=${join(this.options.dir, 'my.cnf')}`, '--user=root'], {
      stdio: 'ignore',
    });
    this.child = child;
    liveChildren.add(child);
    this.exited = new Promise((resolve) => {
      const ended = (code: number | null, signal: NodeJS.Signals | null) => {
        liveChildren.delete(child);
        if (this.child === child) this.child = undefined;
        resolve({ code, signal });
      };
      child.once('exit', ended);
      // Spawning failed (e.g. no mariadbd on PATH): no 'exit' follows.
      child.once('error', () => ended(127, null));
    });
  }

  private async launch(): Promise<void> {
    this.spawnChild();
    await this.waitReady();
  }

  /** Resolves when the current process has exited (at once if none runs). */
  async waitExit(): Promise<MariaDbExit> {
    return (await this.exited) ?? { code: null, signal: null };
  }

  /** Sends a signal to the server process, if it runs. */
  signal(signal: NodeJS.Signals): void {
    this.child?.kill(signal);
  }

  private async waitReady(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!this.child)
        throw new Error(`mariadbd at ${this.options.dir} exited during start-up; see error.log`);
      try {
        const conn = await mysql.createConnection({
          ...connectionOptions(this.endpoint, this.options.admin),
          connectTimeout: 1000,
        });
        await conn.end();
        return;
      } catch (err) {
        // Refused (an admin on localhost only): the server is up and checking logins.
        if ((err as { errno?: number }).errno === 1045) return;
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /**
   * Runs `fn` on a connection as the instance's root@localhost, through its unix socket
   * (authenticated as this process's uid, root, by unix_socket), and closes it: for what a test
   * does beyond the operator's admin rights (global settings, other users' grants, other databases).
   */
  async asRoot<T>(fn: (conn: mysql.Connection) => Promise<T>): Promise<T> {
    const conn = await mysql.createConnection({
      socketPath: join(this.options.dir, 'mysqld.sock'),
      user: 'root',
      connectTimeout: 3000,
    });
    try {
      await conn.query(SET_SESSION_SQL_MODE);
      return await fn(conn);
    } finally {
      conn.destroy();
    }
  }

  /** Clean shutdown (SIGTERM), as Kubernetes stops a container. */
  async stop(): Promise<void> {
    this.child?.kill('SIGTERM');
    await this.exited;
  }

  /** kill -9: the crash a failover must survive. */
  async kill(): Promise<void> {
    this.child?.kill('SIGKILL');
    await this.exited;
  }

  /** Starts the same instance again with its data. */
  async restart(): Promise<void> {
    if (this.child) await this.stop();
    await this.launch();
  }

  async destroy(): Promise<void> {
    await this.kill();
    await rm(this.options.dir, { recursive: true, force: true });
  }
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Servers still running when this process exits are killed, so no test run leaves strays behind. */
const liveChildren = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

let template: Promise<string> | undefined;

/** `mariadb-install-db` takes seconds; run it once per machine and copy the result. */
function templateDataDir(): Promise<string> {
  template ??= (async () => {
    const { stdout } = await run('mariadbd', ['--version']);
    const version = /Ver (\S+)/.exec(stdout)?.[1] ?? 'unknown';
    const dir = join(tmpdir(), `mq-mariadb-template-${version}`);
    if (await exists(dir)) return dir;
    const staging = `${dir}.${process.pid}`;
    await rm(staging, { recursive: true, force: true });
    await run('mariadb-install-db', [
      '--no-defaults',
      `--datadir=${staging}`,
      '--user=root',
      '--skip-test-db',
    ]);
    await rename(staging, dir).catch(async (err) => {
      // Another process won the race; use its copy.
      if (!(await exists(dir))) throw err;
      await rm(staging, { recursive: true, force: true });
    });
    return dir;
  })();
  return template;
}
