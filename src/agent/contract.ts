/**
 * What the operator and the agent of a MariaDB pod agree on: the agent's port and clone path, and
 * the pod annotations the seed step reads (through downward-API environment variables).
 */
export const AGENT_PORT = 9080;
export const CLONE_PATH = '/v1/clone';
export const CLONE_GTID_PATH = '/v1/clone/gtid';
/** `?file=mysql-bin.000042`: streams a binlog file of the local instance (binlog archiving). */
export const BINLOG_PATH = '/v1/binlog';
/** `host:port` of the agent the seed step pulls a copy from; absent: never seed (a new shard). */
export const ANNOTATION_SEED_SOURCE = 'mysqlmq.io/seed-source';
/** A rebuild request: the seed step replaces the data directory unless it already did for this id. */
export const ANNOTATION_SEED_ID = 'mysqlmq.io/seed-id';
/**
 * On the first primary Pod of each shard of a cluster created with `spec.restore`, until the shard
 * is bootstrapped: a `RestoreRequest` as JSON. The seed step then fills an empty volume from the
 * source's backup (agent/restore-step.ts).
 */
export const ANNOTATION_RESTORE = 'mysqlmq.io/restore';
