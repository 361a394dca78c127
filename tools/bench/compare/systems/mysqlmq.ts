import { join } from 'node:path';
import { Consumer, Producer } from '../../../../src/client/index.js';
import { BROKER_NODE_OPTIONS } from '../../../../src/api/node-options.js';
import { BrokerProcess } from '../../../local/broker-process.js';
import { describeMachine } from '../../machine.js';
import { sleep } from '../../../../src/common/deadline.js';
import type { BenchSystem, Delivered, Session } from '../system.js';
import { COMPARE_PREFIX, type SharedShards } from './cluster.js';

export interface MysqlmqOptions {
  brokers: number;
  /** Extra `node` arguments for the broker processes (profiling, heap limits). */
  brokerNodeArgs?: string[];
  /** SDK producers at full load; the paced phase uses one. */
  producers: number;
  batchMessages: number;
  lingerMs: number;
  maxInflight: number;
  fetchMessages: number;
  /** Response size limit a consumer asks for (the broker's default when absent). */
  fetchBytes?: number;
  /** Consumer.run's commitIntervalMs. */
  commitIntervalMs: number;
}

export const MYSQLMQ_DEFAULTS: MysqlmqOptions = {
  brokers: 2,
  producers: 4,
  batchMessages: 2000,
  lingerMs: 5,
  maxInflight: 4,
  fetchMessages: 5000,
  commitIntervalMs: 1000,
};

/** This project: 2 durable shards, broker processes, the SDK. */
export class MysqlmqSystem implements BenchSystem {
  readonly name = 'mysqlmq';
  readonly title = 'mysqlmq (this project)';
  readonly durability =
    'answered after COMMIT on the shard primary with sync_binlog=1 and innodb_flush_log_at_trx_commit=1 ' +
    '(binlog and redo log fsynced) and after the semi-sync standby received it (AFTER_SYNC, required): ' +
    'an acknowledged message survives the loss of either server of its shard';
  readonly setup: string;
  private brokers: BrokerProcess[] = [];
  private routingFile = '';
  private sessions = 0;
  private mariadb = '';

  constructor(
    private readonly shards: SharedShards,
    private readonly options: MysqlmqOptions = MYSQLMQ_DEFAULTS,
  ) {
    const o = options;
    this.setup =
      `2 shards (primary + standby mariadbd each, ${COMPARE_PREFIX}.1-4), ${o.brokers} broker processes ` +
      `(node ${[...BROKER_NODE_OPTIONS, ...(o.brokerNodeArgs ?? [])].join(' ')}); ` +
      `SDK: ${o.producers} Producers at full load (batch ${o.batchMessages}, linger ${o.lingerMs} ms, ` +
      `${o.maxInflight} requests in flight each), 1 when paced; one Consumer per group ` +
      `(Consumer.run: up to ${o.fetchMessages} messages per fetch; what was handled committed along with ` +
      `a fetch at most every ${o.commitIntervalMs} ms, commitIntervalMs)`;
  }

  get urls(): string[] {
    return this.brokers.map((b) => b.url);
  }

  async start(log: (line: string) => void): Promise<void> {
    log(`starting 2 shards (primary + semi-sync standby each) on ${COMPARE_PREFIX}.1-4`);
    const shards = await this.shards.get();
    this.mariadb = /MariaDB (\S+)/.exec(describeMachine())?.[1] ?? 'unknown';
    this.routingFile = join(this.shards.directory, 'routing.json');
    await BrokerProcess.writeRouting(this.routingFile, shards.routing());
    await this.startBrokers(this.options.brokerNodeArgs ?? []);
    log(`brokers at ${this.urls.join(', ')}`);
  }

  /** (Re)starts the broker processes, e.g. with a new `--cpu-prof-dir` per phase. */
  async startBrokers(extraNodeArgs: string[]): Promise<void> {
    const nodeArgs = [...BROKER_NODE_OPTIONS, ...extraNodeArgs];
    await this.stopBrokers();
    const shards = await this.shards.get();
    this.brokers = await Promise.all(
      Array.from({ length: this.options.brokers }, (_, i) =>
        BrokerProcess.start({
          host: `${COMPARE_PREFIX}.${101 + i}`,
          port: 8080,
          routingFile: this.routingFile,
          db: shards.secrets.broker,
          nodeArgs,
        }),
      ),
    );
  }

  async stopBrokers(): Promise<void> {
    const brokers = this.brokers;
    this.brokers = [];
    await Promise.all(brokers.map((b) => b.stop()));
  }

  version(): string {
    return `mysqlmq 0.1.0 on MariaDB ${this.mariadb}`;
  }

  storagePids(): number[] {
    return this.shards.mariadbPids();
  }

  serverPids(): number[] {
    return this.brokers.map((b) => b.pid).filter((p): p is number => p !== undefined);
  }

  async session(sizeBytes: number, label: string, _groups?: number): Promise<Session> {
    // Groups start from the beginning of the fresh topic whenever they first fetch.
    const topic = `cmp-${sizeBytes}-${label}-${++this.sessions}`;
    const urls = this.urls;
    const o = this.options;
    await new Producer({ brokers: urls }).createTopic(topic);
    const producers = Array.from(
      { length: label === 'paced' ? 1 : o.producers },
      () =>
        new Producer({
          brokers: urls,
          batchMessages: o.batchMessages,
          // Batches of batchMessages at every size, as the ceiling's INSERTs (the SDK's default
          // 1 MiB would cut them at 1,024 messages of 1 KiB: twice the commits per message).
          batchBytes: o.batchMessages * sizeBytes,
          maxInflight: o.maxInflight,
          lingerMs: o.lingerMs,
        }),
    );
    let next = 0;
    let stopped = false;
    let loops: Promise<void>[] = [];
    const consumers: Consumer[] = [];
    return {
      // Runs of `batchMessages` go to one producer, so its batches fill up as a real producer's do.
      publish: (value) =>
        producers[Math.floor(next++ / o.batchMessages) % producers.length]
          .send(topic, value)
          .then(() => undefined),
      startConsumers: async (groups: number, deliver: (group: number, values: Delivered) => void) => {
        stopped = false;
        consumers.length = 0;
        loops = Array.from({ length: groups }, async (_, g) => {
          const consumer = new Consumer({
            brokers: urls,
            topic,
            group: `g${g}`,
            maxMessages: o.fetchMessages,
            maxBytes: o.fetchBytes,
            waitMs: 250,
            commitIntervalMs: o.commitIntervalMs,
          });
          consumers.push(consumer);
          while (!stopped) {
            try {
              await consumer.run((batch) =>
                deliver(
                  g,
                  batch.map((m) => m.value),
                ),
              );
            } catch (err) {
              if (stopped) break;
              console.error(`mysqlmq consumer g${g}: ${(err as Error).message}`);
              await sleep(100);
            }
          }
          await consumer.close();
        });
      },
      stopConsumers: async () => {
        stopped = true;
        for (const c of consumers) c.stop();
        await Promise.all(loops);
      },
      close: async () => {
        await Promise.all(producers.map((p) => p.close()));
      },
    };
  }

  async stop(): Promise<void> {
    await this.stopBrokers();
  }
}
