import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type BrokerMetrics = ReturnType<typeof createBrokerMetrics>;

/** The broker's Prometheus metrics, in a registry of its own (tests run several brokers per process). */
export function createBrokerMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'mq_broker_' });
  const registers = [registry];
  return {
    registry,
    httpRequests: new Counter({
      name: 'mq_broker_http_requests_total',
      help: 'HTTP requests by route and status code',
      labelNames: ['route', 'code'] as const,
      registers,
    }),
    httpRequestSeconds: new Histogram({
      name: 'mq_broker_http_request_seconds',
      help: 'Time from the arrival of a request to its answer, by route (a fetch includes its long-poll wait)',
      labelNames: ['route'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
      registers,
    }),
    publishedMessages: new Counter({
      name: 'mq_broker_published_messages_total',
      help: 'Messages committed to a shard and acknowledged',
      labelNames: ['shard'] as const,
      registers,
    }),
    fetchedMessages: new Counter({
      name: 'mq_broker_fetched_messages_total',
      help: 'Messages delivered to consumers',
      labelNames: ['shard'] as const,
      registers,
    }),
    writeRetries: new Counter({
      name: 'mq_broker_write_retries_total',
      help: 'Batches that failed on a shard and were sent to the next one',
      labelNames: ['shard'] as const,
      registers,
    }),
    batchSize: new Histogram({
      name: 'mq_broker_batch_messages',
      help: 'Messages per multi-row INSERT',
      buckets: [1, 10, 50, 100, 250, 500, 1000, 2500, 5000],
      registers,
    }),
    batchCommitSeconds: new Histogram({
      name: 'mq_broker_batch_commit_seconds',
      help: 'Time to commit one batch (INSERT + fsync + semi-sync acknowledgement)',
      labelNames: ['shard'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    shardWritable: new Gauge({
      name: 'mq_broker_shard_writable',
      help: '1 when the broker writes to the shard',
      labelNames: ['shard'] as const,
      registers,
    }),
    shardReadable: new Gauge({
      name: 'mq_broker_shard_readable',
      help: '1 when the broker reads from the shard',
      labelNames: ['shard'] as const,
      registers,
    }),
    fetchShardReads: new Counter({
      name: 'mq_broker_fetch_shard_reads_total',
      help: 'Reads of one shard for a fetch: answered from messages read before (cache) or by a query',
      labelNames: ['source'] as const,
      registers,
    }),
    fetchCacheBytes: new Gauge({
      name: 'mq_broker_fetch_cache_bytes',
      help: 'What the messages kept for other groups count as (payloads, their JSON, objects)',
      registers,
    }),
    limitRejections: new Counter({
      name: 'mq_broker_limit_rejections_total',
      help: 'Requests and connections refused because they passed one of the broker limits',
      labelNames: ['limit'] as const,
      registers,
    }),
    deadLettered: new Counter({
      name: 'mq_broker_dead_lettered_messages_total',
      help: 'Messages copied to <topic>.dlq after maxDeliveries deliveries, by topic and consumer group',
      labelNames: ['topic', 'group'] as const,
      registers,
    }),
    routingVersion: new Gauge({
      name: 'mq_broker_routing_version',
      help: 'Version of the routing document in force',
      registers,
    }),
  };
}
