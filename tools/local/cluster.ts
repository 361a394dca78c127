import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { RoutingDocument } from '../../src/api/routing.js';
import { type ShardSecrets, bootstrapShard, withClientTls } from '../../src/shard/bootstrap.js';
import type { ClientTls } from '../../src/shard/connection.js';
import type { ServerTlsFiles } from '../../src/shard/mycnf.js';
import { LocalMariaDb } from './mariadbd.js';

export interface LocalShard {
  name: string;
  primary: LocalMariaDb;
  standby: LocalMariaDb;
}

export interface LocalShardsOptions {
  /** Holds every instance's directory. */
  dir: string;
  shards: number;
  /** First three octets of the loopback addresses, e.g. "127.0.20": instances get .1, .2, ... */
  addressPrefix: string;
  secrets?: ShardSecrets;
  /**
   * Instances serving TLS with `files` and refusing plain TCP (as under `spec.mysql.tls`); every
   * client, replication included, connects with `client`.
   */
  tls?: { files: ServerTlsFiles; client: ClientTls };
}

const password = () => randomBytes(12).toString('hex');

export function generateSecrets(): ShardSecrets {
  return {
    admin: { user: 'mq_admin', password: password() },
    replication: { user: 'mq_repl', password: password() },
    broker: { user: 'mq_broker', password: password() },
    monitor: { user: 'mq_monitor', password: password() },
  };
}

/**
 * N shards of a primary and a semi-sync standby each, as `mariadbd` processes on loopback
 * addresses, bootstrapped exactly as the operator bootstraps them in Kubernetes.
 */
export class LocalShards {
  private constructor(
    readonly shards: LocalShard[],
    readonly secrets: ShardSecrets,
  ) {}

  static async start(options: LocalShardsOptions): Promise<LocalShards> {
    const { tls } = options;
    const plain = options.secrets ?? generateSecrets();
    const secrets = tls ? withClientTls(plain, tls.client) : plain;
    const shards = await Promise.all(
      Array.from({ length: options.shards }, async (_, i): Promise<LocalShard> => {
        const name = `shard-${i}`;
        const [primary, standby] = await Promise.all(
          (['primary', 'standby'] as const).map((role, r) =>
            LocalMariaDb.start({
              dir: join(options.dir, `${name}-${role}`),
              host: `${options.addressPrefix}.${i * 2 + r + 1}`,
              serverId: i * 2 + r + 1,
              admin: secrets.admin,
              ...(tls ? { tls: tls.files } : {}),
            }),
          ),
        );
        await bootstrapShard(primary.endpoint, standby.endpoint, secrets);
        return { name, primary, standby };
      }),
    );
    return new LocalShards(shards, secrets);
  }

  /** Normal routing: every shard writes to and reads from its primary. */
  routing(version = 1): RoutingDocument {
    return {
      version,
      shards: this.shards.map((s) => ({
        name: s.name,
        write: s.primary.endpoint,
        read: s.primary.endpoint,
        requireStandbyAck: true,
      })),
    };
  }

  async stop(): Promise<void> {
    await Promise.all(this.shards.flatMap((s) => [s.primary.stop(), s.standby.stop()]));
  }

  async destroy(): Promise<void> {
    await Promise.all(this.shards.flatMap((s) => [s.primary.destroy(), s.standby.destroy()]));
  }
}
