/**
 * The informer against a real kube-apiserver: add/update/delete, watch timeouts, and an
 * apiserver restart.
 */
import { CoreV1Api, type V1ConfigMap } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/common/logger.js';
import { applyObject } from '../../../src/k8s/apply.js';
import { Informer, type InformerEvent } from '../../../src/k8s/informer.js';
import { KubeRest, type RestRequest } from '../../../src/k8s/rest.js';
import { resourcePath } from '../../../src/k8s/resources.js';
import { startKube, type Kube } from '../../support/kube.js';

const NS = 'informer-test';
const SELECTOR = 'app=mq';
const quiet = createLogger('test', 'error');
quiet.silent = true; // the restart test produces connection-refused warnings on purpose

/** A KubeRest that counts LISTs and WATCHes, to tell a resumed watch from a relist. */
class CountingRest extends KubeRest {
  lists = 0;
  watches = 0;
  override request<T>(req: RestRequest): Promise<T> {
    if (!req.method || req.method === 'GET') this.lists++;
    return super.request<T>(req);
  }
  override stream(req: RestRequest) {
    this.watches++;
    return super.stream(req);
  }
}

async function until(what: string, cond: () => boolean, ms = 20_000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

let kube: Kube;
let core: CoreV1Api;
let rest: KubeRest;
const path = resourcePath({ apiVersion: 'v1', kind: 'ConfigMap', namespace: NS });

beforeAll(async () => {
  kube = await startKube();
  core = kube.kc.makeApiClient(CoreV1Api);
  rest = new KubeRest(kube.kc);
  await applyObject(rest, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
});

afterAll(async () => {
  await kube?.stop();
});

const cm = (
  name: string,
  data: Record<string, string> = {},
  labels: Record<string, string> = { app: 'mq' },
): V1ConfigMap => ({
  metadata: { name, labels },
  data,
});

describe('Informer (real apiserver)', () => {
  it('sees add, update and delete of label-selected ConfigMaps', async () => {
    await core.createNamespacedConfigMap({ namespace: NS, body: cm('pre', { v: '0' }) });
    const counting = new CountingRest(kube.kc);
    const inf = new Informer<V1ConfigMap>({ rest: counting, path, labelSelector: SELECTOR, logger: quiet });
    const events: InformerEvent<V1ConfigMap>[] = [];
    inf.onChange((e) => events.push(e));
    const seen = () => events.map((e) => `${e.type}:${e.obj.metadata?.name}`);
    try {
      inf.start();
      await inf.synced;
      expect(seen()).toEqual(['add:pre']);
      expect(inf.get('pre', NS)).toMatchObject({ kind: 'ConfigMap', apiVersion: 'v1', data: { v: '0' } });

      await core.createNamespacedConfigMap({ namespace: NS, body: cm('a', { v: '1' }) });
      await core.createNamespacedConfigMap({ namespace: NS, body: cm('unlabelled', {}, { app: 'other' }) });
      await until('add:a', () => seen().includes('add:a'));

      await core.replaceNamespacedConfigMap({ name: 'a', namespace: NS, body: cm('a', { v: '2' }) });
      await until('update:a', () => seen().includes('update:a'));
      const upd = events.find((e) => e.type === 'update')!;
      expect(upd.old?.data).toEqual({ v: '1' });
      expect(upd.obj.data).toEqual({ v: '2' });
      expect(inf.get(`${NS}/a`)?.data).toEqual({ v: '2' });

      await core.deleteNamespacedConfigMap({ name: 'a', namespace: NS });
      await until('delete:a', () => seen().includes('delete:a'));
      expect(inf.get(`${NS}/a`)).toBeUndefined();

      // An object that stops matching the selector is a delete for this informer.
      await core.replaceNamespacedConfigMap({
        name: 'pre',
        namespace: NS,
        body: cm('pre', { v: '0' }, { app: 'gone' }),
      });
      await until('delete:pre', () => seen().includes('delete:pre'));

      expect(seen()).toEqual(['add:pre', 'add:a', 'update:a', 'delete:a', 'delete:pre']);
      expect(inf.list()).toEqual([]);
      expect(counting.lists).toBe(1);
    } finally {
      await inf.stop();
    }
  });

  it('resumes after server-side watch timeouts without relisting or losing events', async () => {
    const counting = new CountingRest(kube.kc);
    const inf = new Informer<V1ConfigMap>({
      rest: counting,
      path,
      labelSelector: SELECTOR,
      logger: quiet,
      minWatchTimeoutSeconds: 1, // the apiserver ends every watch after 1-2 s
    });
    try {
      inf.start();
      await inf.synced;
      for (let i = 0; i < 4; i++) {
        await core.createNamespacedConfigMap({ namespace: NS, body: cm(`t${i}`, { i: String(i) }) });
        await new Promise((r) => setTimeout(r, 1_500));
      }
      await until('all four', () => [0, 1, 2, 3].every((i) => inf.get(`t${i}`, NS)));
      expect(counting.watches).toBeGreaterThanOrEqual(3);
      // Resumed from the last resourceVersion every time; a 410 would have forced a relist.
      expect(counting.lists).toBe(1);
    } finally {
      await inf.stop();
    }
  });

  it('survives a kube-apiserver restart and catches up with changes made right after it', async () => {
    await core.createNamespacedConfigMap({ namespace: NS, body: cm('keep', { v: '1' }) });
    await core.createNamespacedConfigMap({ namespace: NS, body: cm('doomed') });
    const counting = new CountingRest(kube.kc);
    const inf = new Informer<V1ConfigMap>({
      rest: counting,
      path,
      labelSelector: SELECTOR,
      logger: quiet,
      backoff: { initialMs: 200, maxMs: 2_000 },
    });
    try {
      inf.start();
      await inf.synced;
      await until('watching', () => inf.isWatching());
      expect(inf.get('keep', NS)).toBeDefined();

      // Writes the informer does not see (unlabelled) move the store's revision past its
      // resourceVersion. A restarted apiserver's watch cache starts at the current revision,
      // so resuming from the informer's resourceVersion gets an in-stream 410 Gone → relist.
      // (A running 1.20 apiserver rarely says 410: its watch cache grows to keep 75 s of events.)
      for (let i = 0; i < 3; i++)
        await core.createNamespacedConfigMap({ namespace: NS, body: cm(`noise${i}`, {}, {}) });

      await kube.stopApiServer();
      await until('watch dropped', () => !inf.isWatching(), 10_000);
      await new Promise((r) => setTimeout(r, 2_000)); // a few failed reconnects (ECONNREFUSED)
      expect(inf.get('keep', NS)?.data).toEqual({ v: '1' }); // the cache keeps serving
      expect(inf.hasSynced()).toBe(true);

      await kube.startApiServer();
      // Changes made as soon as the apiserver is back, possibly before the informer reconnects.
      await core.replaceNamespacedConfigMap({ name: 'keep', namespace: NS, body: cm('keep', { v: '2' }) });
      await core.deleteNamespacedConfigMap({ name: 'doomed', namespace: NS });
      await core.createNamespacedConfigMap({ namespace: NS, body: cm('born') });
      await until(
        'caught up',
        () => inf.get('keep', NS)?.data?.v === '2' && !inf.get('doomed', NS) && !!inf.get('born', NS),
        30_000,
      );
      await until('watching again', () => inf.isWatching(), 30_000);

      // And live events flow on the new watch.
      await core.createNamespacedConfigMap({ namespace: NS, body: cm('after') });
      await until('after', () => !!inf.get('after', NS));
      expect(counting.lists).toBe(2); // the initial LIST + one relist after the 410
    } finally {
      await inf.stop();
    }
  });
});
