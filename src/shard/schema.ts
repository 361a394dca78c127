/** The queue database: every shard holds the same schema; message tables are per topic. */
export const QUEUE_DATABASE = 'mq';

export const TOPIC_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,127}$/;
/** Consumer groups follow the topic rule, so they are safe in URLs, labels and logs. */
export const GROUP_NAME_PATTERN = TOPIC_NAME_PATTERN;

/**
 * Idempotent DDL. One table per topic (`m_<topic id>`) keeps each topic's rows clustered by id, so a
 * fetch is one primary-key range scan and an insert appends at the end of one B-tree.
 */
export const SCHEMA_STATEMENTS = [
  `CREATE DATABASE IF NOT EXISTS ${QUEUE_DATABASE} CHARACTER SET utf8mb4`,
  `CREATE TABLE IF NOT EXISTS ${QUEUE_DATABASE}.topics (
     id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
     name VARCHAR(128) NOT NULL UNIQUE,
     created_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
     settings LONGTEXT NULL,
     deleted_through BIGINT UNSIGNED NOT NULL DEFAULT 0
   ) ENGINE=InnoDB`,
  // Shards bootstrapped before per-topic settings existed (src/api/topic-settings.ts).
  `ALTER TABLE ${QUEUE_DATABASE}.topics ADD COLUMN IF NOT EXISTS settings LONGTEXT NULL`,
  // deleted_through: retention deleted every message of this shard's topic up to this id (the
  // operator moves it in the same transaction as the DELETE), so a group's missed count is exact.
  `ALTER TABLE ${QUEUE_DATABASE}.topics ADD COLUMN IF NOT EXISTS deleted_through BIGINT UNSIGNED NOT NULL DEFAULT 0`,
  // committed_id: the group has processed every message of this shard's topic up to it.
  // owner/lease_until: the consumer that may read this shard for the group until then (DB clock, ms).
  `CREATE TABLE IF NOT EXISTS ${QUEUE_DATABASE}.group_offsets (
     group_name VARCHAR(128) NOT NULL,
     topic_id INT UNSIGNED NOT NULL,
     committed_id BIGINT UNSIGNED NOT NULL DEFAULT 0,
     owner VARCHAR(128) NULL,
     lease_until BIGINT NOT NULL DEFAULT 0,
     generation BIGINT NOT NULL DEFAULT 0,
     updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
     PRIMARY KEY (group_name, topic_id)
   ) ENGINE=InnoDB`,
  // generation: changes when an administrator resets the group; a consumer's commit names the
  // generation it read under and is ignored once it differs (src/broker/group-admin.ts).
  `ALTER TABLE ${QUEUE_DATABASE}.group_offsets ADD COLUMN IF NOT EXISTS generation BIGINT NOT NULL DEFAULT 0`,
  // Offsets committed for another shard while that shard's primary was down (its standby is
  // read-only). Kept on a writable shard, replicated like everything else, and merged back into the
  // origin shard's group_offsets when a consumer next takes a lease there.
  `CREATE TABLE IF NOT EXISTS ${QUEUE_DATABASE}.pending_offsets (
     origin_shard VARCHAR(64) NOT NULL,
     group_name VARCHAR(128) NOT NULL,
     topic VARCHAR(128) NOT NULL,
     committed_id BIGINT UNSIGNED NOT NULL,
     updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
     PRIMARY KEY (origin_shard, group_name, topic)
   ) ENGINE=InnoDB`,
  // Leases a consumer gave up (it closed) while the origin shard's primary was down: applied to
  // the origin shard's group_offsets with the pending offsets, so its shards go to the rest of the
  // group at once rather than when the lease runs out.
  `CREATE TABLE IF NOT EXISTS ${QUEUE_DATABASE}.pending_releases (
     origin_shard VARCHAR(64) NOT NULL,
     group_name VARCHAR(128) NOT NULL,
     topic VARCHAR(128) NOT NULL,
     consumer VARCHAR(128) NOT NULL,
     created_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
     PRIMARY KEY (origin_shard, group_name, topic, consumer)
   ) ENGINE=InnoDB`,
  // Deliveries of one message to a group that did not end in a commit, for the topic's
  // maxDeliveries: attempts counts handler failures the SDK reported and deliveries from the
  // committed offset that were followed by another one (the consumer went away); open_delivery
  // marks a delivery from the committed offset not yet concluded. Only topics with maxDeliveries
  // write rows here; rows go once the group commits past their message.
  `CREATE TABLE IF NOT EXISTS ${QUEUE_DATABASE}.deliveries (
     group_name VARCHAR(128) NOT NULL,
     topic_id INT UNSIGNED NOT NULL,
     message_id BIGINT UNSIGNED NOT NULL,
     attempts INT UNSIGNED NOT NULL DEFAULT 0,
     open_delivery TINYINT NOT NULL DEFAULT 0,
     last_error TEXT NULL,
     updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
     PRIMARY KEY (group_name, topic_id, message_id)
   ) ENGINE=InnoDB`,
];

/** Tables `SCHEMA_STATEMENTS` creates in the queue database. */
export const SCHEMA_TABLES = ['topics', 'group_offsets', 'pending_offsets', 'pending_releases', 'deliveries'];

/** Largest value the message column (a MEDIUMBLOB) holds: the ceiling of maxMessageBytes. */
export const MESSAGE_COLUMN_MAX_BYTES = 16_777_215;

export const messageTable = (topicId: number) => `${QUEUE_DATABASE}.m_${topicId}`;

export function createMessageTableSql(topicId: number): string {
  return `CREATE TABLE IF NOT EXISTS ${messageTable(topicId)} (
     id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
     published_at BIGINT NOT NULL,
     payload MEDIUMBLOB NOT NULL
   ) ENGINE=InnoDB`;
}
