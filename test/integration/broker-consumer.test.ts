import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/broker/broker.js';
import { Consumer, type Message, Producer } from '../../src/client/index.js';
import type { LocalShards } from '../../tools/local/cluster.js';
import { waitFor } from '../../tools/local/wait.js';
import {
  ADMIN_TOKEN,
  committedOffsets,
  post,
  sampleIn,
  startBroker,
  startShards,
} from '../support/dataplane.js';

const run = promisify(execFile);

/**
 * Consumer groups through one broker: what Consumer.run commits and redelivers, who may commit
 * what, and dead letters (maxDeliveries).
 */
let cluster: LocalShards;
let broker: Broker;

beforeAll(async () => {
  cluster = await startShards('127.0.73');
  broker = await startBroker(cluster);
});

afterAll(async () => {
  await broker?.close();
  await cluster?.destroy();
});

const lastIds = (messages: Message[]) => Object.fromEntries(messages.map((m) => [m.shard, m.id]));

describe('Consumer.run', () => {
  it('commits a handled batch with the next fetch, and the last one when it stops', async () => {
    const topic = 'run-commits';
    const producer = new Producer({ brokers: [broker.url] });
    await producer.createTopic(topic);
    await producer.sendBatch(topic, ['a']);
    const consumer = new Consumer({ brokers: [broker.url], topic, group: 'g', waitMs: 100 });
    const batches: Message[][] = [];
    const seenAtSecond: Record<string, number>[] = [];
    await consumer.run(async (messages) => {
      batches.push(messages);
      if (batches.length === 1) {
        await producer.sendBatch(topic, ['b']);
        return;
      }
      // This batch came with the fetch that committed the first one.
      seenAtSecond.push(await committedOffsets(broker.url, topic, 'g'));
      consumer.stop();
    });
    expect(batches.map((b) => b.map((m) => m.value))).toEqual([['a'], ['b']]);
    expect(seenAtSecond[0]).toMatchObject(lastIds(batches[0]));
    expect(await committedOffsets(broker.url, topic, 'g')).toMatchObject(lastIds(batches[1]));
    await consumer.close();
  });

  it('with commitIntervalMs, commits beside the fetches at most that often, and all it handled when it stops', async () => {
    const topic = 'run-commit-interval';
    const producer = new Producer({ brokers: [broker.url] });
    await producer.createTopic(topic);
    await producer.sendBatch(topic, ['a']);
    const consumer = new Consumer({
      brokers: [broker.url],
      topic,
      group: 'g',
      waitMs: 100,
      commitIntervalMs: 60_000,
    });
    const batches: Message[][] = [];
    const committedAt: Record<string, number>[] = [];
    await consumer.run(async (messages) => {
      batches.push(messages);
      // The first batch is committed at once (no commit yet), beside the next fetch.
      if (batches.length === 2) {
        const first = lastIds(batches[0]);
        await waitFor(
          'the first batch committed',
          async () => {
            const committed = await committedOffsets(broker.url, topic, 'g');
            return Object.entries(first).every(([shard, id]) => committed[shard] === id);
          },
          5000,
          50,
        );
      }
      committedAt.push(await committedOffsets(broker.url, topic, 'g'));
      if (batches.length < 3) await producer.sendBatch(topic, [`after ${batches.length}`]);
      else consumer.stop();
    });
    expect(batches.map((b) => b.map((m) => m.value))).toEqual([['a'], ['after 1'], ['after 2']]);
    // The second waits for the interval.
    expect(committedAt[2]).toEqual(committedAt[1]);
    expect(await committedOffsets(broker.url, topic, 'g')).toMatchObject(lastIds(batches[2]));
    await consumer.close();
  });

  it('hands a batch whose handler threw over again, and commits nothing past it', async () => {
    const topic = 'run-throws';
    const producer = new Producer({ brokers: [broker.url] });
    await producer.createTopic(topic);
    await producer.sendBatch(topic, ['first']);
    const errors: unknown[] = [];
    const consumer = new Consumer({
      brokers: [broker.url],
      topic,
      group: 'g',
      waitMs: 100,
      onError: (err) => errors.push(err),
    });
    const values: string[] = [];
    await consumer.run(async (messages) => {
      values.push(...messages.map((m) => String(m.value)));
      if (values.length === 1) throw new Error('handler failed');
      consumer.stop();
    });
    expect(values).toEqual(['first', 'first']);
    expect(errors.map((e) => (e as Error).message)).toEqual(['handler failed']);
    await consumer.close();
  });

  it('starts a run after a failed, stopped one with the batch that failed', async () => {
    const topic = 'run-rerun';
    const producer = new Producer({ brokers: [broker.url] });
    await producer.createTopic(topic);
    await producer.sendBatch(topic, ['one', 'two']);
    const consumer = new Consumer({ brokers: [broker.url], topic, group: 'g', waitMs: 100 });
    const failed: Message[][] = [];
    await consumer.run((messages) => {
      failed.push(messages);
      consumer.stop();
      throw new Error('handler failed');
    });
    const again: Message[][] = [];
    await consumer.run((messages) => {
      again.push(messages);
      consumer.stop();
    });
    expect(failed).toHaveLength(1);
    expect(again).toEqual(failed);
    expect(await committedOffsets(broker.url, topic, 'g')).toMatchObject(lastIds(again[0]));
    await consumer.close();
  });
});

