import { MESSAGE_COLUMN_MAX_BYTES } from '../shard/schema.js';

/*
 * Sizes the broker accepts, derived from one another so that nothing it accepts can fail later
 * in MariaDB (a message larger than its column, an INSERT larger than max_allowed_packet).
 */

/** Messages of one publish (the broker's default; the operator sizes max_allowed_packet for it). */
export const MAX_MESSAGES_PER_PUBLISH = 10_000;

/**
 * Fetch, offset commit and topic bodies: shard ids, numbers and the handler errors a fetch reports
 * (`failed`), far below what a heap of 128 MiB parses without trouble (12 MiB of positions did not).
 */
export const SMALL_BODY_BYTES = 1 << 20;
/** A routing document names every shard's instances; 64 shards fit many times over. */
export const ROUTING_BODY_BYTES = 1 << 20;

/** Per row of the multi-row INSERT beyond its payload: `(@mq_now,_binary'...')` and a comma. */
const INSERT_ROW_OVERHEAD = 32;

export interface PublishLimits {
  /** Sum of the payloads of one publish. */
  payloadBytes: number;
  /** The publish body: frames or JSON around the payloads, escaping, base64. */
  bodyBytes: number;
  /**
   * A body without Content-Length (chunked): the broker cannot reserve its size in the publish
   * budget before reading it, so it reserves this much and refuses larger ones with 411.
   */
  chunkedBodyBytes: number;
}

export function publishLimits(maxMessageBytes: number): PublishLimits {
  const payloadBytes = Math.max(4 << 20, maxMessageBytes);
  return {
    payloadBytes,
    bodyBytes: 3 * payloadBytes,
    chunkedBodyBytes: 2 * maxMessageBytes + (1 << 20),
  };
}

/**
 * The largest INSERT a broker sends: one publish at its payload limit, every byte escaped (twice
 * its size), or a batch of smaller publishes that together stay under it.
 */
export function maxInsertBytes(maxMessageBytes: number, maxMessagesPerPublish: number): number {
  return 2 * publishLimits(maxMessageBytes).payloadBytes + maxMessagesPerPublish * INSERT_ROW_OVERHEAD + 1024;
}

/** Refuses a configuration whose limits MariaDB could not hold; returns the problems. */
export function checkSizeLimits(
  maxMessageBytes: number,
  maxMessagesPerPublish: number,
  maxAllowedPacket: number,
): string[] {
  const problems: string[] = [];
  if (maxMessageBytes > MESSAGE_COLUMN_MAX_BYTES) {
    problems.push(
      `maxMessageBytes ${maxMessageBytes} is more than a message column holds (${MESSAGE_COLUMN_MAX_BYTES})`,
    );
  }
  const insert = maxInsertBytes(maxMessageBytes, maxMessagesPerPublish);
  if (insert > maxAllowedPacket) {
    problems.push(`the largest INSERT (${insert} bytes) would pass max_allowed_packet (${maxAllowedPacket})`);
  }
  return problems;
}
