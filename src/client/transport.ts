import http from 'node:http';
import https from 'node:https';
import { parseJsonLines } from '../common/json-lines.js';
import { FRAMES_CONTENT_TYPE } from '../common/message-frames.js';

/** A request body already encoded (a publish: see Producer), sent as it is. */
export class EncodedBody {
  constructor(
    readonly bytes: Buffer,
    readonly contentType: string,
  ) {}
}

/** Errors the SDK raises: a broker's `{code, message}` answer, or every broker unreachable. */
export class MqClientError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'MqClientError';
  }
}

export interface TransportOptions {
  /** Broker base URLs, e.g. http://10.0.0.5:8080. */
  brokers: string[];
  token?: string;
  /** One request to one broker. */
  requestTimeoutMs?: number;
  /** All attempts of one call, across brokers. */
  timeoutMs?: number;
  /**
   * For https:// brokers: the CA certificate(s), PEM, that signed the brokers' certificate (a
   * cluster's `NAME-broker-tls` Secret, key `ca.crt`); default: Node's public CAs.
   */
  ca?: string | Buffer | (string | Buffer)[];
  /**
   * For https:// brokers: the name the certificate must carry when the URLs hold something else,
   * e.g. pod IPs (`NAME-broker.NAMESPACE.svc`); default: each URL's host.
   */
  serverName?: string;
  /**
   * For https:// brokers with client certificates on (mTLS): the user's certificate and private
   * key, PEM (keys `tls.crt` and `tls.key` of the user's Secret `NAME-user-<name>`). Used when no
   * `token` is given: a token decides alone.
   */
  cert?: string | Buffer;
  key?: string | Buffer;
}

/**
 * Node's codes for a certificate the client does not trust or that names another host: the
 * client's settings (or the broker's certificate) must change; trying again cannot help.
 */
const CERTIFICATE_ERRORS = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'INVALID_CA',
  'HOSTNAME_MISMATCH',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

function isCertificateError(err: unknown): err is Error & { code: string } {
  return CERTIFICATE_ERRORS.has((err as { code?: unknown } | undefined)?.code as string);
}

/**
 * HTTP(S) to a list of brokers, round-robin. A connection error, timeout or 5xx moves the call to
 * the next broker until `timeoutMs`; a 4xx is the caller's mistake and is thrown at once, and so
 * is a certificate that every broker tried showed and the client does not trust (status 0,
 * `certificate_refused`).
 */
export class Transport {
  private next = Math.floor(Math.random() * 1024);
  private readonly httpAgent = new http.Agent({ keepAlive: true });
  private readonly httpsAgent: https.Agent;
  private readonly requestTimeoutMs: number;
  private readonly timeoutMs: number;

  constructor(private readonly options: TransportOptions) {
    if (options.brokers.length === 0) throw new Error('at least one broker URL is required');
    if ((options.cert === undefined) !== (options.key === undefined)) {
      throw new Error('give both cert and key (a client certificate and its private key), or neither');
    }
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.httpsAgent = new https.Agent({
      keepAlive: true,
      ...(options.ca !== undefined ? { ca: options.ca } : {}),
      ...(options.serverName ? { servername: options.serverName } : {}),
      ...(options.cert !== undefined ? { cert: options.cert } : {}),
      ...(options.key !== undefined ? { key: options.key } : {}),
    });
  }

  /** The answer's JSON, or with `framed` the decoding of an answer the broker sent framed. */
  async call<T>(
    method: string,
    path: string,
    body?: unknown,
    requestTimeoutMs = this.requestTimeoutMs,
    timeoutMs = this.timeoutMs,
    framed?: FramedAnswer<T>,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    const brokers = this.options.brokers;
    const payload =
      body === undefined
        ? undefined
        : body instanceof EncodedBody
          ? body
          : new EncodedBody(Buffer.from(JSON.stringify(body)), 'application/json');
    let lastError: unknown;
    let certificatesRefused = 0;
    for (let attempt = 0; ; attempt++) {
      const base = brokers[this.next++ % brokers.length];
      try {
        return await this.once<T>(base, method, path, payload, requestTimeoutMs, framed);
      } catch (err) {
        if (err instanceof MqClientError && err.status < 500) throw err;
        lastError = err;
        // One broker's bad certificate sends the call to the next; all of them: a setting to fix.
        certificatesRefused = isCertificateError(err) ? certificatesRefused + 1 : 0;
        if (certificatesRefused >= brokers.length)
          throw certificateRefused(base, err as Error & { code: string });
      }
      if (Date.now() >= deadline) break;
      // After every broker failed once, back off a little before the next round.
      if ((attempt + 1) % brokers.length === 0)
        await new Promise((r) => setTimeout(r, Math.min(1000, 50 * (attempt + 1))));
    }
    if (lastError instanceof MqClientError) throw lastError;
    throw new MqClientError(
      503,
      'brokers_unreachable',
      `no broker answered: ${(lastError as Error)?.message}`,
    );
  }

