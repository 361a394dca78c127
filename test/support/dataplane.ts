import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BROKER_DEFAULTS, Broker, type BrokerConfig } from '../../src/broker/broker.js';
import { createLogger } from '../../src/common/logger.js';
import { LocalShards } from '../../tools/local/cluster.js';

export const ADMIN_TOKEN = 'test-admin-token';

export async function startShards(addressPrefix: string, shards = 2): Promise<LocalShards> {
  const dir = await mkdtemp(join(tmpdir(), 'mq-test-'));
  return LocalShards.start({ dir, shards, addressPrefix });
}

/** A broker in this process; routing and credentials come from `cluster` unless given. */
export function startBroker(
  cluster: LocalShards | undefined,
  overrides: Partial<BrokerConfig> = {},
): Promise<Broker> {
  return Broker.start(
    {
      ...BROKER_DEFAULTS,
      port: 0,
      adminToken: ADMIN_TOKEN,
      ...overrides,
      db: overrides.db ?? cluster!.secrets.broker,
      routing: overrides.routing ?? cluster!.routing(),
    },
    createLogger('broker', process.env.MQ_LOG_LEVEL ?? 'error'),
  );
}

export async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}
