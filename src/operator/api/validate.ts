import { MAX_MESSAGES_PER_PUBLISH, maxInsertBytes } from '../../broker/limits.js';
import { MESSAGE_COLUMN_MAX_BYTES } from '../../shard/schema.js';
import { OPERATOR_OWNED_KEYS, refusedOverrides, tlsOverrides } from '../../shard/mycnf.js';
import { USER_NAME_PATTERN, parseRights } from '../../api/users.js';
import { parsePointInTime } from '../../backup/point-in-time.js';
import { errorMessage } from '../../common/errors.js';
import { withDefaults } from './defaults.js';
import {
  type DefaultedSpec,
  type MessageQueueClusterSpec,
  RESERVED_LABEL_PREFIXES,
  type ResourceRequirements,
  type UserSpec,
} from './types.js';

/**
 * What the CRD schema cannot say on Kubernetes 1.20 (no CEL: no rule across two fields, no rule on
 * map keys, no rule comparing old and new), as sentences a person can act on. An empty list means
 * the spec is usable. The reconciler runs these before it creates anything and reports the
 * problems in the Ready condition (reason InvalidSpec) and as a Warning event. Pure.
 */

/** The longest cluster name whose derived names fit: `NAME-shard-63-standby` is a 63-character DNS label. */
export const MAX_CLUSTER_NAME_LENGTH = 46;

/** The floor for max_allowed_packet whatever the brokers send: MariaDB's own default is 16M. */
const MIN_MAX_ALLOWED_PACKET = 16 << 20;
/** MariaDB's redo log alone takes 256 MiB (src/shard/mycnf.ts): less cannot even start. */
const MIN_STORAGE_BYTES = 512 * 2 ** 20;

export function validateSpec(spec: MessageQueueClusterSpec | undefined): string[] {
  const s = withDefaults(spec);
  return [
    ...checkRanges(s),
    ...checkMyCnf(s),
    ...checkStorage(s),
    ...checkResources('spec.mysql.resources', s.mysql.resources),
    ...checkResources('spec.brokers.resources', s.brokers.resources),
    ...checkResources('spec.monitoring.mysqldExporter.resources', s.monitoring.mysqldExporter.resources),
    ...checkFailover(s),
    ...checkPodTemplate(s),
    ...checkRetention(s),
    ...checkBrokerTls(s),
    ...checkBrokerAuth(spec),
    ...checkClientCertificates(s),
    ...checkRestore(spec, s),
    // The spec's own list: indexes in messages are the user's, without the added admin.
    ...checkUsers(spec?.users ?? []),
  ];
}

const SECRET_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** The schema checks shapes; names must be unique, and rights parse as brokers parse them. */
function checkUsers(users: UserSpec[]): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  const secrets = new Set<string>();
  users.forEach((u, i) => {
    const at = `spec.users[${i}]`;
    if (!USER_NAME_PATTERN.test(u.name)) {
      problems.push(
        `${at}.name "${u.name}" must be a DNS label (lower-case letters, digits, '-'; at most 63)`,
      );
    }
    if (seen.has(u.name)) problems.push(`${at}.name: user ${u.name} is listed twice`);
    seen.add(u.name);
    try {
      parseRights(u.rights, `${at}.rights`);
    } catch (err) {
      problems.push(errorMessage(err));
    }
    if (u.secretName !== undefined) {
      if (!SECRET_NAME.test(u.secretName) || u.secretName.length > 253) {
        problems.push(`${at}.secretName "${u.secretName}" is not a Secret name`);
      }
      if (secrets.has(u.secretName)) problems.push(`${at}.secretName ${u.secretName} is another user's too`);
      secrets.add(u.secretName);
    }
  });
  return problems;
}

function checkBrokerTls(s: DefaultedSpec): string[] {
  const { enabled, secretName } = s.brokers.tls;
  if (secretName === undefined) return [];
  if (!SECRET_NAME.test(secretName) || secretName.length > 253)
    return [`spec.brokers.tls.secretName "${secretName}" is not a Secret name`];
  // Said rather than ignored: whoever named a certificate expects HTTPS.
  if (!enabled) return ['spec.brokers.tls.secretName is set but spec.brokers.tls.enabled is false'];
  return [];
}

