import {
  type KeyPairPem,
  type SubjectAltNames,
  type CertificateFacts,
  certificateFacts,
  issueCa,
  issueClientCertificate,
  issueServingCertificate,
  signedBy,
} from '../common/certificates.js';
import { mergePatch } from '../k8s/apply.js';
import { isConflict } from '../k8s/client.js';
import type { KubeRest } from '../k8s/rest.js';
import type { ClientTls } from '../shard/connection.js';
import { type KubeObject, resourcePath } from '../k8s/resources.js';
import type { DefaultedCluster, UserSpec } from './api/types.js';
import {
  CA_VALIDITY_DAYS,
  CLIENT_VALIDITY_DAYS,
  type DesiredObject,
  type IssueReason,
  SERVING_VALIDITY_DAYS,
  brokerServerName,
  brokerSubjectAltNames,
  brokerTlsSecret,
  caFromSecret,
  caIssueReason,
  caSecret,
  clientIssueReason,
  mysqlServerName,
  mysqlSubjectAltNames,
  mysqlTlsSecret,
  names,
  servingIssueReason,
  tlsFromSecret,
  userCertificateSecret,
  userSecretName,
} from './desired/index.js';
import type { EventRecorder } from './events.js';
import type { BrokerTlsTrust } from './shards/routing-publisher.js';

type SecretObject = KubeObject & { data?: Record<string, string> };

export interface BrokerCertificatesDeps {
  rest: KubeRest;
  events: EventRecorder;
  /** GET of one Secret by name; undefined when there is none (the operator never lists Secrets). */
  readSecret(namespace: string, name: string, signal: AbortSignal): Promise<SecretObject | undefined>;
}

const REASON_TEXT: Record<IssueReason, string> = {
  missing: 'there was none',
  expiring: 'the previous one expires within 30 days',
  names_changed: 'the previous one names other hosts (or, for a user, another user)',
  other_ca: 'the previous one was signed by another CA',
};

/** How the operator's clients verify the MariaDB instances, and the certificate they serve. */
export interface MysqlTrust {
  client: ClientTls;
  certificatePem: string;
}

/** A certificate the operator keeps in a Secret: which, when to issue it anew, and how. */
interface Leaf {
  secretName: string;
  /** Why to issue anew (`servingIssueReason`, `clientIssueReason`), or undefined to keep it. */
  reason(current: CertificateFacts | undefined, signedByCa: boolean, now: Date): IssueReason | undefined;
  issue(ca: KeyPairPem): Promise<KeyPairPem>;
  secret(pair: KeyPairPem, caPem: string): DesiredObject;
  /**
   * Keys merged into a Secret that must exist already (a user's, holding its token): a missing one
   * is an error rather than created without the token.
   */
  intoExisting?: boolean;
  /** The Event's reason and what it calls the certificate. */
  eventReason: string;
  what: string;
}

const servingLeaf = (
  secretName: string,
  commonName: string,
  wanted: SubjectAltNames,
): Pick<Leaf, 'secretName' | 'reason' | 'issue'> => ({
  secretName,
  reason: (current, signed, now) => servingIssueReason(current, signed, wanted, now),
  issue: (ca) => issueServingCertificate(ca, commonName, wanted, SERVING_VALIDITY_DAYS),
});

const brokerLeaf = (cr: DefaultedCluster): Leaf => ({
  ...servingLeaf(names.brokerTls(cr.metadata.name), brokerServerName(cr), brokerSubjectAltNames(cr)),
  secret: (serving, caPem) => brokerTlsSecret(cr, serving, caPem),
  eventReason: 'BrokerCertificateIssued',
  what: "brokers' serving certificate",
});

const mysqlLeaf = (cr: DefaultedCluster): Leaf => ({
  ...servingLeaf(names.mysqlTls(cr.metadata.name), mysqlServerName(cr), mysqlSubjectAltNames(cr)),
  secret: (serving, caPem) => mysqlTlsSecret(cr, serving, caPem),
  eventReason: 'MysqlCertificateIssued',
  what: "MariaDB instances' certificate",
});

const clientLeaf = (cr: DefaultedCluster, user: UserSpec): Leaf => ({
  secretName: userSecretName(cr, user),
  reason: (current, signed, now) => clientIssueReason(current, signed, user.name, now),
  issue: (ca) => issueClientCertificate(ca, user.name, CLIENT_VALIDITY_DAYS),
  secret: (pair, caPem) => userCertificateSecret(cr, user, pair, caPem),
  intoExisting: true,
  eventReason: 'ClientCertificateIssued',
  what: `client certificate of user ${user.name}`,
});

/**
 * The brokers' serving certificate when `spec.brokers.tls` is on (docs/security.md, "TLS"). With
 * `secretName`, the Secret is used as it is. Without, the operator keeps a CA per cluster
 * (`NAME-ca`) and issues `NAME-broker-tls` from it, anew when `servingIssueReason` says so; the
 * brokers load a renewed certificate from their mounted files without a restart. The same CA
 * signs the MariaDB instances' certificate under `spec.mysql.tls` (`ensureMysql`, docs/security.md
 * "MariaDB TLS") and the users' client certificates under `spec.brokers.tls.clientCertificates`
 * (`ensureClientCertificates`).
 */
export class BrokerCertificates {
  constructor(private readonly deps: BrokerCertificatesDeps) {}