  /**
   * One request over node:http with keep-alive (undici's fetch cost the client several times more
   * CPU per request and per body, in WHATWG streams and text decoding).
   */
  private once<T>(
    base: string,
    method: string,
    path: string,
    payload: EncodedBody | undefined,
    timeoutMs: number,
    framed: FramedAnswer<T> | undefined,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const headers: Record<string, string | number> = {};
      // A broker from before framed answers ignores the header and answers JSON.
      if (framed) headers.accept = `${FRAMES_CONTENT_TYPE}, application/json`;
      if (payload) {
        headers['content-type'] = payload.contentType;
        headers['content-length'] = payload.bytes.length;
      }
      if (this.options.token) headers.authorization = `Bearer ${this.options.token}`;
      const url = new URL(base + path);
      const secure = url.protocol === 'https:';
      const req = (secure ? https : http).request(
        url,
        { method, headers, agent: secure ? this.httpsAgent : this.httpAgent },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            clearTimeout(timer);
            try {
              const body = Buffer.concat(chunks);
              const status = res.statusCode ?? 0;
              resolve(
                framed && status === 200 && res.headers['content-type'] === FRAMES_CONTENT_TYPE
                  ? decodeFramed(framed, body)
                  : answer<T>(status, body),
              );
            } catch (err) {
              reject(err);
            }
          });
          res.on('close', () => {
            clearTimeout(timer);
            if (!res.complete) reject(new Error(`${method} ${url.href}: connection closed mid-answer`));
          });
        },
      );
      const timer = setTimeout(
        () => req.destroy(new Error(`${method} ${url.href}: no answer after ${timeoutMs} ms`)),
        timeoutMs,
      );
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      req.end(payload?.bytes);
    });
  }
}

function certificateRefused(base: string, err: Error & { code: string }): MqClientError {
  const hint =
    err.code === 'ERR_TLS_CERT_ALTNAME_INVALID'
      ? 'connect by a name the certificate carries, or set serverName (mqctl --server-name) to one'
      : "give the CA that signed the brokers' certificate (option ca, mqctl --ca FILE or MQ_CA)";
  return new MqClientError(0, 'certificate_refused', `${base}: ${err.message} (${err.code}); ${hint}`);
}

/** How to read an answer the broker sent framed (message-frames.ts). */
export type FramedAnswer<T> = (body: Buffer) => T;

function decodeFramed<T>(framed: FramedAnswer<T>, body: Buffer): T {
  try {
    return framed(body);
  } catch (err) {
    throw new MqClientError(
      502,
      'bad_response',
      `broker sent a malformed framed answer: ${(err as Error).message}`,
    );
  }
}

/** A broker's answer: its JSON, or its `{code, message}` error thrown as MqClientError. */
function answer<T>(status: number, body: Buffer): T {
  if (status === 204) return undefined as T;
  let parsed: unknown;
  try {
    // Fetch answers come one message per line; large ones are parsed in pieces (json-lines.ts).
    parsed = body.length ? parseJsonLines(body) : undefined;
  } catch {
    throw new MqClientError(
      status >= 500 ? status : 502,
      'bad_response',
      `broker sent non-JSON: ${body.toString('utf8', 0, 200)}`,
    );
  }
  if (status < 200 || status >= 300) {
    const e = parsed as { code?: string; message?: string } | undefined;
    throw new MqClientError(status, e?.code ?? 'http_error', e?.message ?? `HTTP ${status}`);
  }
  return parsed as T;
}

export const topicPath = (topic: string) => `/v1/topics/${encodeURIComponent(topic)}`;
export const groupPath = (topic: string, group: string) =>
  `${topicPath(topic)}/groups/${encodeURIComponent(group)}`;
