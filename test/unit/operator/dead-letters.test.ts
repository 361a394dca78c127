import { describe, expect, it } from 'vitest';
import { deadLetterBody } from '../../../src/broker/dead-letters.js';
import { deadLetterMessage, parseDeadLetter } from '../../../src/operator/dead-letters/watch.js';

const copy = (reason: 'handler_failed' | 'not_committed', error: string | null) =>
  deadLetterBody({
    topic: 'orders',
    group: 'billing',
    shard: 'shard-1',
    message: { id: 41, publishedAt: 1_700_000_000_000, payload: Buffer.from('poison') },
    reason,
    deliveries: 3,
    error,
  });

describe('dead-letter Events', () => {
  it('read back what the broker writes into <topic>.dlq', () => {
    expect(parseDeadLetter(copy('handler_failed', 'boom'))).toEqual({
      topic: 'orders',
      group: 'billing',
      shard: 'shard-1',
      id: 41,
      reason: 'handler_failed',
      deliveries: 3,
      error: 'boom',
    });
    expect(parseDeadLetter('a message someone published by hand')).toBeUndefined();
    expect(parseDeadLetter('{"topic":"orders"}')).toBeUndefined();
  });

  it('say which message, which group, why, and where the copy is', () => {
    expect(deadLetterMessage(parseDeadLetter(copy('handler_failed', 'boom'))!)).toBe(
      'message shard-1/41 of topic orders set aside for group billing: the handler failed 3 times; last error: boom; the copy is in orders.dlq',
    );
    expect(deadLetterMessage(parseDeadLetter(copy('not_committed', null))!)).toBe(
      'message shard-1/41 of topic orders set aside for group billing: fetched 3 times without a commit; the copy is in orders.dlq',
    );
  });
});
