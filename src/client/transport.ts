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
}

/**
 * HTTP to a list of brokers, round-robin. A connection error, timeout or 5xx moves the call to the
 * next broker until `timeoutMs`; a 4xx is the caller's mistake and is thrown at once.
 */
export class Transport {
  private next = Math.floor(Math.random() * 1024);
  private readonly requestTimeoutMs: number;
  private readonly timeoutMs: number;

  constructor(private readonly options: TransportOptions) {
    if (options.brokers.length === 0) throw new Error('at least one broker URL is required');
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  async call<T>(
    method: string,
    path: string,
    body?: unknown,
    requestTimeoutMs = this.requestTimeoutMs,
  ): Promise<T> {
    const deadline = Date.now() + this.timeoutMs;
    const brokers = this.options.brokers;
    let lastError: unknown;
    for (let attempt = 0; ; attempt++) {
      const base = brokers[this.next++ % brokers.length];
      try {
        return await this.once<T>(base, method, path, body, requestTimeoutMs);
      } catch (err) {
        if (err instanceof MqClientError && err.status < 500) throw err;
        lastError = err;
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

  private async once<T>(
    base: string,
    method: string,
    path: string,
    body: unknown,
    timeoutMs: number,
  ): Promise<T> {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.options.token) headers.authorization = `Bearer ${this.options.token}`;
    const res = await fetch(base + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      throw new MqClientError(
        res.status >= 500 ? res.status : 502,
        'bad_response',
        `broker sent non-JSON: ${text.slice(0, 200)}`,
      );
    }
    if (!res.ok) {
      const e = parsed as { code?: string; message?: string } | undefined;
      throw new MqClientError(res.status, e?.code ?? 'http_error', e?.message ?? `HTTP ${res.status}`);
    }
    return parsed as T;
  }
}

export const topicPath = (topic: string) => `/v1/topics/${encodeURIComponent(topic)}`;
export const groupPath = (topic: string, group: string) =>
  `${topicPath(topic)}/groups/${encodeURIComponent(group)}`;
