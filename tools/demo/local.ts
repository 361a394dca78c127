#!/usr/bin/env node
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Consumer, Producer } from '../../src/client/index.js';
import { BrokerProcess } from '../local/broker-process.js';
import { LocalShards } from '../local/cluster.js';

/**
 * `bash hack/dev.sh demo-local`: the data plane alone, without Kubernetes or the operator, ready in
 * seconds: a 2-shard data plane (primary + semi-sync standby per shard, each its own mariadbd on a
 * loopback address, bootstrapped by the shard layer directly) and 2 broker processes, a short
 * produce/consume round trip through the SDK, then it waits for Ctrl-C and stops every child.
 * `--once` stops at once. (`make run` runs the operator: tools/demo/kube-run.ts.)
 */
const ADDRESS_PREFIX = '127.0.31';
const once = process.argv.includes('--once');

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mysqlmq-demo-'));
  const step = (text: string) => console.log(`==> ${text}`);
  step('starting 2 shards: a primary and a semi-sync standby mariadbd each');
  const shards = await LocalShards.start({ dir, shards: 2, addressPrefix: ADDRESS_PREFIX });
  const brokers: BrokerProcess[] = [];
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    step('stopping brokers and mariadbd instances');
    await Promise.all(brokers.map((b) => b.stop()));
    await shards.stop();
    await rm(dir, { recursive: true, force: true });
    step('stopped');
    process.exit(code);
  };
  process.once('SIGINT', () => void stop(0));
  process.once('SIGTERM', () => void stop(0));

  try {
    const routingFile = join(dir, 'routing.json');
    await BrokerProcess.writeRouting(routingFile, shards.routing());
    step('starting 2 brokers');
    for (let i = 0; i < 2; i++) {
      brokers.push(
        await BrokerProcess.start({
          host: `${ADDRESS_PREFIX}.${101 + i}`,
          port: 8080,
          routingFile,
          db: shards.secrets.broker,
        }),
      );
    }
    const urls = brokers.map((b) => b.url);

    step('publishing 10 messages with the SDK, two per request, round-robin over the shards');
    const producer = new Producer({ brokers: urls });
    await producer.createTopic('demo');
    for (let i = 0; i < 10; i += 2) {
      const acks = await producer.sendBatch('demo', [`hello ${i}`, `hello ${i + 1}`]);
      for (const ack of acks) console.log(`    stored on ${ack.shard} as id ${ack.id}`);
    }

    step('consuming them as group "demo-readers"');
    const consumer = new Consumer({ brokers: urls, topic: 'demo', group: 'demo-readers', waitMs: 500 });
    let received = 0;
    for (let i = 0; i < 10 && received < 10; i++) {
      for (const m of await consumer.poll()) {
        console.log(`    ${m.shard}#${m.id}: ${m.value}`);
        received++;
      }
      await consumer.commit();
    }
    await consumer.close();

    console.log(`
The data plane is running.
  brokers:   ${urls.join('  ')}
  shards:    ${shards.shards.map((s) => `${s.name} primary ${s.primary.endpoint.host}:3306, standby ${s.standby.endpoint.host}:3306`).join('\n             ')}
  metrics:   ${urls[0]}/metrics

Try (in another terminal, after "npm run build"):
  export MQ_BROKERS=${urls.join(',')}
  node dist/cli/main.js topics
  node dist/cli/main.js produce demo "a message" "another one"
  node dist/cli/main.js consume demo --group cli-readers
  node dist/cli/main.js offsets demo --group cli-readers
  node dist/cli/main.js status

Press Ctrl-C to stop everything.`);
    if (once) await stop(0);
  } catch (err) {
    console.error(`demo failed: ${(err as Error).message}`);
    await stop(1);
  }
}

void main();
