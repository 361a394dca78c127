import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { type Server as HttpsServer, createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { readFile, stat } from 'node:fs/promises';
import { getHeapStatistics } from 'node:v8';
import { DEFAULT_MAX_MESSAGE_BYTES, WRITE_BATCH_BYTES } from '../api/limits.js';
import { MqError, errorMessage, notFound } from '../common/errors.js';
import { type Logger, createLogger } from '../common/logger.js';
import type { Credentials } from '../shard/connection.js';
import { Auth, type Principal } from './auth.js';
import { DeadLetters } from './dead-letters.js';
import { type CommitOutcome, Fetcher, type FetcherOptions } from './fetcher.js';
import { GroupAdmin } from './group-admin.js';
import { maxGapAgeMs } from './gaps.js';
import { ByteBudget } from './byte-budget.js';
import { fetchAnswerBody } from './fetch-cache.js';
import { accepts, mediaType, readBody, sendBytes, sendError, sendJson } from './http-util.js';
import { FRAMES_CONTENT_TYPE } from '../common/message-frames.js';
import { ReusableBuffers } from '../common/reusable-buffers.js';
import {
  MAX_MESSAGES_PER_PUBLISH,
  type PublishLimits,
  ROUTING_BODY_BYTES,
  SMALL_BODY_BYTES,
  checkSizeLimits,
  publishLimits,
} from './limits.js';
import { MAX_ALLOWED_PACKET_BYTES } from '../shard/mycnf.js';
import { LagMetrics } from './lag-metrics.js';
import { type BrokerMetrics, createBrokerMetrics } from './metrics.js';
import {
  checkGroupName,
  checkTopicName,
  parseCommit,
  parseCreateTopic,
  parseFetch,
  parseFramedPublish,
  parseJson,
  parsePublish,
  parseReset,
  parseTopicPatch,
} from './requests.js';
import { type RoutingDocument, parseRouting } from '../api/routing.js';
import { type Action, type UsersDocument, holdsAnyRight, parseUsers } from '../api/users.js';
import { ShardPools } from './shard-pools.js';
import { ShardRouter } from './shard-router.js';
import { GroupAdmission } from './group-admission.js';
import { TopicCatalog } from './topic-catalog.js';
import { BatchingWriter, type WriterOptions } from './writer.js';
import {
  CertificateReloader,
  SERVER_SECURE_OPTIONS,
  type TlsFiles,
  type TlsPems,
  describeCertificate,
  readTlsFiles,
} from './tls.js';

export interface BrokerConfig {
  host: string;
  port: number;
  /** Serve HTTPS with this certificate, re-read when the files change; absent: plain HTTP. */
  tls?: TlsFiles;
  db: Credentials;
  routing: RoutingDocument;
  /** Re-read when it changes (a mounted ConfigMap); PUT /v1/admin/routing is the fast path. */
  routingFile?: string;
  /**
   * Users and their rights per topic (docs/security.md). With neither `users` nor `authToken`,
   * clients need no token: only for brokers embedded in tests and tools; the broker process
   * refuses to start that way unless told `--no-auth`.
   */
  users?: UsersDocument;
  /** Re-read when it changes (a mounted ConfigMap); a bad file keeps the users in force. */
  usersFile?: string;
  /** Deprecated shared client token (`spec.brokers.authSecretName`): every right on every topic. */
  authToken?: string;
  /** The operator's credential (routing pushes); without it, and without users, the admin API is off. */
  adminToken?: string;
  /** At most MESSAGE_COLUMN_MAX_BYTES (the message column). */
  maxMessageBytes: number;
  maxMessagesPerPublish: number;
  /** Topics the broker creates at most (each is a table on every shard). */
  maxTopics: number;
  /** Consumer groups a topic may have (each is a row per shard and a lease cache entry). */
  maxGroupsPerTopic: number;
  http: HttpLimits;
  writer: WriterOptions;
  /** Publish bodies the broker holds at once (read, parsed, waiting for their commit). */
  maxPublishBytesInFlight: number;
  /** The gap age follows from the writer's commit deadline, which every broker must share. */
  fetcher: Omit<FetcherOptions, 'maxGapAgeMs' | 'maxMessageBytes'>;
  probeIntervalMs: number;
  /** Connections per instance for publishes (and probes). */
  poolSize: number;
  /**
   * Connections per instance for fetches, offsets and topics: a pool of their own, so that many
   * long-polling fetches queue behind each other rather than in front of the publishes' commits.
   */
  fetchPoolSize: number;
}

/** Against clients that hold connections or trickle requests (slowloris). */
export interface HttpLimits {
  /** Until a request's headers are in, counted from the connection or the previous request. */
  headersTimeoutMs: number;
  /** Until a whole request is in (Node answers 408 past it). */
  requestTimeoutMs: number;
  /** Longest pause within a request body (the broker answers 408 JSON past it). */
  bodyIdleTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
  /** Connections past this are closed as they come (metric limit="connections"). */
  maxConnections: number;
}

/** Error codes that mean a limit was reached, and the `limit` label of their metric. */
const LIMIT_OF_CODE: Record<string, string> = {
  request_too_large: 'body_bytes',
  length_required: 'length_required',
  request_timeout: 'body_idle',
  message_too_large: 'message_bytes',
  publish_too_large: 'publish_bytes',
  too_many_messages: 'publish_messages',
  topic_limit: 'topics',
  group_limit: 'groups',
};

export const BROKER_DEFAULTS: Omit<BrokerConfig, 'db' | 'routing'> = {
  host: '127.0.0.1',
  port: 8080,
  maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
  maxMessagesPerPublish: MAX_MESSAGES_PER_PUBLISH,
  maxTopics: 1000,
  maxGroupsPerTopic: 200,
  http: {
    headersTimeoutMs: 10_000,
    requestTimeoutMs: 30_000,
    bodyIdleTimeoutMs: 10_000,
    keepAliveTimeoutMs: 65_000,
    // An idle connection costs tens of KiB; thousands stay far below the 128 MiB heap.
    maxConnections: 2000,
  },
  writer: {
    maxBatchMessages: 5000,
    maxBatchBytes: WRITE_BATCH_BYTES,
    inflightPerShard: 3,
    commitTimeoutMs: 2000,
  },
  maxPublishBytesInFlight: 8 << 20,
  fetcher: {
    leaseTtlMs: 2_000,
    pollIntervalMs: 50,
    cacheBytes: 16 << 20,
    // Ten groups' answers of 1 MiB each twice over; with more groups, answers shrink.
    answerBytesInFlight: 24 << 20,
    shardTimeoutMs: 500,
  },
  probeIntervalMs: 500,
  poolSize: 12,
  fetchPoolSize: 8,
};

type Handler = (req: IncomingMessage, res: ServerResponse, params: string[], who: Principal) => Promise<void>;

/**
 * What a route needs: `open` no token (probes, Prometheus); `user` any valid token; an action on
 * the topic in the path; `operator` the operator's routes (Auth.requireOperator).
 */
type Access = 'open' | 'user' | Action | 'operator';

/**
 * The broker: an HTTP/1.1 keep-alive server in front of the shards. Stateless apart from caches:
 * offsets and messages live in MariaDB, routing comes from the operator.
 */
export class Broker {
  readonly metrics: BrokerMetrics = createBrokerMetrics();
  private readonly pools: ShardPools;
  private readonly fetchPools: ShardPools;
  private readonly publishLimits: PublishLimits;
  readonly router: ShardRouter;
  private readonly catalog: TopicCatalog;
  private readonly groupAdmission: GroupAdmission;
  private readonly lag: LagMetrics;
  private readonly writer: BatchingWriter;
  private readonly publishBytes: ByteBudget;
  private readonly fetcher: Fetcher;
  /** Fetch answers are written into these (see ReusableBuffers). */
  private readonly answerBuffers = new ReusableBuffers();
  /** Publish bodies are read into these. */
  private readonly publishBuffers = new ReusableBuffers();
  private readonly groups: GroupAdmin;
  private readonly deadLetters: DeadLetters;
  private readonly server: Server | HttpsServer;
  private certificates?: CertificateReloader;
  private readonly routes: [string, RegExp, Access, Handler][];
  readonly auth: Auth;
  private routingTimer?: NodeJS.Timeout;
  private routingMtime = 0;
  private usersTimer?: NodeJS.Timeout;
  private usersMtime = 0;
  private closing = false;
  private listenUrl = '';

  private constructor(
    readonly config: BrokerConfig,
    private readonly log: Logger,
    tlsPems?: TlsPems,
  ) {
    this.auth = new Auth({
      users: config.users,
      sharedToken: config.authToken,
      operatorToken: config.adminToken,
      clientCertificates: config.tls?.clientCaFile !== undefined,
    });
    this.pools = new ShardPools(config.db, config.poolSize);
    this.fetchPools = new ShardPools(config.db, config.fetchPoolSize);
    this.publishLimits = publishLimits(config.maxMessageBytes);
    this.publishBytes = new ByteBudget(config.maxPublishBytesInFlight);
    this.router = new ShardRouter(config.routing, this.pools, log);
    this.router.onChange(() => this.fetchPools.retainOnly(this.router.endpoints()));
    this.catalog = new TopicCatalog(this.router, this.fetchPools, config.maxTopics);
    this.groupAdmission = new GroupAdmission(
      this.router,
      this.fetchPools,
      this.catalog,
      config.maxGroupsPerTopic,
    );
    // Lag queries at every scrape: on the fetch pools, away from the publishes' commits.
    this.lag = new LagMetrics(this.metrics.registry, this.router, this.fetchPools, log);
    this.deadLetters = new DeadLetters(
      this.pools,
      (topic, payloads, bytes) => this.writer.publish(topic, payloads, bytes),
      this.metrics,
      log,
    );
    this.fetcher = new Fetcher(
      this.router,
      this.fetchPools,
      this.catalog,
      {
        ...config.fetcher,
        maxGapAgeMs: maxGapAgeMs(config.writer.commitTimeoutMs),
        maxMessageBytes: config.maxMessageBytes,
      },
      this.metrics,
      log,
      this.deadLetters,
    );
    this.groups = new GroupAdmin(this.router, this.pools, this.catalog, this.fetcher);
    this.writer = new BatchingWriter(
      this.router,
      this.pools,
      this.catalog,
      config.writer,
      this.metrics,
      log,
      (t) => this.fetcher.notify(t),
    );
    const http = config.http;
    const serverOptions = {
      keepAliveTimeout: http.keepAliveTimeoutMs,
      headersTimeout: http.headersTimeoutMs,
      requestTimeout: http.requestTimeoutMs,
      // How often Node looks for connections past those timeouts (default 30 s).
      connectionsCheckingInterval: Math.min(1000, http.headersTimeoutMs),
    };
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res);
    this.server = tlsPems
      ? createHttpsServer(
          // Node's headers timeout counts from the end of the handshake: without this, a client
          // that never finishes one would hold its connection for Node's default 120 s.
          {
            ...serverOptions,
            ...tlsPems,
            handshakeTimeout: http.headersTimeoutMs,
            // Asked for, not required: token clients connect as before, and a certificate that
            // does not verify gets a 401 that says why rather than a failed handshake.
            ...(tlsPems.ca ? { requestCert: true, rejectUnauthorized: false } : {}),
            secureOptions: SERVER_SECURE_OPTIONS,
          },
          handler,
        )
      : createServer(serverOptions, handler);
    this.server.maxConnections = http.maxConnections;
    this.server.on('drop', () => this.metrics.limitRejections.inc({ limit: 'connections' }));
    this.routes = [
      ['GET /healthz', /^\/healthz$/, 'open', async (_q, res) => sendJson(res, 200, { status: 'ok' })],
      ['GET /readyz', /^\/readyz$/, 'open', (q, res) => this.ready(q, res)],
      ['GET /metrics', /^\/metrics$/, 'open', (q, res) => this.metricsPage(q, res)],
      ['GET /v1/status', /^\/v1\/status$/, 'user', async (_q, res) => sendJson(res, 200, this.status())],
      ['GET /v1/topics', /^\/v1\/topics$/, 'user', (q, res, _p, who) => this.listTopics(q, res, who)],
      ['POST /v1/topics', /^\/v1\/topics$/, 'user', (q, res, p, who) => this.createTopic(q, res, p, who)],
      ['PATCH /v1/topics', /^\/v1\/topics\/([^/]+)$/, 'operator', (q, res, p) => this.updateTopic(q, res, p)],
      [
        'POST /v1/topics/messages',
        /^\/v1\/topics\/([^/]+)\/messages$/,
        'produce',
        (q, res, p) => this.publish(q, res, p),
      ],
      [
        'POST /v1/topics/groups/fetch',
        /^\/v1\/topics\/([^/]+)\/groups\/([^/]*)\/fetch$/,
        'consume',
        (q, res, p) => this.fetch(q, res, p),
      ],
      [
        'POST /v1/topics/groups/offsets',
        /^\/v1\/topics\/([^/]+)\/groups\/([^/]*)\/offsets$/,
        'consume',
        (q, res, p) => this.commit(q, res, p),
      ],
      [
        'GET /v1/topics/groups/offsets',
        /^\/v1\/topics\/([^/]+)\/groups\/([^/]*)\/offsets$/,
        'consume',
        (q, res, p) => this.offsets(q, res, p),
      ],
      [
        'GET /v1/topics/groups',
        /^\/v1\/topics\/([^/]+)\/groups$/,
        'consume',
        (q, res, p) => this.listGroups(q, res, p),
      ],
      [
        'POST /v1/topics/groups/reset',
        /^\/v1\/topics\/([^/]+)\/groups\/([^/]*)\/reset$/,
        'admin',
        (q, res, p) => this.resetGroup(q, res, p),
      ],
      [
        'DELETE /v1/topics/groups',
        /^\/v1\/topics\/([^/]+)\/groups\/([^/]*)$/,
        'admin',
        (q, res, p) => this.deleteGroup(q, res, p),
      ],
      [
        'DELETE /v1/topics/groups/consumers',
        /^\/v1\/topics\/([^/]+)\/groups\/([^/]*)\/consumers\/([^/]+)$/,
        'consume',
        (q, res, p) => this.leave(q, res, p),
      ],
      [
        'POST /v1/topics/groups/consumers/heartbeat',
        /^\/v1\/topics\/([^/]+)\/groups\/([^/]*)\/consumers\/([^/]+)\/heartbeat$/,
        'consume',
        (q, res, p) => this.heartbeat(q, res, p),
      ],
      ['PUT /v1/admin/routing', /^\/v1\/admin\/routing$/, 'operator', (q, res) => this.putRouting(q, res)],
      ['GET /v1/admin/routing', /^\/v1\/admin\/routing$/, 'operator', (q, res) => this.getRouting(q, res)],
    ];
  }

  static async start(config: BrokerConfig, log: Logger = createLogger('broker')): Promise<Broker> {
    const problems = checkSizeLimits(
      config.maxMessageBytes,
      config.maxMessagesPerPublish,
      MAX_ALLOWED_PACKET_BYTES,
    );
    if (problems.length > 0) throw new Error(problems.join('; '));
    const tls = config.tls ? await readTlsFiles(config.tls) : undefined;
    const broker = new Broker(config, log, tls?.pems);
    if (config.tls && tls) {
      broker.certificates = new CertificateReloader(
        broker.server as HttpsServer,
        config.tls,
        tls.version,
        log,
      );
      broker.certificates.start(1000);
    }
    broker.router.onChange(() => broker.metrics.routingVersion.set(broker.router.version));
    broker.metrics.routingVersion.set(config.routing.version);
    broker.router.startProbing(config.probeIntervalMs);
    if (config.routingFile) broker.watchRoutingFile(config.routingFile);
    if (config.usersFile) broker.watchUsersFile(config.usersFile);
    await new Promise<void>((resolve, reject) => {
      broker.server.once('error', reject);
      broker.server.listen(config.port, config.host, () => resolve());
    });
    const addr = broker.server.address() as AddressInfo;
    broker.listenUrl = `${tls ? 'https' : 'http'}://${addr.address}:${addr.port}`;
    log.info('broker listening', {
      url: broker.url,
      ...(tls ? { certificate: describeCertificate(tls.pems.cert) } : {}),
      ...(config.tls?.clientCaFile ? { clientCa: config.tls.clientCaFile } : {}),
      routingVersion: config.routing.version,
      // Meant to be small (node-options.ts): a default-sized heap lets garbage pile up.
      heapLimitMiB: Math.round(getHeapStatistics().heap_size_limit / 2 ** 20),
    });
    return broker;
  }

  /** Base URL, fixed once listening (still known after close, for clients that retry it). */
  get url(): string {
    return this.listenUrl;
  }

  /**
   * Stops taking requests, lets every accepted publish commit or fail explicitly, answers waiting
   * fetches with what they have, then closes connections and pools.
   */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    clearInterval(this.routingTimer);
    clearInterval(this.usersTimer);
    this.certificates?.stop();
    this.router.stopProbing();
    const serverClosed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    this.fetcher.close();
    await this.writer.close();
    this.server.closeAllConnections();
    await serverClosed;
    await this.pools.closeAll();
    this.log.info('broker stopped');
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    let routeName = 'unknown';
    const arrived = performance.now();
    try {
      const match = this.match(req.method ?? 'GET', path);
      routeName = match.name;
      const who = match.access === 'open' ? ANYONE : this.authorize(req, match.access, match.params[0]);
      await match.handler(req, res, match.params, who);
    } catch (err) {
      const mqErr = asMqError(err);
      const limit = LIMIT_OF_CODE[mqErr.code];
      if (limit) this.metrics.limitRejections.inc({ limit });
      // The rest of a body that stopped arriving is not waited for.
      if (mqErr.status === 408) res.setHeader('connection', 'close');
      // 503s are expected states (no writable shard, offsets unavailable) the client retries.
      if (mqErr.status === 500) this.log.error('request failed', { route: routeName, error: mqErr.message });
      else if (mqErr.status > 500)
        this.log.warn('request refused', { route: routeName, error: mqErr.message });
      if (!res.headersSent) sendError(res, mqErr);
      else res.destroy();
    } finally {
      this.metrics.httpRequests.inc({ route: routeName, code: String(res.statusCode) });
      this.metrics.httpRequestSeconds.observe({ route: routeName }, (performance.now() - arrived) / 1000);
    }
  }

  private match(
    method: string,
    path: string,
  ): { name: string; access: Access; handler: Handler; params: string[] } {
    let pathMatched = false;
    for (const [name, pattern, access, handler] of this.routes) {
      const m = pattern.exec(path);
      if (!m) continue;
      pathMatched = true;
      if (name.startsWith(method + ' ')) {
        return { name, access, handler, params: m.slice(1).map(decodeURIComponent) };
      }
    }
    if (pathMatched) throw new MqError(405, 'method_not_allowed', `${method} is not allowed on ${path}`);
    throw notFound('not_found', `no such endpoint: ${method} ${path}`);
  }

  /** 401 without a known token, 403 without the route's right on the path's topic. */
  private authorize(req: IncomingMessage, access: Exclude<Access, 'open'>, topic?: string): Principal {
    const who = this.auth.authenticate(req);
    if (access === 'operator') this.auth.requireOperator(who, topic);
    else if (access !== 'user') this.auth.require(who, access, topic);
    return who;
  }

  /** The body as JSON; `limit` fits the route (a fetch needs a few KiB, a publish megabytes). */
  private async body(req: IncomingMessage, limit = SMALL_BODY_BYTES): Promise<unknown> {
    return parseJson(await readBody(req, limit, this.config.http.bodyIdleTimeoutMs));
  }

  private status() {
    return {
      routingVersion: this.router.version,
      shards: this.router.shards().map((s) => ({
        name: s.name,
        writable: s.writable,
        readable: s.readable,
        write: s.route.write,
        read: s.route.read,
        requireStandbyAck: s.route.requireStandbyAck,
        lastError: s.lastError,
      })),
    };
  }

  private async ready(_req: IncomingMessage, res: ServerResponse): Promise<void> {
    const shards = this.router.shards();
    for (const s of shards) {
      this.metrics.shardWritable.set({ shard: s.name }, s.writable ? 1 : 0);
      this.metrics.shardReadable.set({ shard: s.name }, s.readable ? 1 : 0);
    }
    const ready = !this.closing && shards.some((s) => s.readable);
    sendJson(res, ready ? 200 : 503, {
      status: ready ? 'ready' : 'not ready',
      writableShards: shards.filter((s) => s.writable).length,
      readableShards: shards.filter((s) => s.readable).length,
    });
  }

  private async metricsPage(_req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.metrics.fetchCacheBytes.set(this.fetcher.cache.sizeBytes);
    await this.lag.refreshIfStale();
    for (const s of this.router.shards()) {
      this.metrics.shardWritable.set({ shard: s.name }, s.writable ? 1 : 0);
      this.metrics.shardReadable.set({ shard: s.name }, s.readable ? 1 : 0);
    }
    res.writeHead(200, { 'content-type': this.metrics.registry.contentType });
    res.end(await this.metrics.registry.metrics());
  }

  /** The topics the caller holds some right on: a topic's name says what it carries. */
  private async listTopics(_req: IncomingMessage, res: ServerResponse, who: Principal): Promise<void> {
    sendJson(res, 200, { topics: (await this.catalog.list()).filter((t) => holdsAnyRight(who.rights, t)) });
  }

  private async createTopic(req: IncomingMessage, res: ServerResponse, _p: string[], who: Principal) {
    const { name, settings } = parseCreateTopic(await this.body(req));
    this.auth.require(who, 'admin', name);
    const initial = settings && Object.fromEntries(Object.entries(settings).filter(([, v]) => v !== null));
    const created = await this.catalog.create(name, initial ? JSON.stringify(initial) : null);
    // Set again on every shard: where an earlier creation cut short left the row, the INSERT kept it.
    if (created && settings) {
      await this.catalog.updateSettings(name, settings);
      this.deadLetters.invalidate(name);
    }
    sendJson(res, created ? 201 : 200, { name, created });
  }

  private async updateTopic(req: IncomingMessage, res: ServerResponse, [topicParam]: string[]) {
    const topic = checkTopicName(topicParam);
    const patch = parseTopicPatch(await this.body(req), topic);
    await this.catalog.requireTopic(topic);
    const settings = await this.catalog.updateSettings(topic, patch);
    this.deadLetters.invalidate(topic);
    sendJson(res, 200, { name: topic, settings });
  }

  private async publish(req: IncomingMessage, res: ServerResponse, [topicParam]: string[]): Promise<void> {
    const topic = checkTopicName(topicParam);
    const limits = this.publishLimits;
    const declared = req.headers['content-length'];
    // What the body may take is reserved before it is read; a body of unknown length (chunked)
    // reserves the chunked allowance and may not be larger.
    const chunked = declared === undefined && req.headers['transfer-encoding'] !== undefined;
    const held = chunked ? limits.chunkedBodyBytes : Math.min(Number(declared) || 0, limits.bodyBytes);
    if (!chunked && Number(declared) > limits.bodyBytes) {
      throw new MqError(413, 'request_too_large', `request body is larger than ${limits.bodyBytes} bytes`);
    }
    await this.publishBytes.acquire(held);
    try {
      const body = await readBody(req, held, this.config.http.bodyIdleTimeoutMs, this.publishBuffers).catch(
        (err: unknown) => {
          if (chunked && err instanceof MqError && err.code === 'request_too_large') {
            throw new MqError(
              411,
              'length_required',
              `a chunked publish body may carry at most ${held} bytes; send larger ones with Content-Length (up to ${limits.bodyBytes})`,
            );
          }
          throw err;
        },
      );
      const framed = mediaType(req) === FRAMES_CONTENT_TYPE;
      try {
        // Framed payloads are views into the body until the publish is answered; JSON is parsed
        // into strings and buffers of their own, so its body's buffer serves the next publish.
        const { payloads, bytes } = framed
          ? parseFramedPublish(body, this.config)
          : parsePublish(parseJson(body), this.config);
        if (!framed) this.publishBuffers.give(body);
        if (bytes > limits.payloadBytes) {
          throw new MqError(
            413,
            'publish_too_large',
            `the messages of one publish may total ${limits.payloadBytes} bytes; this one has ${bytes}`,
          );
        }
        await this.catalog.requireTopic(topic);
        sendJson(res, 200, await this.writer.publish(topic, payloads, bytes));
      } finally {
        // Settled: the writer copied the payloads into its INSERT and is done with them.
        if (framed) this.publishBuffers.give(body);
      }
    } finally {
      this.publishBytes.release(held);
    }
  }

  private async fetch(req: IncomingMessage, res: ServerResponse, [topicParam, groupParam]: string[]) {
    const topic = checkTopicName(topicParam);
    const group = checkGroupName(groupParam);
    const body = parseFetch(await this.body(req));
    // The SDK asks for frames; the JSON body's `encoding` then plays no part.
    const framed = accepts(req, FRAMES_CONTENT_TYPE);
    await this.catalog.requireTopic(topic);
    await this.groupAdmission.admit(topic, group);
    // Before the read: a message failed too often is set aside rather than delivered again.
    if (body.failed.length > 0) await this.fetcher.recordFailures(group, topic, body.consumer, body.failed);
    // A commit that rides along does not hold up or fail the fetch: its error goes in the answer.
    const committed = Object.keys(body.commit).length
      ? this.fetcher.commit(group, topic, body.consumer, body.commit, body.generations).then(
          // The consumer sends the whole commit again with its next fetch; committing twice is harmless.
          (outcome) => partialCommitError(outcome),
          (err: unknown) => asMqError(err),
        )
      : undefined;
    const result = await this.fetcher.fetch({
      topic,
      group,
      ...body,
      encoding: framed ? 'frames' : body.encoding,
    });
    // A consumer that went away during the long poll: its response closed already.
    if (res.closed) this.fetcher.answered(result);
    else res.once('close', () => this.fetcher.answered(result));
    this.fetcher.recordDelivered(result.messages);
    const commitError = await committed;
    let backing: Buffer | undefined;
    const answer = fetchAnswerBody(
      { ...result, commitError },
      framed,
      (size) => (backing = this.answerBuffers.take(size)),
    );
    // Once the socket has taken the answer, its buffer serves another one (not on an error: the
    // socket may still refer to it, and the garbage collector frees it then).
    sendBytes(res, 200, framed ? FRAMES_CONTENT_TYPE : 'application/json', answer, () =>
      this.answerBuffers.give(backing!),
    );
  }

  private async commit(req: IncomingMessage, res: ServerResponse, [topicParam, groupParam]: string[]) {
    const topic = checkTopicName(topicParam);
    const group = checkGroupName(groupParam);
    const { consumer, offsets, generations } = parseCommit(await this.body(req));
    await this.catalog.requireTopic(topic);
    await this.groupAdmission.admit(topic, group);
    const { committed, unavailable } = await this.fetcher.commit(
      group,
      topic,
      consumer,
      offsets,
      generations,
    );
    sendJson(res, 200, Object.keys(unavailable).length > 0 ? { committed, unavailable } : { committed });
  }

  private async offsets(_req: IncomingMessage, res: ServerResponse, [topicParam, groupParam]: string[]) {
    const topic = checkTopicName(topicParam);
    const group = checkGroupName(groupParam);
    await this.catalog.requireTopic(topic);
    sendJson(res, 200, { topic, group, shards: await this.fetcher.offsets(group, topic) });
  }

  private async listGroups(_req: IncomingMessage, res: ServerResponse, [topicParam]: string[]) {
    const topic = checkTopicName(topicParam);
    sendJson(res, 200, { groups: await this.groups.list(topic) });
  }

  private async resetGroup(req: IncomingMessage, res: ServerResponse, [topicParam, groupParam]: string[]) {
    const topic = checkTopicName(topicParam);
    const group = checkGroupName(groupParam);
    const { to, force } = parseReset(await this.body(req));
    const offsets = await this.groups.reset(topic, group, to, force);
    this.log.info('consumer group reset', { topic, group, to, force, offsets });
    sendJson(res, 200, { topic, group, offsets });
  }

  private async deleteGroup(req: IncomingMessage, res: ServerResponse, [topicParam, groupParam]: string[]) {
    const topic = checkTopicName(topicParam);
    const group = checkGroupName(groupParam);
    const force = new URL(req.url ?? '/', 'http://broker').searchParams.get('force') === 'true';
    await this.groups.delete(topic, group, force);
    this.log.info('consumer group deleted', { topic, group, force });
    res.writeHead(204).end();
  }

  private async leave(
    _req: IncomingMessage,
    res: ServerResponse,
    [topicParam, groupParam, consumer]: string[],
  ) {
    const topic = checkTopicName(topicParam);
    const group = checkGroupName(groupParam);
    await this.catalog.requireTopic(topic);
    await this.fetcher.leave(group, topic, consumer);
    res.writeHead(204).end();
  }

  private async heartbeat(
    _req: IncomingMessage,
    res: ServerResponse,
    [topicParam, groupParam, consumer]: string[],
  ) {
    const topic = checkTopicName(topicParam);
    const group = checkGroupName(groupParam);
    await this.catalog.requireTopic(topic);
    sendJson(res, 200, { shards: await this.fetcher.heartbeat(group, topic, consumer) });
  }

  private async putRouting(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const doc = parseRouting(await this.body(req, ROUTING_BODY_BYTES));
    const applied = this.router.update(doc);
    sendJson(res, 200, { applied, version: this.router.version });
  }

  private async getRouting(_req: IncomingMessage, res: ServerResponse): Promise<void> {
    sendJson(res, 200, this.router.routing);
  }

  private watchRoutingFile(file: string): void {
    const check = async () => {
      try {
        const { mtimeMs } = await stat(file);
        if (mtimeMs === this.routingMtime) return;
        this.routingMtime = mtimeMs;
        this.router.update(parseRouting(JSON.parse(await readFile(file, 'utf8'))));
      } catch (err) {
        this.log.warn('routing file unreadable; keeping the routing in force', {
          file,
          error: errorMessage(err),
        });
      }
    };
    this.routingTimer = setInterval(() => void check(), 250);
    this.routingTimer.unref();
  }

  /** Like the routing file: the kubelet swaps a mounted ConfigMap's file, which changes its mtime. */
  private watchUsersFile(file: string): void {
    const check = async () => {
      try {
        const { mtimeMs } = await stat(file);
        if (mtimeMs === this.usersMtime) return;
        const doc = parseUsers(JSON.parse(await readFile(file, 'utf8')));
        this.usersMtime = mtimeMs;
        this.auth.setUsers(doc);
        this.log.info('users reloaded', { users: doc.users.map((u) => u.name) });
      } catch (err) {
        this.log.warn('users file unreadable; keeping the users in force', {
          file,
          error: errorMessage(err),
        });
      }
    };
    this.usersTimer = setInterval(() => void check(), 250);
    this.usersTimer.unref();
  }
}

/** The principal of open routes, which check nothing. */
const ANYONE: Principal = { name: 'anyone', rights: [] };

function asMqError(err: unknown): MqError {
  return err instanceof MqError ? err : new MqError(500, 'internal', `internal error: ${errorMessage(err)}`);
}

/** A commit riding on a fetch that some shards could not take now: a 503 the SDK retries. */
function partialCommitError({ unavailable }: CommitOutcome): MqError | undefined {
  const shards = Object.entries(unavailable);
  if (shards.length === 0) return undefined;
  return new MqError(
    503,
    'offsets_unavailable',
    `${shards.map(([, u]) => u.message).join('; ')}; commit again later`,
  );
}