/** Credentials for brokers that check none would be a false sense of security: said, not ignored. */
function checkBrokerAuth(spec: MessageQueueClusterSpec | undefined): string[] {
  if (spec?.brokers?.auth?.enabled !== false) return [];
  const problems: string[] = [];
  if (spec.users?.length) {
    problems.push(
      'spec.users is set but spec.brokers.auth.enabled is false: brokers would accept anyone; remove spec.brokers.auth.enabled (authentication is on by default) or spec.users',
    );
  }
  if (spec.brokers.authSecretName) {
    problems.push(
      'spec.brokers.authSecretName is set but spec.brokers.auth.enabled is false: brokers would accept anyone; remove spec.brokers.auth.enabled (authentication is on by default) or spec.brokers.authSecretName',
    );
  }
  return problems;
}

/** Client certificates need HTTPS to be shown and users to name: said, not ignored. */
function checkClientCertificates(s: DefaultedSpec): string[] {
  if (!s.brokers.tls.clientCertificates.enabled) return [];
  const problems: string[] = [];
  if (!s.brokers.tls.enabled) {
    problems.push(
      'spec.brokers.tls.clientCertificates.enabled is true but spec.brokers.tls.enabled is false: client certificates need HTTPS; set spec.brokers.tls.enabled to true or remove spec.brokers.tls.clientCertificates',
    );
  }
  if (!s.brokers.auth.enabled) {
    problems.push(
      'spec.brokers.tls.clientCertificates.enabled is true but spec.brokers.auth.enabled is false: brokers would accept anyone, certificate or not; remove spec.brokers.auth.enabled (authentication is on by default) or spec.brokers.tls.clientCertificates',
    );
  }
  return problems;
}

/** Problems with a cluster's name (the schema checks the same; derived names must stay valid). */
export function validateName(name: string): string[] {
  const problems: string[] = [];
  if (name.length > MAX_CLUSTER_NAME_LENGTH) {
    problems.push(
      `metadata.name "${name}" is ${name.length} characters; at most ${MAX_CLUSTER_NAME_LENGTH} fit, because Service names such as "${name.slice(0, 8)}...-shard-63-standby" must stay within 63`,
    );
  }
  if (!/^[a-z]([-a-z0-9]*[a-z0-9])?$/.test(name)) {
    problems.push(
      `metadata.name "${name}" must start with a lowercase letter and contain only lowercase letters, digits and "-" (it prefixes Service names)`,
    );
  }
  return problems;
}

/**
 * Changes the operator refuses: what existing data or immutable objects cannot follow. The
 * reconciler keeps running the old values and reports these until the spec is put back.
 */
export function validateSpecUpdate(
  previous: MessageQueueClusterSpec | undefined,
  next: MessageQueueClusterSpec | undefined,
): string[] {
  const a = withDefaults(previous);
  const b = withDefaults(next);
  const problems: string[] = [];
  if (b.shards < a.shards) {
    problems.push(
      `spec.shards cannot shrink from ${a.shards} to ${b.shards}: the messages stored on the removed shards would become unreadable; put it back to ${a.shards}`,
    );
  }
  const oldSize = parseQuantity(a.mysql.storage.size);
  const newSize = parseQuantity(b.mysql.storage.size);
  if (oldSize !== undefined && newSize !== undefined && newSize < oldSize) {
    problems.push(
      `spec.mysql.storage.size cannot shrink from ${a.mysql.storage.size} to ${b.mysql.storage.size}: a PersistentVolumeClaim can only grow`,
    );
  }
  if ((a.mysql.storage.storageClassName ?? '') !== (b.mysql.storage.storageClassName ?? '')) {
    problems.push(
      `spec.mysql.storage.storageClassName cannot change (from ${quoteOr(a.mysql.storage.storageClassName, 'the default')} to ${quoteOr(b.mysql.storage.storageClassName, 'the default')}): existing PersistentVolumeClaims keep their class`,
    );
  }
  if (a.mysql.tls.enabled !== b.mysql.tls.enabled) {
    problems.push(
      `spec.mysql.tls.enabled cannot change on a running cluster (from ${a.mysql.tls.enabled} to ${b.mysql.tls.enabled}): while its instances rolled, those with and without TLS could not replicate from each other; put it back to ${a.mysql.tls.enabled}`,
    );
  }
  return problems;
}

