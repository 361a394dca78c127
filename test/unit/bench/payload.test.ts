import { describe, expect, it } from 'vitest';
import { MIN_PAYLOAD_BYTES, readStamp, stampedPayload } from '../../../tools/bench/compare/payload.js';

describe('stamped payloads', () => {
  it('are exactly the requested size in bytes and carry their time stamp', () => {
    for (const size of [MIN_PAYLOAD_BYTES, 256, 1024]) {
      const p = stampedPayload(size, 12345.6789);
      expect(Buffer.byteLength(p)).toBe(size);
      expect(readStamp(p)).toBe(12345.679);
    }
  });

  it('read back from a Buffer, a Uint8Array view and a latin1 round trip', () => {
    const p = stampedPayload(256, 987654321.125);
    const buf = Buffer.from(p, 'latin1');
    expect(readStamp(buf)).toBe(987654321.125);
    const view = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    expect(readStamp(view)).toBe(987654321.125);
    // A Buffer that is a slice of a larger allocation.
    const big = Buffer.concat([Buffer.from('junk'), buf]);
    expect(readStamp(big.subarray(4))).toBe(987654321.125);
  });

  it('is NaN for a value without a stamp', () => {
    expect(readStamp('hello')).toBeNaN();
    expect(readStamp('x'.repeat(64))).toBeNaN();
    expect(readStamp(Buffer.alloc(3))).toBeNaN();
  });

  it('refuses sizes too small for the stamp and stamps out of range', () => {
    expect(() => stampedPayload(MIN_PAYLOAD_BYTES - 1, 1)).toThrow(RangeError);
    expect(() => stampedPayload(256.5, 1)).toThrow(RangeError);
    expect(() => stampedPayload(256, -1)).toThrow(RangeError);
    expect(() => stampedPayload(256, 1e12)).toThrow(RangeError);
  });
});
