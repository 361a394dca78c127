import { type ChildProcess, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { RoutingDocument } from '../../src/api/routing.js';
import type { Credentials } from '../../src/shard/connection.js';
import { productMain } from './paths.js';

const BROKER_MAIN = productMain('broker');

export interface BrokerProcessOptions {
  host: string;
  port: number;
  routingFile: string;
  db: Credentials;
  adminToken?: string;
  /** The users file; without it the broker takes clients without a token (`--no-auth`), as local tools do. */
  usersFile?: string;
  /** Extra arguments, e.g. for profiling. */
  nodeArgs?: string[];
  logLevel?: string;
  /** The broker's main module: the compiled one beside this file unless given (tests run from src/). */
  main?: string;
  /** More environment, e.g. libfaketime's LD_PRELOAD and FAKETIME for a broker whose clock is off. */
  env?: Record<string, string>;
  /**
   * Serve HTTPS (`--tls-cert`, `--tls-key`); `ca` verifies it while waiting for readiness;
   * `clientCaFile` asks clients for certificates (`--client-ca`, needs `usersFile`).
   */
  tls?: { certFile: string; keyFile: string; ca: string; serverName?: string; clientCaFile?: string };
  /** Reach MariaDB over TLS (`--mysql-ca`, `--mysql-server-name`). */
  mysqlTls?: { caFile: string; serverName: string };
}

/** A broker as its own `node` process (as in a Pod), for the demo and benchmarks. */
export class BrokerProcess {
  private constructor(
    readonly url: string,
    private readonly child: ChildProcess,
    private readonly exited: Promise<void>,
  ) {}

  get pid(): number | undefined {
    return this.child.pid;
  }

  static async writeRouting(file: string, routing: RoutingDocument): Promise<void> {
    await writeFile(file, JSON.stringify(routing, null, 2));
  }

  static async start(options: BrokerProcessOptions): Promise<BrokerProcess> {
    const child = spawn(
      process.execPath,
      [
        ...(options.nodeArgs ?? []),
        options.main ?? BROKER_MAIN,
        '--routing',
        options.routingFile,
        '--host',
        options.host,
        '--port',
        String(options.port),
        ...(options.usersFile ? ['--users', options.usersFile] : ['--no-auth']),
        ...(options.tls ? ['--tls-cert', options.tls.certFile, '--tls-key', options.tls.keyFile] : []),
        ...(options.tls?.clientCaFile ? ['--client-ca', options.tls.clientCaFile] : []),
        ...(options.mysqlTls
          ? ['--mysql-ca', options.mysqlTls.caFile, '--mysql-server-name', options.mysqlTls.serverName]
          : []),
      ],
      {
        stdio: ['ignore', 'inherit', 'inherit'],
        env: {
          ...process.env,
          MQ_DB_USER: options.db.user,
          MQ_DB_PASSWORD: options.db.password,
          MQ_ADMIN_TOKEN: options.adminToken ?? '',
          MQ_LOG_LEVEL: options.logLevel ?? 'warn',
          ...options.env,
        },
      },
    );
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const scheme = options.tls ? 'https' : 'http';
    const broker = new BrokerProcess(`${scheme}://${options.host}:${options.port}`, child, exited);
    await broker.waitReady(options.tls);
    return broker;
  }

  private async waitReady(tls: BrokerProcessOptions['tls'], timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.child.exitCode !== null)
        throw new Error(`broker at ${this.url} exited with ${this.child.exitCode}`);
      const status = await readyz(this.url, tls);
      if (status >= 200 && status < 300) return;
      if (Date.now() > deadline) throw new Error(`broker at ${this.url} not ready after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** SIGTERM: the broker drains its batches and exits. */
  async stop(): Promise<void> {
    if (this.child.exitCode === null) this.child.kill('SIGTERM');
    await this.exited;
  }
}

/** The status of GET /readyz, or 0 when nothing answers yet (node:https: fetch takes no CA). */
function readyz(url: string, tls: BrokerProcessOptions['tls']): Promise<number> {
  return new Promise((resolve) => {
    const options = tls ? { ca: tls.ca, servername: tls.serverName, timeout: 2000 } : { timeout: 2000 };
    const req = (tls ? httpsRequest : httpRequest)(`${url}/readyz`, options, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.once('timeout', () => req.destroy());
    req.once('error', () => resolve(0));
    req.end();
  });
}
