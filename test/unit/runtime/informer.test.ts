/**
 * The informer against a scripted in-process API server: the failure modes a real API
 * server produces only rarely (in-stream 410, a hung watch, 5xx) are driven explicitly here.
 * test/integration/runtime/informer.test.ts covers the real kube-apiserver.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/common/logger.js';
import { Informer, type InformerEvent } from '../../../src/k8s/informer.js';
import { KubeRest } from '../../../src/k8s/rest.js';

interface CM {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace: string; resourceVersion: string };
  data?: Record<string, string>;
}

const cm = (name: string, rv: string, data: Record<string, string> = {}): CM => ({
  metadata: { name, namespace: 'ns', resourceVersion: rv },
  data,
});

type WatchScript = (res: http.ServerResponse, query: URLSearchParams) => void;

class FakeApi {
  items: CM[] = [];
  listRv = '10';
  lists: URLSearchParams[] = [];
  watches: URLSearchParams[] = [];
  openWatches = 0;
  maxOpenWatches = 0;
  scripts: WatchScript[] = [];
  server = http.createServer((req, res) => this.handle(req, res));
  private sockets = new Set<import('node:net').Socket>();

  async start(): Promise<KubeRest> {
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    const kc = new KubeConfig();
    kc.loadFromClusterAndUser(
      {
        name: 'fake',
        server: `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`,
        skipTLSVerify: true,
      },
      { name: 'u', token: 't' },
    );
    // Counts watch streams open on the *client* side (the server notices closes late).
    const counters = this.counters;
    return new (class extends KubeRest {
      override async stream(req: Parameters<KubeRest['stream']>[0]) {
        const st = await super.stream(req);
        counters.open++;
        counters.max = Math.max(counters.max, counters.open);
        st.response.once('close', () => counters.open--);
        return st;
      }
    })(kc);
  }

  readonly counters = { open: 0, max: 0 };

  async stop() {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server.close(r));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse) {
    const url = new URL(req.url!, 'http://x');
    expect(req.headers.authorization).toBe('Bearer t');
    if (url.searchParams.get('watch')) {
      this.watches.push(url.searchParams);
      this.openWatches++;
      this.maxOpenWatches = Math.max(this.maxOpenWatches, this.openWatches);
      res.on('close', () => this.openWatches--);
      const script = this.scripts.shift() ?? ((r) => r.writeHead(200).flushHeaders()); // default: idle open watch
      script(res, url.searchParams);
      return;
    }
    this.lists.push(url.searchParams);
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'ConfigMapList',
        metadata: { resourceVersion: this.listRv },
        items: this.items,
      }),
    );
  }
}

const quiet = createLogger('test', 'error');
quiet.silent = true; // the handler-error test logs on purpose

const line = (type: string, object: unknown) => `${JSON.stringify({ type, object })}\n`;

async function until(cond: () => boolean, ms = 5_000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('Informer (scripted API server)', () => {
  let api: FakeApi;
  let inf: Informer<CM> | undefined;
  afterEach(async () => {
    await inf?.stop();
    await api?.stop();
  });

  async function setup(opts: Partial<ConstructorParameters<typeof Informer>[0]> = {}) {
    api = new FakeApi();
    const rest = await api.start();
    const events: string[] = [];
    inf = new Informer<CM>({
      rest,
      path: '/api/v1/namespaces/ns/configmaps',
      labelSelector: 'app=x',
      logger: quiet,
      backoff: { initialMs: 20, maxMs: 100 },
      ...opts,
    });
    inf.onChange((ev: InformerEvent<CM>) => events.push(`${ev.type}:${ev.obj.metadata.name}`));
    return events;
  }

  it('lists, then watches from the list resourceVersion with bookmarks and a 5-10 min timeout', async () => {
    const events = await setup();
    api.items = [cm('a', '5'), cm('b', '6')];
    let watchRes!: http.ServerResponse;
    api.scripts.push((res) => {
      res.writeHead(200);
      watchRes = res;
    });
    inf!.start();
    await inf!.synced;
    expect(inf!.hasSynced()).toBe(true);
    expect(events).toEqual(['add:a', 'add:b']);
    expect(inf!.get('a', 'ns')).toMatchObject({ apiVersion: 'v1', kind: 'ConfigMap' }); // filled in from the list
    expect(api.lists[0]!.get('labelSelector')).toBe('app=x');
    await until(() => api.watches.length === 1);
    const q = api.watches[0]!;
    expect(q.get('resourceVersion')).toBe('10');
    expect(q.get('allowWatchBookmarks')).toBe('true');
    expect(q.get('labelSelector')).toBe('app=x');
    const ts = Number(q.get('timeoutSeconds'));
    expect(ts).toBeGreaterThanOrEqual(300);
    expect(ts).toBeLessThanOrEqual(600);

    watchRes.write(line('ADDED', cm('c', '11')));
    watchRes.write(line('MODIFIED', cm('a', '12', { k: 'v' })).slice(0, 20)); // split across chunks
    watchRes.write(line('MODIFIED', cm('a', '12', { k: 'v' })).slice(20));
    watchRes.write(line('DELETED', cm('b', '13')));
    watchRes.write(
      line('BOOKMARK', { kind: 'ConfigMap', apiVersion: 'v1', metadata: { resourceVersion: '20' } }),
    );
    await until(() => inf!.lastResourceVersion() === '20');
    expect(events).toEqual(['add:a', 'add:b', 'add:c', 'update:a', 'delete:b']);
    expect(inf!.get('ns/a')?.data).toEqual({ k: 'v' });
    expect(inf!.keys().sort()).toEqual(['ns/a', 'ns/c']);

    // The server ends the watch (timeoutSeconds): the next one resumes from the bookmark, no relist.
    watchRes.end();
    await until(() => api.watches.length === 2);
    expect(api.watches[1]!.get('resourceVersion')).toBe('20');
    expect(api.lists).toHaveLength(1);
  });

  it('an in-stream 410 Gone relists and emits only the differences', async () => {
    const events = await setup();
    api.items = [cm('a', '5'), cm('b', '6')];
    api.scripts.push((res) => {
      res.writeHead(200);
      res.write(
        line('ERROR', { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Expired', code: 410 }),
      );
    });
    api.scripts.push((res) => res.writeHead(200).flushHeaders());
    inf!.start();
    await inf!.synced;
    api.items = [cm('a', '5'), cm('b', '7'), cm('c', '8')]; // b changed, c added while we were away
    api.listRv = '30';
    await until(() => api.watches.length === 2);
    expect(api.lists).toHaveLength(2);
    expect(api.watches[1]!.get('resourceVersion')).toBe('30');
    expect(events).toEqual(['add:a', 'add:b', 'update:b', 'add:c']);
  });

  it('an HTTP 410 on the watch request relists too; a 500 retries from the same resourceVersion', async () => {
    await setup();
    api.scripts.push((res) => res.writeHead(500).end('{"kind":"Status","code":500}'));
    api.scripts.push((res) => res.writeHead(410).end('{"kind":"Status","code":410,"reason":"Expired"}'));
    api.scripts.push((res) => res.writeHead(200).flushHeaders());
    inf!.start();
    await until(() => api.watches.length === 3);
    expect(api.watches[1]!.get('resourceVersion')).toBe('10'); // after the 500: same RV, no relist
    expect(api.lists).toHaveLength(2); // after the 410: relisted
  });

  it('a watch that never sends headers is abandoned after the inactivity timeout', async () => {
    await setup({ inactivityTimeoutMs: 300 });
    api.scripts.push(() => {}); // accept, never answer
    api.scripts.push((res) => res.writeHead(200).flushHeaders());
    inf!.start();
    await inf!.synced;
    const t0 = Date.now();
    await until(() => api.watches.length === 2, 3_000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(api.maxOpenWatches).toBe(1);
  });

  it('restarts and stop/start races never open a second watch', async () => {
    await setup();
    inf!.start();
    await until(() => api.watches.length === 1);
    for (let i = 0; i < 5; i++) {
      inf!.restartWatch();
      inf!.start(); // no-op while running
      await new Promise((r) => setTimeout(r, 5));
    }
    void inf!.stop();
    inf!.start();
    void inf!.stop();
    inf!.start();
    await until(() => api.openWatches === 1);
    await new Promise((r) => setTimeout(r, 200));
    expect(api.openWatches).toBe(1);
    expect(api.counters.open).toBe(1);
    expect(api.counters.max).toBe(1);
    await inf!.stop();
    expect(api.counters.open).toBe(0);
    await until(() => api.openWatches === 0);
  });

  it('emits resync events periodically and survives a throwing handler', async () => {
    const events = await setup({ resyncPeriodMs: 100 });
    api.items = [cm('a', '5')];
    inf!.onChange(() => {
      throw new Error('handler bug');
    });
    inf!.start();
    await until(() => events.filter((e) => e === 'resync:a').length >= 2);
    expect(inf!.hasSynced()).toBe(true);
  });
});
