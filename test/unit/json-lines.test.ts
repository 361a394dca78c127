import { describe, expect, it } from 'vitest';
import { CHUNK_BYTES, encodeJsonLines, parseJsonLines } from '../../src/common/json-lines.js';

const message = (i: number, value: string) => ({
  shard: `shard-${i % 2}`,
  id: i,
  publishedAt: 1_700_000_000_000 + i,
  value,
});

describe('JSON with one element per line', () => {
  it('is plain JSON to any reader, and every element starts a line', () => {
    const elements = [message(1, 'a'), message(2, 'quote " back \\ nl \n é 🎉 \u0001')];
    const body = encodeJsonLines(
      'messages',
      elements.map((e) => JSON.stringify(e)),
      { positions: { 'shard-0': 2 }, heldElsewhere: [], commitError: undefined },
    );
    expect(JSON.parse(body.toString())).toEqual({
      messages: elements,
      positions: { 'shard-0': 2 },
      heldElsewhere: [],
    });
    expect(body.toString().split('\n')).toHaveLength(4);
    expect(encodeJsonLines('messages', []).toString()).toBe('{"messages":[]}');
  });

  it('takes elements as text or as UTF-8 bytes', () => {
    const text = encodeJsonLines('messages', ['{"value":"é"}', Buffer.from('{"value":"🎉"}')]);
    expect(JSON.parse(text.toString())).toEqual({ messages: [{ value: 'é' }, { value: '🎉' }] });
  });

  it('reads back what JSON.parse reads, for bodies far larger than a chunk', () => {
    // Small and large values, multi-byte text, one element larger than a chunk on its own.
    const elements = Array.from({ length: 3000 }, (_, i) =>
      message(i, i === 1234 ? 'x'.repeat(CHUNK_BYTES * 2) : `${'é'.repeat(i % 50)}${'v'.repeat(i % 400)}\n`),
    );
    const body = encodeJsonLines(
      'messages',
      elements.map((e) => JSON.stringify(e)),
      { encoding: 'base64' },
    );
    expect(body.length).toBeGreaterThan(CHUNK_BYTES * 10);
    expect(parseJsonLines(body)).toEqual(JSON.parse(body.toString()));
    expect((parseJsonLines(body) as { messages: unknown[] }).messages).toHaveLength(3000);
  });

  it('reads any other JSON as JSON.parse does, and fails where it fails', () => {
    const pretty = Buffer.from(
      JSON.stringify(
        { messages: Array.from({ length: 2000 }, (_, i) => message(i, 'v'.repeat(40))) },
        null,
        2,
      ),
    );
    expect(pretty.length).toBeGreaterThan(CHUNK_BYTES);
    expect(parseJsonLines(pretty)).toEqual(JSON.parse(pretty.toString()));
    const broken = Buffer.concat([
      encodeJsonLines('messages', Array(2000).fill('{"value":"abcdefghijklmnopqrstuvwxyz0123456789"}')),
      Buffer.from('x'),
    ]);
    expect(() => parseJsonLines(broken)).toThrow(SyntaxError);
    expect(parseJsonLines(Buffer.from('{"code":"x","message":"y"}'))).toEqual({ code: 'x', message: 'y' });
  });
});
