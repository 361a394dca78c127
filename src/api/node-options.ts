/**
 * Node options the broker process is meant to run with: in its Pod's command and in the
 * benchmarks. A heap ceiling makes V8 collect early the large strings that publishes leave behind
 * (request bodies, INSERT statements), which it otherwise lets pile up in the old generation, and
 * a smaller young generation (4 MiB semi-spaces, default 16) keeps less garbage between
 * scavenges. With 1 KiB messages at full load: about 240 -> 140 MiB resident with 8 MiB
 * semi-spaces, for 10-20 % more broker CPU. Since publishes are framed they leave few strings
 * behind, and the largest broker at 1 KiB grew from 179 to 193 MiB: fewer scavenges, so Buffers
 * outside the heap (freed only once a collection finds their wrappers dead) likely wait longer.
 * 4 MiB brought it to 172 MiB, with no CPU difference beyond the noise (docs/benchmarks.md,
 * "Issue 12, round 5"). The live heap stays far below the ceiling:
 * publish bodies in flight are capped (maxPublishBytesInFlight) and fetch answers live in
 * Buffers, outside the heap.
 */
export const BROKER_NODE_OPTIONS: readonly string[] = ['--max-old-space-size=128', '--max-semi-space-size=4'];
