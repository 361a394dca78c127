import type { RoutingDocument } from '../../api/routing.js';
import { errorMessage } from '../../common/errors.js';

export interface PushResult {
  url: string;
  ok: boolean;
  error?: string;
}

/**
 * Pushes a routing document to every broker at once (PUT /v1/admin/routing), the fast path that
 * makes a failover take effect within a second; the routing ConfigMap is the slow path a restarted
 * broker reads. A broker that misses a push gets the document again on the next tick.
 */
export async function pushRouting(
  brokerUrls: string[],
  doc: RoutingDocument,
  adminToken: string,
  timeoutMs = 1000,
): Promise<PushResult[]> {
  return Promise.all(
    brokerUrls.map(async (url): Promise<PushResult> => {
      try {
        const res = await fetch(`${url}/v1/admin/routing`, {
          method: 'PUT',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` },
          body: JSON.stringify(doc),
          signal: AbortSignal.timeout(timeoutMs),
        });
        if (!res.ok)
          return { url, ok: false, error: `HTTP ${res.status}: ${(await res.text()).slice(0, 200)}` };
        return { url, ok: true };
      } catch (err) {
        return { url, ok: false, error: errorMessage(err) };
      }
    }),
  );
}
