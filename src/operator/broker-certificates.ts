import {
  type KeyPairPem,
  certificateFacts,
  issueCa,
  issueServingCertificate,
  signedBy,
} from '../common/certificates.js';
import { mergePatch } from '../k8s/apply.js';
import { isConflict } from '../k8s/client.js';
import type { KubeRest } from '../k8s/rest.js';
import { type KubeObject, resourcePath } from '../k8s/resources.js';
import type { DefaultedCluster } from './api/types.js';
import {
  CA_VALIDITY_DAYS,
  type DesiredObject,
  type IssueReason,
  SERVING_VALIDITY_DAYS,
  brokerServerName,
  brokerSubjectAltNames,
  brokerTlsSecret,
  caFromSecret,
  caIssueReason,
  caSecret,
  names,
  servingIssueReason,
  tlsFromSecret,
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
  names_changed: 'the previous one names other hosts',
  other_ca: 'the previous one was signed by another CA',
};

/**
 * The brokers' serving certificate when `spec.brokers.tls` is on (docs/security.md, "TLS"). With
 * `secretName`, the Secret is used as it is. Without, the operator keeps a CA per cluster
 * (`NAME-ca`) and issues `NAME-broker-tls` from it, anew when `servingIssueReason` says so; the
 * brokers load a renewed certificate from their mounted files without a restart.
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
    await this.ensureServing(cr, ca, signal);
    return { serverName, ca: ca.certPem };
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
      `issued the brokers' CA into Secret ${name} because ${REASON_TEXT[reason ?? 'missing']}` +
        (stored ? '; clients must be given its new ca.crt' : ''),
    );
    // After a conflict another operator's CA won: the one the server holds is the one in force.
    const written = caFromSecret((await this.deps.readSecret(cr.metadata.namespace, name, signal))?.data);
    if (!written) throw new Error(`Secret ${name} lost its CA while it was being written`);
    return written;
  }

  private async ensureServing(cr: DefaultedCluster, ca: KeyPairPem, signal: AbortSignal): Promise<void> {
    const name = names.brokerTls(cr.metadata.name);
    const stored = await this.deps.readSecret(cr.metadata.namespace, name, signal);
    const { serving, caPem } = tlsFromSecret(stored?.data);
    const reason = servingIssueReason(
      serving && certificateFacts(serving.certPem),
      serving !== undefined && signedBy(serving.certPem, ca.certPem),
      brokerSubjectAltNames(cr),
      new Date(),
    );
    if (!reason) {
      // Same certificate, but clients read the CA from here too: keep ca.crt the CA in force.
      if (serving && caPem !== ca.certPem)
        await this.write(brokerTlsSecret(cr, serving, ca.certPem), stored, signal);
      return;
    }
    const issued = await issueServingCertificate(
      ca,
      brokerServerName(cr),
      brokerSubjectAltNames(cr),
      SERVING_VALIDITY_DAYS,
    );
    await this.write(brokerTlsSecret(cr, issued, ca.certPem), stored, signal);
    void this.deps.events.record(
      cr,
      'Normal',
      'BrokerCertificateIssued',
      `issued the brokers' serving certificate into Secret ${name} because ${REASON_TEXT[reason]}`,
    );
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
