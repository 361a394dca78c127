import type { TopicSettings } from '../api/topic-settings.js';
import { MqError, badRequest } from '../common/errors.js';
import { parseJsonLines } from '../common/json-lines.js';
import { FRAME_HEADER_BYTES } from '../common/message-frames.js';
import { GROUP_NAME_PATTERN, TOPIC_NAME_PATTERN } from '../shard/schema.js';
import type { ResetTarget } from '../api/groups.js';
import type { HandlerFailure } from './fetcher.js';
import type { Payload } from './queue-store.js';
import { asObject, onlyKeys } from '../api/json-shape.js';

/** Request bodies as the broker accepts them; every parser is pure and throws a 4xx MqError. */
export type Encoding = 'utf8' | 'base64';

export interface RequestLimits {
  maxMessageBytes: number;
  maxMessagesPerPublish: number;
}

export const FETCH_DEFAULTS = { maxMessages: 500, maxBytes: 1 << 20, waitMs: 1000 };
export const FETCH_LIMITS = { maxMessages: 10_000, maxBytes: 64 << 20, waitMs: 30_000 };

export function parseJson(body: Buffer): unknown {
  if (body.length === 0) throw badRequest('malformed_json', 'request body is empty; send a JSON object');
  try {
    return parseJsonLines(body);
  } catch (err) {
    throw badRequest('malformed_json', `request body is not valid JSON: ${(err as Error).message}`);
  }
}

export function checkTopicName(name: unknown): string {
  if (typeof name !== 'string' || !TOPIC_NAME_PATTERN.test(name)) {
    throw badRequest(
      'invalid_topic',
      `topic name ${JSON.stringify(name)} must match ${TOPIC_NAME_PATTERN.source} (lower-case letters, digits, '.', '_', '-'; at most 128)`,
    );
  }
  return name;
}

export function checkGroupName(name: unknown): string {
  if (name === undefined || name === '') throw badRequest('missing_group', 'a consumer group is required');
  if (typeof name !== 'string' || !GROUP_NAME_PATTERN.test(name)) {
    throw badRequest(
      'invalid_group',
      `consumer group ${JSON.stringify(name)} must match ${GROUP_NAME_PATTERN.source}`,
    );
  }
  return name;
}

export interface CreateTopic {
  name: string;
  /** Settings of a topic this request creates (PATCH changes those of an existing one). */
  settings?: SettingsPatch;
}

export function parseCreateTopic(body: unknown): CreateTopic {
  const obj = asObject(body, 'body');
  onlyKeys(obj, ['name', 'settings'], 'body');
  const name = checkTopicName(obj.name);
  return { name, settings: obj.settings === undefined ? undefined : parseSettingsPatch(obj.settings, name) };
}

/** Settings to set (a number) or to remove (null), see src/api/topic-settings.ts. */
export type SettingsPatch = { [K in keyof TopicSettings]?: number | null };

const SETTING_KEYS: readonly (keyof TopicSettings)[] = [
  'retentionMaxAgeHours',
  'retentionMaxBytesPerShard',
  'maxDeliveries',
  'maxMessageBytes',
];

export function parseSettingsPatch(value: unknown, topic: string): SettingsPatch {
  const obj = asObject(value, 'settings');
  onlyKeys(obj, [...SETTING_KEYS], 'settings');
  const patch: SettingsPatch = {};
  for (const key of SETTING_KEYS) {
    const v = obj[key];
    if (v === undefined) continue;
    if (v !== null && (!Number.isSafeInteger(v) || (v as number) <= 0)) {
      throw badRequest(
        'invalid_settings',
        `settings.${key} must be a positive integer, or null to remove it`,
      );
    }
    patch[key] = v as number | null;
  }
  if (patch.maxDeliveries && !TOPIC_NAME_PATTERN.test(`${topic}.dlq`)) {
    throw badRequest(
      'invalid_settings',
      `maxDeliveries needs a dead-letter topic "${topic}.dlq", which is longer than 128 characters`,
    );
  }
  return patch;
}

export function parseTopicPatch(body: unknown, topic: string): SettingsPatch {
  const obj = asObject(body, 'body');
  onlyKeys(obj, ['settings'], 'body');
  if (obj.settings === undefined)
    throw badRequest('invalid_settings', 'settings is required: {"settings": {...}}');
  return parseSettingsPatch(obj.settings, topic);
}

