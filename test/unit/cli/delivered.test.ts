import { describe, expect, it } from 'vitest';
import { DeliveryTracker } from '../../../src/cli/delivered.js';

describe('DeliveryTracker', () => {
  it('counts a line written to a file as delivered at once', () => {
    const t = new DeliveryTracker(0);
    t.wrote('shard-0', 1, 10);
    t.wrote('shard-1', 4, 10);
    expect(t.takeDelivered()).toEqual({ 'shard-0': 1, 'shard-1': 4 });
    expect(t.takeDelivered()).toEqual({});
  });

  it('counts a line written into a pipe only once more than the pipe holds followed it', () => {
    const t = new DeliveryTracker(100);
    t.wrote('shard-0', 1, 10);
    t.wrote('shard-0', 2, 60);
    t.wrote('shard-0', 3, 39);
    expect(t.takeDelivered()).toEqual({});
    t.wrote('shard-0', 4, 1); // 100 bytes after line 1 ended
    expect(t.takeDelivered()).toEqual({ 'shard-0': 1 });
    t.flushed();
    expect(t.takeDelivered()).toEqual({ 'shard-0': 4 });
  });
});