  /** Makes sure the brokers' Secret holds a valid certificate; returns how to verify the brokers. */
  async ensure(cr: DefaultedCluster, signal: AbortSignal): Promise<BrokerTlsTrust> {
    const serverName = brokerServerName(cr);
    const given = cr.spec.brokers.tls.secretName;
    if (given) {
      const secret = await this.deps.readSecret(cr.metadata.namespace, given, signal);
      if (!secret || !tlsFromSecret(secret.data).serving) {
        void this.deps.events.record(
          cr,
          'Warning',
          'BrokerTlsSecretMissing',
          `Secret ${given} (spec.brokers.tls.secretName) ${secret ? 'lacks tls.crt or tls.key' : 'does not exist'}: broker Pods wait for it`,
        );
      }
      const ca = tlsFromSecret(secret?.data).caPem;
      return { serverName, ...(ca ? { ca } : {}) };
    }
    const ca = await this.ensureCa(cr, signal);
    await this.ensureLeaf(cr, ca, brokerLeaf(cr), signal);
    return { serverName, ca: ca.certPem };
  }

  /**
   * Makes sure `NAME-mysql-tls` holds a certificate for the MariaDB instances (`spec.mysql.tls`),
   * from the same cluster CA; returns how clients verify the instances and the certificate in force
   * (part of the instance Pods' config hash: mariadbd reads it at start, so a renewal rolls them).
   */
  async ensureMysql(cr: DefaultedCluster, signal: AbortSignal): Promise<MysqlTrust> {
    const ca = await this.ensureCa(cr, signal);
    const certificatePem = await this.ensureLeaf(cr, ca, mysqlLeaf(cr), signal);
    return { client: { ca: ca.certPem, serverName: mysqlServerName(cr) }, certificatePem };
  }

  /**
   * Under `spec.brokers.tls.clientCertificates`: makes sure every user's Secret (created with its
   * token beforehand) holds a client certificate for that user from the cluster CA, renewed like
   * the serving certificates (docs/security.md, "mTLS client certificates").
   */
  async ensureClientCertificates(cr: DefaultedCluster, signal: AbortSignal): Promise<void> {
    const ca = await this.ensureCa(cr, signal);
    for (const user of cr.spec.users) await this.ensureLeaf(cr, ca, clientLeaf(cr, user), signal);
  }

  private async ensureCa(cr: DefaultedCluster, signal: AbortSignal): Promise<KeyPairPem> {
    const name = names.ca(cr.metadata.name);
    const stored = await this.deps.readSecret(cr.metadata.namespace, name, signal);
    const current = caFromSecret(stored?.data);
    const reason = caIssueReason(current && certificateFacts(current.certPem), new Date());
    if (current && !reason) return current;
    const ca = await issueCa(`mysqlmq ${cr.metadata.namespace}/${cr.metadata.name} CA`, CA_VALIDITY_DAYS);
    await this.write(caSecret(cr, ca), stored, signal);
    void this.deps.events.record(
      cr,
      stored ? 'Warning' : 'Normal',
      'CertificateAuthorityIssued',
      `issued the cluster's CA into Secret ${name} because ${REASON_TEXT[reason ?? 'missing']}` +
        (stored ? '; clients must be given its new ca.crt' : ''),
    );
    // After a conflict another operator's CA won: the one the server holds is the one in force.
    const written = caFromSecret((await this.deps.readSecret(cr.metadata.namespace, name, signal))?.data);
    if (!written) throw new Error(`Secret ${name} lost its CA while it was being written`);
    return written;
  }

  /** Issues `leaf` anew when its `reason` says so; returns the certificate in force (PEM). */
  private async ensureLeaf(
    cr: DefaultedCluster,
    ca: KeyPairPem,
    leaf: Leaf,
    signal: AbortSignal,
  ): Promise<string> {
    const stored = await this.deps.readSecret(cr.metadata.namespace, leaf.secretName, signal);
    if (!stored && leaf.intoExisting) throw new Error(`Secret ${leaf.secretName} does not exist (yet)`);
    const { serving, caPem } = tlsFromSecret(stored?.data);
    const reason = leaf.reason(
      serving && certificateFacts(serving.certPem),
      serving !== undefined && signedBy(serving.certPem, ca.certPem),
      new Date(),
    );
    if (serving && !reason) {
      // Same certificate, but clients read the CA from here too: keep ca.crt the CA in force.
      if (caPem !== ca.certPem) await this.write(leaf.secret(serving, ca.certPem), stored, signal);
      return serving.certPem;
    }
    const issued = await leaf.issue(ca);
    await this.write(leaf.secret(issued, ca.certPem), stored, signal);
    void this.deps.events.record(
      cr,
      'Normal',
      leaf.eventReason,
      `issued the ${leaf.what} into Secret ${leaf.secretName} because ${REASON_TEXT[reason ?? 'missing']}`,
    );
    // After a conflict another operator's certificate won: the one the server holds is in force.
    const written = tlsFromSecret(
      (await this.deps.readSecret(cr.metadata.namespace, leaf.secretName, signal))?.data,
    ).serving;
    if (!written)
      throw new Error(`Secret ${leaf.secretName} lost its certificate while it was being written`);
    return written.certPem;
  }

  /**
   * Creates the Secret, or replaces its `data` guarded by the resourceVersion read: a concurrent
   * writer's (another operator replica's) version wins, and the caller reads back what is stored.
   */
  private async write(
    secret: DesiredObject,
    stored: SecretObject | undefined,
    signal: AbortSignal,
  ): Promise<void> {
    const namespace = secret.metadata.namespace;
    try {
      if (!stored) {
        await this.deps.rest.request({
          method: 'POST',
          path: resourcePath({ apiVersion: 'v1', kind: 'Secret', namespace }),
          body: secret,
          signal,
        });
      } else {
        await mergePatch(
          this.deps.rest,
          { apiVersion: 'v1', kind: 'Secret', namespace, name: secret.metadata.name },
          { data: secret.data },
          { resourceVersion: stored.metadata?.resourceVersion, signal },
        );
      }
    } catch (err) {
      if (!isConflict(err)) throw err;
    }
  }
}
