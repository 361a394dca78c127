/**
 * Defaults the operator and the broker must agree on. The sizes derived from them (largest
 * INSERT, body limits) are src/broker/limits.ts's, which the operator's validation reads.
 */

/** The largest message body a broker accepts unless spec.brokers.maxMessageBytes says otherwise. */
export const DEFAULT_MAX_MESSAGE_BYTES = 1 << 20;

/**
 * The broker's write batch: whole publishes are added to one INSERT while it stays under this.
 * About a megabyte already amortises the per-statement cost; larger batches only raised the
 * broker's memory (each is held several times over: string, packet, socket).
 */
export const WRITE_BATCH_BYTES = 1 << 20;
