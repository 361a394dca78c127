/**
 * The operator's probe and metrics endpoint: `/healthz` (liveness), `/readyz` (readiness)
 * and `/metrics` (Prometheus text format from the Registry passed in).
 *
 * Why checks are functions passed in: liveness and readiness mean different things
 * (liveness = "restart me if false", e.g. the event loop is alive; readiness = "send me
 * traffic / count me as available", e.g. informers have synced), and this module should not
 * know about informers or electors. Output follows kube-apiserver's /healthz style:
 * `ok` or `[+]name ok` / `[-]name failed: reason` lines with `?verbose`.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { createLogger, type Logger } from '../../common/logger.js';

/** A check passes when it returns/resolves true (or undefined); false or a throw fails it. */
export type HealthCheck = () => boolean | void | Promise<boolean | void>;

export interface HealthServerOptions {
  /** 0 = any free port (tests). */
  port: number;
  host?: string;
  registry?: Registry;
  healthChecks?: Record<string, HealthCheck>;
  readyChecks?: Record<string, HealthCheck>;
  /** A check that has not answered after this long fails. Default 5 s. */
  checkTimeoutMs?: number;
  logger?: Logger;
}

export interface HealthServer {
  readonly port: number;
  readonly server: http.Server;
  close(): Promise<void>;
}

export interface CheckReport {
  ok: boolean;
  lines: string[];
}

/** Runs every check concurrently; exported for tests. */
export async function runChecks(
  checks: Record<string, HealthCheck>,
  timeoutMs = 5_000,
): Promise<CheckReport> {
  const results = await Promise.all(
    Object.entries(checks).map(async ([name, check]) => {
      let timer: NodeJS.Timeout | undefined;
      try {
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
        });
        const v = await Promise.race([Promise.resolve().then(check), timeout]);
        return v === false ? { name, ok: false, why: 'returned false' } : { name, ok: true, why: '' };
      } catch (err) {
        // Only the message: checks may wrap API errors, and probes are unauthenticated.
        return { name, ok: false, why: err instanceof Error ? err.message : String(err) };
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  return {
    ok: results.every((r) => r.ok),
    lines: results.map((r) => (r.ok ? `[+]${r.name} ok` : `[-]${r.name} failed: ${r.why}`)),
  };
}

export async function startHealthServer(opts: HealthServerOptions): Promise<HealthServer> {
  const log = opts.logger ?? createLogger('health-server');
  const timeoutMs = opts.checkTimeoutMs ?? 5_000;

  const probe = async (checks: Record<string, HealthCheck>, url: URL, res: http.ServerResponse) => {
    const report = await runChecks(checks, timeoutMs);
    const verbose = url.searchParams.has('verbose') || !report.ok;
    const body = verbose ? `${report.lines.join('\n')}\n${report.ok ? 'ok' : 'failed'}\n` : 'ok\n';
    res.writeHead(report.ok ? 200 : 503, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end(body);
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET' }).end();
      return;
    }
    const handle = async () => {
      switch (url.pathname) {
        case '/healthz':
        case '/livez':
          return probe(opts.healthChecks ?? {}, url, res);
        case '/readyz':
          return probe(opts.readyChecks ?? {}, url, res);
        case '/metrics':
          if (!opts.registry) break;
          res.writeHead(200, { 'Content-Type': opts.registry.contentType });
          res.end(await opts.registry.metrics());
          return;
      }
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
    };
    handle().catch((err: unknown) => {
      log.error('health endpoint failed', {
        path: url.pathname,
        error: err instanceof Error ? err.message : String(err),
      });
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  // Probes must never hold the process open or pile up: short timeouts, no keep-alive reuse.
  server.keepAliveTimeout = 1_000;
  server.requestTimeout = 10_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '0.0.0.0', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  log.info('health server listening', { port });
  return {
    port,
    server,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
