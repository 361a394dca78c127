import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/broker/broker.js';
import { Consumer, Producer } from '../../src/client/index.js';
import type { LocalShards } from '../../tools/local/cluster.js';
import { ADMIN_TOKEN, post, startBroker, startShards } from '../support/dataplane.js';

let cluster: LocalShards;
let broker: Broker;
let acknowledged: string[] = [];

beforeAll(async () => {
  cluster = await startShards('127.0.22');
  broker = await startBroker(cluster, { maxMessageBytes: 1024 });
  const producer = new Producer({ brokers: [broker.url] });
  await producer.createTopic('safe');
  acknowledged = Array.from({ length: 20 }, (_, i) => `kept-${i}`);
  await producer.sendBatch('safe', acknowledged);
});

afterAll(async () => {
  await broker?.close();
  await cluster?.destroy();
});

const publishUrl = (topic: string) => `${broker.url}/v1/topics/${topic}/messages`;

describe('bad requests get a 4xx with {code, message} and the broker keeps serving', () => {
  const cases: [string, () => Promise<{ status: number; body: any }>, number, string][] = [
    ['malformed JSON', () => post(publishUrl('safe'), '{"messages": [', {}), 400, 'malformed_json'],
    ['empty body', () => post(publishUrl('safe'), '', {}), 400, 'malformed_json'],
    ['a JSON array instead of an object', () => post(publishUrl('safe'), '[1,2]'), 400, 'invalid_request'],
    [
      'an unknown field',
      () => post(publishUrl('safe'), { messages: [{ value: 'a' }], priority: 1 }),
      400,
      'unknown_field',
    ],
    [
      'an unknown message field',
      () => post(publishUrl('safe'), { messages: [{ value: 'a', key: 'k' }] }),
      400,
      'unknown_field',
    ],
    [
      'a non-string value',
      () => post(publishUrl('safe'), { messages: [{ value: 5 }] }),
      400,
      'invalid_messages',
    ],
    ['no messages', () => post(publishUrl('safe'), { messages: [] }), 400, 'invalid_messages'],
    [
      'an upper-case topic',
      () => post(publishUrl('Orders'), { messages: [{ value: 'a' }] }),
      400,
      'invalid_topic',
    ],
    [
      'a topic starting with a dot',
      () => post(publishUrl('.hidden'), { messages: [{ value: 'a' }] }),
      400,
      'invalid_topic',
    ],
    [
      'a topic of 129 characters',
      () => post(publishUrl('a'.repeat(129)), { messages: [{ value: 'a' }] }),
      400,
      'invalid_topic',
    ],
    [
      'an unknown topic',
      () => post(publishUrl('nope'), { messages: [{ value: 'a' }] }),
      404,
      'topic_not_found',
    ],
    [
      'a message over the size limit',
      () => post(publishUrl('safe'), { messages: [{ value: 'x'.repeat(1025) }] }),
      413,
      'message_too_large',
    ],
    [
      'a bad encoding',
      () => post(publishUrl('safe'), { messages: [{ value: 'a' }], encoding: 'hex' }),
      400,
      'invalid_encoding',
    ],
    [
      'a missing consumer group',
      () => post(`${broker.url}/v1/topics/safe/groups//fetch`, { consumer: 'c' }),
      400,
      'missing_group',
    ],
    [
      'a bad group name',
      () => post(`${broker.url}/v1/topics/safe/groups/Bad Group/fetch`, { consumer: 'c' }),
      400,
      'invalid_group',
    ],
    [
      'a fetch without consumer id',
      () => post(`${broker.url}/v1/topics/safe/groups/g/fetch`, {}),
      400,
      'invalid_consumer',
    ],
    [
      'a fetch asking for too much',
      () => post(`${broker.url}/v1/topics/safe/groups/g/fetch`, { consumer: 'c', maxMessages: 1e6 }),
      400,
      'invalid_parameter',
    ],
    [
      'a negative offset commit',
      () => post(`${broker.url}/v1/topics/safe/groups/g/offsets`, { offsets: { 'shard-0': -1 } }),
      400,
      'invalid_offsets',
    ],
    ['a bad topic create', () => post(`${broker.url}/v1/topics`, { name: 'UPPER' }), 400, 'invalid_topic'],
    ['an unknown endpoint', () => post(`${broker.url}/v2/whatever`, {}), 404, 'not_found'],
    [
      'a POST where only PUT and GET are allowed',
      () => post(`${broker.url}/v1/admin/routing`, {}),
      405,
      'method_not_allowed',
    ],
  ];

  it.each(cases)('%s', async (_name, send, status, code) => {
    const res = await send();
    expect(res.status).toBe(status);
    expect(res.body.code).toBe(code);
    expect(typeof res.body.message).toBe('string');
    expect(res.body.message.length).toBeGreaterThan(5);
  });

  it('refuses a request body far over the limit with 413', async () => {
    const huge = JSON.stringify({ messages: [{ value: 'y'.repeat(20 << 20) }] });
    const res = await fetch(publishUrl('safe'), { method: 'POST', body: huge });
    expect(res.status).toBe(413);
    expect((await res.json()).code).toBe('request_too_large');
  });

  it('rejects a routing update with a wrong token or a malformed document', async () => {
    const put = (body: unknown, token: string) =>
      fetch(`${broker.url}/v1/admin/routing`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${token}` },
        body: JSON.stringify(body),
      });
    expect((await put(cluster.routing(2), 'wrong')).status).toBe(401);
    const bad = await put(
      { version: 3, shards: [{ name: 'Bad Name', write: null, read: null }] },
      ADMIN_TOKEN,
    );
    expect(bad.status).toBe(400);
    expect((await bad.json()).code).toBe('invalid_routing');
    expect(broker.router.version).toBe(1);
  });

  it('still delivers every acknowledged message after all that', async () => {
    const consumer = new Consumer({
      brokers: [broker.url],
      topic: 'safe',
      group: 'after-abuse',
      waitMs: 300,
    });
    const got: string[] = [];
    for (let i = 0; i < 20 && got.length < acknowledged.length; i++) {
      got.push(...(await consumer.poll()).map((m) => String(m.value)));
    }
    expect(got.sort()).toEqual([...acknowledged].sort());
    await consumer.close();
  });
});