function parseEncoding(value: unknown): Encoding {
  if (value === undefined || value === 'utf8') return 'utf8';
  if (value === 'base64') return 'base64';
  throw badRequest('invalid_encoding', 'encoding must be "utf8" or "base64"');
}

export interface Publish {
  /** UTF-8 text stays the string it arrived as (it is written to the INSERT as is); base64 is decoded. */
  payloads: Payload[];
  /** Sum of the payloads' sizes in bytes. */
  bytes: number;
}

export function parsePublish(body: unknown, limits: RequestLimits): Publish {
  const obj = asObject(body, 'body');
  onlyKeys(obj, ['messages', 'encoding'], 'body');
  const encoding = parseEncoding(obj.encoding);
  if (!Array.isArray(obj.messages) || obj.messages.length === 0) {
    throw badRequest('invalid_messages', 'messages must be a non-empty list of {"value": "..."}');
  }
  if (obj.messages.length > limits.maxMessagesPerPublish) {
    throw badRequest('too_many_messages', `at most ${limits.maxMessagesPerPublish} messages per publish`);
  }
  let bytes = 0;
  const payloads = obj.messages.map((raw, i): Payload => {
    const where = `messages[${i}]`;
    const m = asObject(raw, where);
    onlyKeys(m, ['value'], where);
    if (typeof m.value !== 'string') throw badRequest('invalid_messages', `${where}.value must be a string`);
    const payload = encoding === 'utf8' ? m.value : Buffer.from(m.value, encoding);
    const size = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
    if (size > limits.maxMessageBytes) {
      throw new MqError(
        413,
        'message_too_large',
        `${where} is ${size} bytes; the limit is ${limits.maxMessageBytes}`,
      );
    }
    bytes += size;
    return payload;
  });
  return { payloads, bytes };
}

/**
 * A publish body as length-prefixed messages (`FRAMES_CONTENT_TYPE`, what the SDK sends): per
 * message its size in bytes (4 bytes, big-endian), then its bytes. The payloads are views into
 * `body`, which must stay untouched until the publish is answered.
 */
export function parseFramedPublish(body: Buffer, limits: RequestLimits): Publish {
  if (body.length === 0) throw badRequest('invalid_messages', 'a framed publish needs at least one message');
  const payloads: Payload[] = [];
  let bytes = 0;
  for (let at = 0; at < body.length;) {
    if (payloads.length === limits.maxMessagesPerPublish) {
      throw badRequest('too_many_messages', `at most ${limits.maxMessagesPerPublish} messages per publish`);
    }
    if (at + FRAME_HEADER_BYTES > body.length) {
      throw badRequest('invalid_messages', `message ${payloads.length}: the body ends inside its size`);
    }
    const size = body.readUInt32BE(at);
    at += FRAME_HEADER_BYTES;
    if (size > limits.maxMessageBytes) {
      throw new MqError(
        413,
        'message_too_large',
        `message ${payloads.length} is ${size} bytes; the limit is ${limits.maxMessageBytes}`,
      );
    }
    if (at + size > body.length) {
      throw badRequest(
        'invalid_messages',
        `message ${payloads.length} is ${size} bytes but the body ends ${body.length - at} bytes after its size`,
      );
    }
    payloads.push(body.subarray(at, at + size));
    bytes += size;
    at += size;
  }
  return { payloads, bytes };
}

export interface FetchBody {
  consumer: string;
  positions: Record<string, number>;
  /** The generation per shard the positions and the offsets to commit belong to. */
  generations: Record<string, number>;
  /** Offsets to commit along with this fetch (the group processed up to them). */
  commit: Record<string, number>;
  /** Messages the consumer's handler threw for since its last fetch. */
  failed: HandlerFailure[];
  maxMessages: number;
  maxBytes: number;
  waitMs: number;
  encoding: Encoding;
}

export function parseFetch(body: unknown): FetchBody {
  const obj = asObject(body, 'body');
  onlyKeys(
    obj,
    [
      'consumer',
      'positions',
      'generations',
      'commit',
      'failed',
      'maxMessages',
      'maxBytes',
      'waitMs',
      'encoding',
    ],
    'body',
  );
  return {
    consumer: parseConsumer(obj.consumer),
    positions: parseShardIds(obj.positions ?? {}, 'positions'),
    generations: parseShardIds(obj.generations ?? {}, 'generations'),
    commit: parseShardIds(obj.commit ?? {}, 'commit'),
    failed: parseFailures(obj.failed ?? []),
    maxMessages: boundedInt(
      obj.maxMessages,
      'maxMessages',
      1,
      FETCH_LIMITS.maxMessages,
      FETCH_DEFAULTS.maxMessages,
    ),
    maxBytes: boundedInt(obj.maxBytes, 'maxBytes', 1, FETCH_LIMITS.maxBytes, FETCH_DEFAULTS.maxBytes),
    waitMs: boundedInt(obj.waitMs, 'waitMs', 0, FETCH_LIMITS.waitMs, FETCH_DEFAULTS.waitMs),
    encoding: parseEncoding(obj.encoding),
  };
}