// --- checks ----------------------------------------------------------------------------------

/** The schema's ranges again, for objects stored before the schema had them. */
function checkRanges(s: DefaultedSpec): string[] {
  const ranges: [string, number, number, number][] = [
    ['spec.shards', s.shards, 1, 64],
    ['spec.mysql.semiSyncTimeoutSeconds', s.mysql.semiSyncTimeoutSeconds, 1, 3600],
    ['spec.brokers.replicas', s.brokers.replicas, 0, 100],
    ['spec.brokers.port', s.brokers.port, 1024, 65535],
    ['spec.brokers.maxMessageBytes', s.brokers.maxMessageBytes, 1, MESSAGE_COLUMN_MAX_BYTES],
    ['spec.failover.probePeriodSeconds', s.failover.probePeriodSeconds, 1, 60],
    ['spec.failover.failureThreshold', s.failover.failureThreshold, 1, 30],
    ['spec.failover.promoteForWritesDelaySeconds', s.failover.promoteForWritesDelaySeconds, 30, 86_400],
    ['spec.retention.maxAgeHours', s.retention.maxAgeHours, 1, 87_600],
    ['spec.retention.binlogMinAgeHours', s.retention.binlogMinAgeHours, 0, 8760],
    ['spec.retention.intervalSeconds', s.retention.intervalSeconds, 5, 3600],
  ];
  if (s.retention.maxBytesPerShard !== undefined) {
    ranges.push([
      'spec.retention.maxBytesPerShard',
      s.retention.maxBytesPerShard,
      1,
      Number.MAX_SAFE_INTEGER,
    ]);
  }
  return ranges
    .filter(([, v, min, max]) => !Number.isInteger(v) || v < min || v > max)
    .map(([field, v, min, max]) => `${field} is ${v}; it must be a whole number from ${min} to ${max}`);
}

const MODIFIER_PREFIXES = ['loose_', 'skip_', 'disable_', 'enable_', 'maximum_'];
const OWNED = new Set<string>(OPERATOR_OWNED_KEYS);

/**
 * The owned key a my.cnf option name sets, if any. Beyond `refusedOverrides` (exact names, `-` = `_`),
 * MariaDB also reads `loose-server-id`, `skip-log-bin`, `disable-read-only` ... as the option
 * itself, and newer versions spell `slave` as `replica`.
 */
export function ownedKeyOf(key: string): string | undefined {
  const k = key.trim().toLowerCase().replace(/-/g, '_');
  const candidates = [k];
  for (const prefix of MODIFIER_PREFIXES) if (k.startsWith(prefix)) candidates.push(k.slice(prefix.length));
  for (const c of [...candidates])
    candidates.push(c.replace(/replica/g, 'slave'), c.replace(/source/g, 'master'));
  return candidates.find((c) => OWNED.has(c));
}