const offsetsUrl = (topic: string, group: string) =>
  `${broker.url}/v1/topics/${topic}/groups/${group}/offsets`;

describe('offset commits', () => {
  it('come only from the consumer holding the shard, and never past the newest message', async () => {
    const topic = 'commit-checks';
    const producer = new Producer({ brokers: [broker.url] });
    await producer.createTopic(topic);
    const [ack] = await producer.sendBatch(topic, ['m']);
    const holder = new Consumer({
      brokers: [broker.url],
      topic,
      group: 'g',
      waitMs: 100,
      consumerId: 'holder',
    });
    expect((await holder.poll()).map((m) => m.value)).toEqual(['m']);

    const foreign = await post(offsetsUrl(topic, 'g'), {
      consumer: 'intruder',
      offsets: { [ack.shard]: ack.id },
    });
    expect(foreign.status).toBe(409);
    expect(foreign.body).toMatchObject({ code: 'not_lease_holder' });
    expect(foreign.body.message).toContain('holder');

    const past = await post(offsetsUrl(topic, 'g'), {
      consumer: 'holder',
      offsets: { [ack.shard]: Number.MAX_SAFE_INTEGER },
    });
    expect(past.status).toBe(422);
    expect(past.body).toMatchObject({ code: 'offset_out_of_range' });

    const anonymous = await post(offsetsUrl(topic, 'g'), { offsets: { [ack.shard]: ack.id } });
    expect(anonymous.status).toBe(400);
    expect(anonymous.body).toMatchObject({ code: 'invalid_consumer' });

    // Along with a fetch, a refused commit is reported in the answer.
    const fetched = await post(`${broker.url}/v1/topics/${topic}/groups/g/fetch`, {
      consumer: 'intruder',
      commit: { [ack.shard]: ack.id },
      waitMs: 0,
    });
    expect(fetched.status).toBe(200);
    expect(fetched.body.commitError).toMatchObject({ status: 409, code: 'not_lease_holder' });
    expect((await committedOffsets(broker.url, topic, 'g'))[ack.shard]).toBe(0);

    await holder.commit();
    expect((await committedOffsets(broker.url, topic, 'g'))[ack.shard]).toBe(ack.id);
    await holder.close();
  });
});

