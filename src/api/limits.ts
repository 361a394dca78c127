/**
 * Limits the operator's validation and the broker must agree on. One place, because they drifted:
 * the validation once assumed an 8 MiB write batch after the broker's had become 1 MiB.
 */

/** The largest message body a broker accepts unless spec.brokers.maxMessageBytes says otherwise. */
export const DEFAULT_MAX_MESSAGE_BYTES = 1 << 20;

/**
 * The broker's write batch: whole publishes are added to one INSERT while it stays under this.
 * About a megabyte already amortises the per-statement cost; larger batches only raised the
 * broker's memory (each is held several times over: string, packet, socket).
 */
export const WRITE_BATCH_BYTES = 1 << 20;

/**
 * The smallest max_allowed_packet the brokers' INSERTs fit in: bytes go in as a hex literal (twice
 * their size), and a batch holds up to the larger of one message and the write batch.
 */
export function minMaxAllowedPacket(maxMessageBytes: number): number {
  return 2 * Math.max(maxMessageBytes, WRITE_BATCH_BYTES);
}
