import { describe, expect, it } from 'vitest';
import { parseMemoryMetrics } from '../../../tools/bench/compare/memory.js';

describe('broker memory from /metrics', () => {
  it('reads resident memory, the V8 heap, its spaces and external memory in MiB', () => {
    const text = [
      '# HELP mq_broker_process_resident_memory_bytes Resident memory size in bytes.',
      'mq_broker_process_resident_memory_bytes 231735296',
      'mq_broker_nodejs_heap_size_total_bytes 157286400',
      'mq_broker_nodejs_heap_size_used_bytes 104857600',
      'mq_broker_nodejs_external_memory_bytes 20971520',
      'mq_broker_nodejs_heap_space_size_total_bytes{space="new"} 33554432',
      'mq_broker_nodejs_heap_space_size_total_bytes{space="old"} 104857600',
    ].join('\n');
    expect(parseMemoryMetrics(text)).toEqual({
      rssMiB: 221,
      heapTotalMiB: 150,
      heapUsedMiB: 100,
      externalMiB: 20,
      spaces: { new: 32, old: 100 },
    });
  });

  it('gives NaN for figures the page lacks', () => {
    expect(parseMemoryMetrics('').rssMiB).toBeNaN();
  });
});