function checkMyCnf(s: DefaultedSpec): string[] {
  const problems: string[] = [];
  const config = s.mysql.config;
  const owned = new Set([...refusedOverrides(config), ...Object.keys(config).filter((k) => ownedKeyOf(k))]);
  if (owned.size > 0) {
    const keys = [...owned];
    problems.push(
      `spec.mysql.config sets ${keys.map((k) => `"${k}"`).join(', ')}, which the operator owns (replication, durability and fencing depend on ${keys.length > 1 ? 'them' : 'it'}); remove ${keys.length > 1 ? 'them' : 'it'}`,
    );
  }
  const tlsKeys = s.mysql.tls.enabled ? tlsOverrides(config) : [];
  if (tlsKeys.length > 0) {
    problems.push(
      `spec.mysql.config sets ${tlsKeys.map((k) => `"${k}"`).join(', ')}, which spec.mysql.tls sets to the certificate the operator issues; remove ${tlsKeys.length > 1 ? 'them' : 'it'}`,
    );
  }
  for (const [key, value] of Object.entries(config)) {
    if (!/^[A-Za-z][A-Za-z0-9_.-]{0,127}$/.test(key)) {
      problems.push(
        `spec.mysql.config key "${key}" is not a my.cnf option name (letters, digits, "_", "-" and ".", starting with a letter)`,
      );
    }
    if (typeof value !== 'string' || /[\r\n\0]/.test(value)) {
      problems.push(`spec.mysql.config.${key} must be a single-line string`);
    }
  }
  const packet = Object.entries(config).find(
    ([k]) => k.toLowerCase().replace(/-/g, '_') === 'max_allowed_packet',
  );
  if (packet) {
    const bytes = parseMyCnfSize(packet[1]);
    // The broker's largest INSERT (src/broker/limits.ts), in whole MiB, and never below 16M.
    const insert = maxInsertBytes(s.brokers.maxMessageBytes, MAX_MESSAGES_PER_PUBLISH);
    const needed = Math.max(MIN_MAX_ALLOWED_PACKET, Math.ceil(insert / 2 ** 20) * 2 ** 20);
    if (bytes === undefined) {
      problems.push(`spec.mysql.config.${packet[0]} "${packet[1]}" is not a size (e.g. 64M)`);
    } else if (bytes < needed) {
      problems.push(
        `spec.mysql.config.${packet[0]} is ${packet[1]}; brokers need at least ${needed / 2 ** 20}M (their largest INSERT with spec.brokers.maxMessageBytes, and at least 16M)`,
      );
    }
  }
  return problems;
}

function checkStorage(s: DefaultedSpec): string[] {
  const size = parseQuantity(s.mysql.storage.size);
  if (size === undefined) {
    return [`spec.mysql.storage.size "${s.mysql.storage.size}" is not a quantity such as 10Gi`];
  }
  if (size < MIN_STORAGE_BYTES) {
    return [
      `spec.mysql.storage.size is ${s.mysql.storage.size}; MariaDB needs at least 512Mi (its redo log alone takes 256Mi)`,
    ];
  }
  return [];
}

function checkResources(field: string, r: ResourceRequirements): string[] {
  const problems: string[] = [];
  const parsed: Record<'limits' | 'requests', Record<string, number>> = { limits: {}, requests: {} };
  for (const part of ['limits', 'requests'] as const) {
    for (const [name, q] of Object.entries(r[part] ?? {})) {
      const v = parseQuantity(q);
      if (v === undefined || v < 0)
        problems.push(`${field}.${part}.${name} "${q}" is not a quantity such as 500m or 1Gi`);
      else parsed[part][name] = v;
    }
  }
  for (const [name, request] of Object.entries(parsed.requests)) {
    const limit = parsed.limits[name];
    if (limit !== undefined && request > limit) {
      problems.push(
        `${field}.requests.${name} (${r.requests![name]}) is more than ${field}.limits.${name} (${r.limits![name]})`,
      );
    }
  }
  return problems;
}

function checkFailover(s: DefaultedSpec): string[] {
  const f = s.failover;
  if (!f.promoteForWrites) return [];
  const problems: string[] = [];
  if (!f.promoteStandbyForReads) {
    problems.push(
      'spec.failover.promoteForWrites needs spec.failover.promoteStandbyForReads: a standby that takes writes serves reads too',
    );
  }
  const detection = f.probePeriodSeconds * f.failureThreshold;
  if (f.promoteForWritesDelaySeconds < Math.max(30, detection)) {
    problems.push(
      `spec.failover.promoteForWritesDelaySeconds is ${f.promoteForWritesDelaySeconds}; it must be at least ${Math.max(30, detection)} seconds (30 s, and no less than probePeriodSeconds x failureThreshold) so a brief outage does not split writes between two primaries`,
    );
  }
  return problems;
}

/**
 * A size limit below two of the largest messages would delete what producers were just told is
 * stored (retention keeps whole messages; the newest must fit).
 */
function checkRetention(s: DefaultedSpec): string[] {
  const limit = s.retention.maxBytesPerShard;
  const least = 2 * s.brokers.maxMessageBytes;
  if (limit === undefined || !Number.isInteger(limit) || limit < 1 || limit >= least) return [];
  return [
    `spec.retention.maxBytesPerShard is ${limit}; it must be at least ${least} (twice spec.brokers.maxMessageBytes), or the newest messages would be deleted as soon as they are written`,
  ];
}

