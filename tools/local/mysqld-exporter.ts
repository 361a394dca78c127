import { type ChildProcess, spawn } from 'node:child_process';
import type { Credentials, Endpoint } from '../../src/shard/connection.js';
import { waitFor } from './wait.js';

/**
 * Debian's mysqld_exporter (package `prometheus-mysqld-exporter`, the binary the mysqlmq image
 * runs as its MariaDB sidecar) on this machine, watching one local `mariadbd`: for tests and
 * `npm run check:promql`.
 */
export class LocalMysqldExporter {
  private constructor(
    private readonly child: ChildProcess,
    /** `http://host:port`; /metrics is below it. */
    readonly url: string,
  ) {}

  static async start(opts: {
    target: Endpoint;
    user: Credentials;
    listen: string;
  }): Promise<LocalMysqldExporter> {
    const { target, user, listen } = opts;
    const child = spawn(
      'prometheus-mysqld-exporter',
      [`--web.listen-address=${listen}`, '--collect.binlog_size'],
      {
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          DATA_SOURCE_NAME: `${user.user}:${user.password}@tcp(${target.host}:${target.port})/`,
        },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let log = '';
    child.stderr?.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const exporter = new LocalMysqldExporter(child, `http://${listen}`);
    try {
      await waitFor(
        `mysqld_exporter on ${listen}`,
        async () => {
          if (child.exitCode !== null) throw new Error(`mysqld_exporter exited: ${log}`);
          return (await fetch(`${exporter.url}/`)).ok;
        },
        10_000,
        100,
      );
    } catch (err) {
      child.kill('SIGKILL');
      await exited;
      throw err;
    }
    return exporter;
  }

  /** The samples of one scrape, by series (`name{labels}` as the exporter writes it). */
  async scrape(): Promise<Map<string, number>> {
    const text = await (await fetch(`${this.url}/metrics`)).text();
    return parseSamples(text);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill('SIGTERM');
    await exited;
  }
}

/** Prometheus text format to `series -> value` (comments skipped). Pure. */
export function parseSamples(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const cut = line.lastIndexOf(' ');
    samples.set(line.slice(0, cut), Number(line.slice(cut + 1)));
  }
  return samples;
}
