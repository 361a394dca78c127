import { badRequest } from '../common/errors.js';
import { asObject, onlyKeys } from './json-shape.js';
import type { Endpoint } from '../shard/connection.js';

/**
 * Which instance of each shard takes writes and which serves reads. The operator owns this
 * document and changes it at runtime (failover flips `read` to the standby and clears `write`);
 * brokers apply a newer `version` within a second and ignore older ones.
 */
export interface RoutingDocument {
  version: number;
  shards: ShardRoute[];
}

export interface ShardRoute {
  name: string;
  /** The instance that takes writes, or null while the shard takes none. */
  write: Endpoint | null;
  /** The instance that serves reads, or null while the shard is unreadable. */
  read: Endpoint | null;
  /**
   * The `required` durability policy: write only while the primary has a semi-sync standby, so
   * an acknowledged message is always on two servers.
   */
  requireStandbyAck: boolean;
}

const SHARD_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** Validates a routing document from JSON; throws a 400 MqError naming the bad field. */
export function parseRouting(input: unknown): RoutingDocument {
  const doc = asObject(input, 'routing');
  onlyKeys(doc, ['version', 'shards'], 'routing');
  const version = doc.version;
  if (!Number.isSafeInteger(version) || (version as number) < 0) {
    throw badRequest('invalid_routing', 'routing.version must be a non-negative integer');
  }
  if (!Array.isArray(doc.shards)) throw badRequest('invalid_routing', 'routing.shards must be a list');
  const names = new Set<string>();
  const shards = doc.shards.map((raw, i): ShardRoute => {
    const where = `routing.shards[${i}]`;
    const s = asObject(raw, where);
    onlyKeys(s, ['name', 'write', 'read', 'requireStandbyAck'], where);
    if (typeof s.name !== 'string' || !SHARD_NAME.test(s.name)) {
      throw badRequest('invalid_routing', `${where}.name must match ${SHARD_NAME}`);
    }
    if (names.has(s.name)) throw badRequest('invalid_routing', `${where}.name "${s.name}" is repeated`);
    names.add(s.name);
    return {
      name: s.name,
      write: endpointOrNull(s.write, `${where}.write`),
      read: endpointOrNull(s.read, `${where}.read`),
      requireStandbyAck: s.requireStandbyAck === undefined ? true : Boolean(s.requireStandbyAck),
    };
  });
  return { version: version as number, shards };
}

function endpointOrNull(raw: unknown, where: string): Endpoint | null {
  if (raw === null || raw === undefined) return null;
  const e = asObject(raw, where);
  onlyKeys(e, ['host', 'port'], where);
  if (typeof e.host !== 'string' || e.host === '')
    throw badRequest('invalid_routing', `${where}.host is required`);
  const port = e.port ?? 3306;
  if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535) {
    throw badRequest('invalid_routing', `${where}.port must be 1-65535`);
  }
  return { host: e.host, port: port as number };
}
