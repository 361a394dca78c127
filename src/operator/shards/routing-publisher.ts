import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { RoutingDocument } from '../../api/routing.js';
import { errorMessage } from '../../common/errors.js';

export interface PushResult {
  url: string;
  ok: boolean;
  error?: string;
}

/**
 * How the operator checks brokers that serve HTTPS: it dials pod IPs, which no certificate names,
 * so it verifies the Service name instead, against the cluster's CA (undefined: Node's public CAs).
 */
export interface BrokerTlsTrust {
  ca?: string;
  serverName: string;
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
  tls?: BrokerTlsTrust,
): Promise<PushResult[]> {
  const body = Buffer.from(JSON.stringify(doc));
  return Promise.all(
    brokerUrls.map(async (url): Promise<PushResult> => {
      try {
        const res = await put(`${url}/v1/admin/routing`, body, adminToken, timeoutMs, tls);
        if (res.status < 200 || res.status >= 300)
          return { url, ok: false, error: `HTTP ${res.status}: ${res.text.slice(0, 200)}` };
        return { url, ok: true };
      } catch (err) {
        return { url, ok: false, error: errorMessage(err) };
      }
    }),
  );
}

/** One PUT over node:http(s) (fetch takes no CA or server name). Never logs the token. */
function put(
  url: string,
  body: Buffer,
  token: string,
  timeoutMs: number,
  tls: BrokerTlsTrust | undefined,
): Promise<{ status: number; text: string }> {
  const secure = url.startsWith('https:');
  const options = {
    method: 'PUT',
    headers: {
      'content-type': 'application/json',
      'content-length': body.length,
      authorization: `Bearer ${token}`,
    },
    signal: AbortSignal.timeout(timeoutMs),
    ...(secure && tls ? { servername: tls.serverName, ...(tls.ca ? { ca: tls.ca } : {}) } : {}),
  };
  return new Promise((resolve, reject) => {
    const req = (secure ? httpsRequest : httpRequest)(url, options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}