/** `spec.restore` needs a target (its own or spec.backup's) and a readable point in time. */
function checkRestore(spec: MessageQueueClusterSpec | undefined, s: DefaultedSpec): string[] {
  if (!s.restore) return [];
  const problems: string[] = [];
  const source = s.restore.from.cluster;
  if (!/^[a-z]([-a-z0-9]*[a-z0-9])?$/.test(source) || source.length > MAX_CLUSTER_NAME_LENGTH)
    problems.push(`spec.restore.from.cluster "${source}" is not a MessageQueueCluster name`);
  if (!s.restore.from.target)
    problems.push(
      "spec.restore.from.target is not set and there is no spec.backup.target to default to: name where the source cluster's backups are",
    );
  const point = spec?.restore?.pointInTime;
  if (point !== undefined) {
    const parsed = parsePointInTime(point, 'spec.restore.pointInTime');
    if (typeof parsed === 'string') problems.push(parsed);
  }
  return problems;
}

function checkPodTemplate(s: DefaultedSpec): string[] {
  const problems: string[] = [];
  const p = s.podTemplate;
  for (const key of Object.keys(p.labels)) {
    if (RESERVED_LABEL_PREFIXES.some((prefix) => key.startsWith(prefix))) {
      problems.push(
        `spec.podTemplate.labels."${key}" is reserved: the operator sets ${RESERVED_LABEL_PREFIXES.map((x) => `${x}*`).join(' and ')} labels and selects pods by them`,
      );
    }
  }
  for (const [field, map] of [
    ['labels', p.labels],
    ['nodeSelector', p.nodeSelector],
    ['annotations', p.annotations],
  ] as const) {
    for (const [key, value] of Object.entries(map)) {
      const keyProblem = qualifiedNameProblem(key);
      if (keyProblem) problems.push(`spec.podTemplate.${field} key "${key}" ${keyProblem}`);
      if (field !== 'annotations' && !LABEL_VALUE.test(value)) {
        problems.push(
          `spec.podTemplate.${field}."${key}" value "${value}" must be at most 63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit`,
        );
      }
    }
  }
  return problems;
}

// --- syntax helpers --------------------------------------------------------------------------

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Kubernetes' label/annotation key syntax: `[prefix/]name`; undefined when valid. */
function qualifiedNameProblem(key: string): string | undefined {
  const parts = key.split('/');
  if (parts.length > 2) return 'has more than one "/"';
  const name = parts[parts.length - 1]!;
  const prefix = parts.length === 2 ? parts[0]! : undefined;
  if (prefix !== undefined && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) {
    return 'has a prefix that is not a DNS subdomain (lowercase letters, digits, "-" and ".")';
  }
  if (name.length === 0 || name.length > 63 || !QUALIFIED_NAME.test(name)) {
    return 'must be at most 63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit (optionally after a "prefix/")';
  }
  return undefined;
}

const BINARY_SUFFIX: Record<string, number> = {
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};
const DECIMAL_SUFFIX: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
};

/** A Kubernetes quantity (`500m`, `1.5Gi`, `2`, `1e3`) as a number; undefined when malformed. */
export function parseQuantity(q: string | number): number | undefined {
  if (typeof q === 'number') return Number.isFinite(q) ? q : undefined;
  const m = /^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$/.exec(
    q.trim(),
  );
  if (!m) return undefined;
  const n = Number(m[1]);
  const suffix = m[2] ?? '';
  if (suffix in BINARY_SUFFIX) return n * BINARY_SUFFIX[suffix]!;
  if (suffix in DECIMAL_SUFFIX) return n * DECIMAL_SUFFIX[suffix]!;
  return n * 10 ** Number(suffix.slice(1));
}

/** A my.cnf size (`64M`, `1G`, `16777216`) in bytes; undefined when malformed. */
export function parseMyCnfSize(v: string): number | undefined {
  const m = /^([0-9]+)([KMGT])?$/i.exec(v.trim());
  if (!m) return undefined;
  const mult: Record<string, number> = { K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };
  return Number(m[1]) * (m[2] ? mult[m[2].toUpperCase()]! : 1);
}

function quoteOr(v: string | undefined, fallback: string): string {
  return v ? `"${v}"` : fallback;
}
