import { Counter, Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/common/logger.js';
import {
  type HealthServer,
  runChecks,
  startHealthServer,
} from '../../../src/operator/runtime/health-server.js';

const quiet = createLogger('test', 'error');

describe('runChecks', () => {
  it('passes on true/undefined, fails on false, throw or timeout', async () => {
    const r = await runChecks(
      {
        a: () => true,
        b: () => undefined,
        c: async () => false,
        d: () => {
          throw new Error('informer not synced');
        },
        e: () => new Promise<boolean>(() => {}),
      },
      50,
    );
    expect(r.ok).toBe(false);
    expect(r.lines).toEqual([
      '[+]a ok',
      '[+]b ok',
      '[-]c failed: returned false',
      '[-]d failed: informer not synced',
      '[-]e failed: timed out after 50 ms',
    ]);
    expect((await runChecks({})).ok).toBe(true);
  });
});

describe('health server', () => {
  let srv: HealthServer | undefined;
  afterEach(async () => srv?.close());

  it('serves /healthz, /readyz and /metrics', async () => {
    const registry = new Registry();
    new Counter({ name: 'mysqlmq_test_total', help: 'x', registers: [registry] }).inc(3);
    let ready = false;
    srv = await startHealthServer({
      port: 0,
      host: '127.0.0.1',
      registry,
      logger: quiet,
      healthChecks: { ping: () => true },
      readyChecks: { informers: () => ready, leader: () => true },
    });
    const base = `http://127.0.0.1:${srv.port}`;

    let r = await fetch(`${base}/healthz`);
    expect(r.status).toBe(200);
    expect(await r.text()).toBe('ok\n');

    r = await fetch(`${base}/readyz`);
    expect(r.status).toBe(503);
    expect(await r.text()).toContain('[-]informers failed: returned false');

    ready = true;
    r = await fetch(`${base}/readyz?verbose`);
    expect(r.status).toBe(200);
    expect(await r.text()).toBe('[+]informers ok\n[+]leader ok\nok\n');

    r = await fetch(`${base}/metrics`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toContain('text/plain');
    expect(await r.text()).toContain('mysqlmq_test_total 3');

    expect((await fetch(`${base}/nope`)).status).toBe(404);
    expect((await fetch(`${base}/healthz`, { method: 'POST' })).status).toBe(405);
  });
});
