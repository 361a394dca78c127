/**
 * my.cnf for a shard instance. The operator owns the keys below: they make replication lossless
 * and durable, so a user override of any of them is refused rather than silently applied.
 */
export const OPERATOR_OWNED_KEYS = [
  'server_id',
  'log_bin',
  'binlog_format',
  'log_slave_updates',
  'gtid_strict_mode',
  'gtid_domain_id',
  'sync_binlog',
  'innodb_flush_log_at_trx_commit',
  'read_only',
  'rpl_semi_sync_master_enabled',
  'rpl_semi_sync_slave_enabled',
  'rpl_semi_sync_master_wait_point',
  'rpl_semi_sync_master_timeout',
  'rpl_semi_sync_master_wait_no_slave',
  'bind_address',
  'port',
  'datadir',
  'socket',
  'relay_log',
  'skip_slave_start',
  'init_file',
] as const;

/**
 * Keys the operator sets under `spec.mysql.tls` (`ServerTlsFiles`), refused as overrides only
 * there: a cluster without it may keep setting them as before.
 */
export const TLS_KEYS = ['ssl_cert', 'ssl_key', 'ssl_ca', 'require_secure_transport'] as const;

/** Brokers size their largest INSERT below it (src/broker/limits.ts). */
export const MAX_ALLOWED_PACKET_BYTES = 64 << 20;

export interface MyCnfInput {
  serverId: number;
  bindAddress: string;
  port: number;
  /** Paths are set for processes run on this machine; a container image brings its own. */
  dataDir?: string;
  socket?: string;
  pidFile?: string;
  logError?: string;
  /** SQL mariadbd runs at every start (the instance's local accounts, src/shard/accounts.ts). */
  initFile?: string;
  /** Serve TLS with these files and refuse clients without it (`spec.mysql.tls`). */
  tls?: ServerTlsFiles;
  /** User settings, already checked with `refusedOverrides`. */
  overrides?: Record<string, string>;
}

/** Paths of the instance's certificate, its key and the CA that signed it (PEM). */
export interface ServerTlsFiles {
  certFile: string;
  keyFile: string;
  caFile: string;
}

/** Returns the keys of `overrides` that the operator owns (normalised: `-` and `_` are the same). */
export function refusedOverrides(overrides: Record<string, string>): string[] {
  const owned = new Set<string>(OPERATOR_OWNED_KEYS);
  return Object.keys(overrides).filter((k) => owned.has(normaliseKey(k)));
}

/** Returns the keys of `overrides` that `spec.mysql.tls` sets (normalised as `refusedOverrides`). */
export function tlsOverrides(overrides: Record<string, string>): string[] {
  const owned = new Set<string>(TLS_KEYS);
  return Object.keys(overrides).filter((k) => owned.has(normaliseKey(k)));
}

function normaliseKey(key: string): string {
  return key.trim().toLowerCase().replace(/-/g, '_');
}

/**
 * Every instance starts read-only and without semi-sync: the control plane opens writes on the
 * primary only after it has checked the instance's role and attached semi-sync, so a primary that
 * restarts never takes writes the standby cannot protect, and a stale primary stays fenced.
 */
export function renderMyCnf(input: MyCnfInput): string {
  const settings: [string, string | number][] = [
    ['server_id', input.serverId],
    ['bind_address', input.bindAddress],
    ['port', input.port],
  ];
  if (input.dataDir) settings.push(['datadir', input.dataDir]);
  if (input.socket) settings.push(['socket', input.socket]);
  if (input.pidFile) settings.push(['pid_file', input.pidFile]);
  if (input.logError) settings.push(['log_error', input.logError]);
  if (input.initFile) settings.push(['init_file', input.initFile]);
  settings.push(
    ['log_bin', 'mysql-bin'],
    ['relay_log', 'relay-bin'],
    ['binlog_format', 'ROW'],
    ['log_slave_updates', 'ON'],
    ['gtid_strict_mode', 'ON'],
    ['sync_binlog', 1],
    ['innodb_flush_log_at_trx_commit', 1],
    ['read_only', 'ON'],
    ['skip_slave_start', 'ON'],
    ['rpl_semi_sync_master_wait_point', 'AFTER_SYNC'],
    ['skip_name_resolve', 'ON'],
    ['character_set_server', 'utf8mb4'],
    ['max_allowed_packet', MAX_ALLOWED_PACKET_BYTES],
    ['max_connections', 500],
    ['innodb_buffer_pool_size', '256M'],
    ['innodb_log_file_size', '256M'],
  );
  // Only TCP clients must use TLS: the image's entrypoint and local tools use the unix socket.
  if (input.tls)
    settings.push(
      ['ssl_cert', input.tls.certFile],
      ['ssl_key', input.tls.keyFile],
      ['ssl_ca', input.tls.caFile],
      ['require_secure_transport', 'ON'],
    );
  const merged = new Map<string, string>(settings.map(([k, v]) => [k, String(v)]));
  for (const [k, v] of Object.entries(input.overrides ?? {})) merged.set(normaliseKey(k), v);
  const lines = ['[mariadbd]', ...[...merged].map(([k, v]) => `${k} = ${v}`)];
  return lines.join('\n') + '\n';
}

/** Whether a my.cnf rendered by `renderMyCnf` makes the instance refuse clients without TLS. */
export function requiresSecureTransport(cnf: string): boolean {
  return /^require_secure_transport = ON$/m.test(cnf);
}
