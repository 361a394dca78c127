/**
 * Node options the broker process is meant to run with: in its Pod's command and in the
 * benchmarks. A heap ceiling makes V8 collect early the large strings that publishes leave behind
 * (request bodies, INSERT statements), which it otherwise lets pile up in the old generation:
 * about 220 -> 165 MiB resident at full load with 1 KiB messages, for about a fifth more broker
 * CPU while producing. The live heap stays far below the ceiling: publish bodies in flight are
 * capped (maxPublishBytesInFlight) and fetch answers live in Buffers, outside the heap.
 */
export const BROKER_NODE_OPTIONS: readonly string[] = ['--max-old-space-size=128'];
