import { describe, expect, it } from 'vitest';
import { insertSql } from '../../../src/bench/compare/systems/ceiling.js';

describe('the ceiling INSERT', () => {
  it('renders every payload as a hex literal with the batch time stamp', () => {
    expect(
      insertSql('mq.m_9', 1700000000123.7, [{ payload: Buffer.from('ab') }, { payload: Buffer.from("'\\") }]),
    ).toBe(
      "INSERT INTO mq.m_9 (published_at, payload) VALUES (1700000000123,X'6162'),(1700000000123,X'275c')",
    );
  });
});