describe('dead letters', () => {
  async function readDlq(topic: string): Promise<Record<string, unknown>[]> {
    const reader = new Consumer({ brokers: [broker.url], topic: `${topic}.dlq`, group: 'ops', waitMs: 100 });
    const got = await reader.poll();
    await reader.close();
    return got.map((m) => JSON.parse(String(m.value)) as Record<string, unknown>);
  }

  it('sets aside a message its handler always throws for; its shard and the other keep flowing', async () => {
    const topic = 'poison';
    const producer = new Producer({ brokers: [broker.url] });
    expect(await producer.createTopic(topic, { maxDeliveries: 3 })).toEqual({ name: topic, created: true });
    // Each publish goes to one shard (the next one each time): the poison one in the middle of the
    // first shard's messages, the other shard's around it.
    const values = Array.from({ length: 30 }, (_, i) => (i === 7 ? 'poison' : `ok${i}`));
    const acks = [
      ...(await producer.sendBatch(topic, values.slice(0, 20))),
      ...(await producer.sendBatch(topic, values.slice(20))),
    ];
    expect(new Set(acks.map((a) => a.shard)).size).toBe(2);
    const consumer = new Consumer({ brokers: [broker.url], topic, group: 'g', waitMs: 100 });
    const handled = new Set<string>();
    let poisonCalls = 0;
    const deadline = Date.now() + 60_000;
    await consumer.run((messages) => {
      if (Date.now() > deadline) consumer.stop();
      if (messages.some((m) => m.value === 'poison')) {
        if (messages.length === 1) poisonCalls++;
        throw new Error('cannot handle poison');
      }
      for (const m of messages) handled.add(String(m.value));
      if (handled.size === values.length - 1) consumer.stop();
    });
    expect([...handled].sort()).toEqual(values.filter((v) => v !== 'poison').sort());
    expect(poisonCalls).toBe(3);
    await consumer.close();

    const [dead, ...more] = await readDlq(topic);
    expect(more).toEqual([]);
    expect(dead).toMatchObject({
      topic,
      group: 'g',
      value: 'poison',
      reason: 'handler_failed',
      deliveries: 3,
      error: 'cannot handle poison',
    });
    const metrics = await (await fetch(`${broker.url}/metrics`)).text();
    expect(metrics).toContain('mq_broker_dead_lettered_messages_total{topic="poison",group="g"} 1');
  });

  it('takes maxDeliveries from mqctl topics create (built: dist/cli)', async () => {
    const { stdout } = await run(process.execPath, [
      'dist/cli/main.js',
      '--brokers',
      broker.url,
      'topics',
      'create',
      'from-cli',
      '--max-deliveries',
      '4',
    ]);
    expect(stdout).toContain('created topic from-cli');
    const res = await fetch(`${broker.url}/v1/topics/from-cli`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      body: JSON.stringify({ settings: {} }),
    });
    expect(await res.json()).toEqual({ name: 'from-cli', settings: { maxDeliveries: 4 } });
  });

  it('sets aside a message fetched and never committed maxDeliveries times', async () => {
    const topic = 'never-committed';
    const producer = new Producer({ brokers: [broker.url] });
    await producer.createTopic(topic);
    const patch = (body: unknown, token = ADMIN_TOKEN) =>
      fetch(`${broker.url}/v1/topics/${topic}`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${token}` },
        body: JSON.stringify(body),
      });
    expect((await patch({ settings: { maxDeliveries: 2 } }, 'wrong')).status).toBe(401);
    expect((await patch({ settings: { maxDeliveries: -1 } })).status).toBe(400);
    const res = await patch({ settings: { maxDeliveries: 2 } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ name: topic, settings: { maxDeliveries: 2 } });
    await producer.sendBatch(topic, ['x']);

    // Each consumer fetches it and goes away without committing.
    const deliveries: string[][] = [];
    for (let i = 0; i < 3; i++) {
      const consumer = new Consumer({ brokers: [broker.url], topic, group: 'g', waitMs: 100 });
      deliveries.push((await consumer.poll()).map((m) => String(m.value)));
      await fetch(`${broker.url}/v1/topics/${topic}/groups/g/consumers/${consumer.consumerId}`, {
        method: 'DELETE',
      });
    }
    expect(deliveries).toEqual([['x'], ['x'], []]);
    expect(await readDlq(topic)).toMatchObject([{ value: 'x', reason: 'not_committed', deliveries: 2 }]);
  });
});

describe('request metrics', () => {
  const bucket = (page: string, route: string, le: string) =>
    sampleIn(page, `mq_broker_http_request_seconds_bucket{le="${le}",route="${route}"}`);
  const scrape = async () => (await fetch(`${broker.url}/metrics`)).text();

  it('time each request by route, a fetch with its long-poll wait', async () => {
    const topic = 'request-seconds';
    const producer = new Producer({ brokers: [broker.url] });
    await producer.createTopic(topic);
    const before = await scrape();
    await producer.sendBatch(topic, ['a']);
    const consumer = new Consumer({ brokers: [broker.url], topic, group: 'g', waitMs: 300 });
    expect((await consumer.poll()).map((m) => m.value)).toEqual(['a']);
    // Nothing more to read: this fetch waits out its 300 ms.
    expect(await consumer.poll()).toEqual([]);
    const after = await scrape();
    await consumer.close();

    const added = (route: string, le: string) => bucket(after, route, le) - bucket(before, route, le);
    expect(added('POST /v1/topics/messages', '+Inf')).toBe(1);
    expect(added('POST /v1/topics/groups/fetch', '+Inf')).toBe(2);
    // The fetch with messages answered at once; the empty one only after its wait.
    expect(added('POST /v1/topics/groups/fetch', '0.25')).toBe(1);
    expect(added('POST /v1/topics/groups/fetch', '0.5')).toBe(2);
  });
});
