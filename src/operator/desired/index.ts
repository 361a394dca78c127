/** Desired Kubernetes objects of a MessageQueueCluster: pure builders (docs/operator-design.md). */
export * from './broker-tls.js';
export * from './brokers.js';
export * from './client-certificates.js';
export * from './cluster.js';
export * from './credentials.js';
export * from './meta.js';
export * from './mysql-tls.js';
export * from './network-policy.js';
export * from './shard.js';
export * from './restore.js';
export * from './users.js';