export interface CommitBody {
  /** The consumer that holds the shards' leases (the `consumer` of its fetches). */
  consumer: string;
  offsets: Record<string, number>;
  /** The generation per shard the offsets were read under (from the fetch answer); optional. */
  generations: Record<string, number>;
}

export function parseCommit(body: unknown): CommitBody {
  const obj = asObject(body, 'body');
  onlyKeys(obj, ['consumer', 'offsets', 'generations'], 'body');
  if (obj.offsets === undefined)
    throw badRequest('invalid_offsets', 'offsets is required: {"shard-name": lastId}');
  const offsets = parseShardIds(obj.offsets, 'offsets');
  const generations = parseShardIds(obj.generations ?? {}, 'generations');
  return { consumer: parseConsumer(obj.consumer), offsets, generations };
}

function parseConsumer(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 128) {
    throw badRequest(
      'invalid_consumer',
      'consumer must be a string of 1-128 characters naming this consumer',
    );
  }
  return value;
}

function parseFailures(value: unknown): HandlerFailure[] {
  if (!Array.isArray(value) || value.length > 10_000) {
    throw badRequest('invalid_failed', 'failed must be a list of {"shard","id","error"?}');
  }
  return value.map((raw, i) => {
    const where = `failed[${i}]`;
    const f = asObject(raw, where);
    onlyKeys(f, ['shard', 'id', 'error'], where);
    if (typeof f.shard !== 'string' || !Number.isSafeInteger(f.id) || (f.id as number) < 1) {
      throw badRequest('invalid_failed', `${where} needs "shard" (a name) and "id" (a message id)`);
    }
    if (f.error !== undefined && typeof f.error !== 'string') {
      throw badRequest('invalid_failed', `${where}.error must be a string`);
    }
    return { shard: f.shard, id: f.id as number, error: f.error as string | undefined };
  });
}

function parseShardIds(value: unknown, where: string): Record<string, number> {
  const obj = asObject(value, where);
  const out: Record<string, number> = {};
  for (const [shard, id] of Object.entries(obj)) {
    if (!Number.isSafeInteger(id) || (id as number) < 0) {
      throw badRequest(`invalid_${where}`, `${where}.${shard} must be a non-negative integer message id`);
    }
    out[shard] = id as number;
  }
  return out;
}

function boundedInt(value: unknown, name: string, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || (value as number) < min || (value as number) > max) {
    throw badRequest('invalid_parameter', `${name} must be an integer from ${min} to ${max}`);
  }
  return value as number;
}

export interface ResetBody {
  to: ResetTarget;
  force: boolean;
}

export function parseReset(body: unknown): ResetBody {
  const obj = asObject(body, 'body');
  onlyKeys(obj, ['to', 'force'], 'body');
  if (obj.force !== undefined && typeof obj.force !== 'boolean')
    throw badRequest('invalid_reset', 'force must be true or false');
  return { to: parseResetTarget(obj.to), force: obj.force === true };
}

const RESET_USAGE =
  'to must be "earliest", "latest", {"timestamp": ms since the epoch} or {"offsets": {"shard-0": id}}';

function parseResetTarget(to: unknown): ResetTarget {
  if (to === 'earliest' || to === 'latest') return to;
  if (typeof to !== 'object' || to === null || Array.isArray(to))
    throw badRequest('invalid_reset', RESET_USAGE);
  const obj = to as Record<string, unknown>;
  const keys = Object.keys(obj);
  if (keys.length !== 1) throw badRequest('invalid_reset', RESET_USAGE);
  if (keys[0] === 'timestamp') {
    if (!Number.isSafeInteger(obj.timestamp) || (obj.timestamp as number) < 0)
      throw badRequest('invalid_reset', 'to.timestamp must be a non-negative integer (ms since the epoch)');
    return { timestamp: obj.timestamp as number };
  }
  if (keys[0] === 'offsets') return { offsets: parseShardIds(obj.offsets, 'offsets') };
  throw badRequest('invalid_reset', RESET_USAGE);
}
