/** The memory figures of a broker's /metrics page (prom-client default metrics). Pure. */

/** Memory figures a broker exports on /metrics (prom-client's default metrics), in MiB. */
export interface MemorySample {
  rssMiB: number;
  heapTotalMiB: number;
  heapUsedMiB: number;
  externalMiB: number;
  spaces: Record<string, number>;
}

const MiB = 2 ** 20;

export function parseMemoryMetrics(text: string): MemorySample {
  const metric = (name: string) =>
    Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  const spaces: Record<string, number> = {};
  for (const m of text.matchAll(
    /^mq_broker_nodejs_heap_space_size_total_bytes\{space="([^"]+)"\} (\S+)$/gm,
  )) {
    spaces[m[1]] = Math.round(Number(m[2]) / MiB);
  }
  return {
    rssMiB: Math.round(metric('mq_broker_process_resident_memory_bytes') / MiB),
    heapTotalMiB: Math.round(metric('mq_broker_nodejs_heap_size_total_bytes') / MiB),
    heapUsedMiB: Math.round(metric('mq_broker_nodejs_heap_size_used_bytes') / MiB),
    externalMiB: Math.round(metric('mq_broker_nodejs_external_memory_bytes') / MiB),
    spaces,
  };
}
