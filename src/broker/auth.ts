import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { MqError } from '../common/errors.js';
import {
  ACTIONS,
  type Action,
  type TopicRight,
  type UsersDocument,
  allows,
  tokenSha256,
} from '../api/users.js';
import { type CertificateClaim, connectionClaim } from './client-certificate.js';

/** Who made a request, once its token is known. */
export interface Principal {
  name: string;
  rights: TopicRight[];
  /**
   * No authentication configured (a broker embedded in tests or tools): every client right, but
   * not the operator's routes, which have always needed the operator token.
   */
  anonymous?: boolean;
  /** The operator's token: routing pushes and everything else. */
  operator?: boolean;
}

/** Every right on every topic: the operator token and the deprecated shared client token. */
const ALL: TopicRight[] = [{ topic: '*', actions: [...ACTIONS] }];
const ANONYMOUS: Principal = { name: 'anonymous', rights: ALL, anonymous: true };

export interface AuthOptions {
  /** The users file; undefined (and no `sharedToken`) turns client authentication off. */
  users?: UsersDocument;
  /** `MQ_AUTH_TOKEN`, the one token every client shared before users existed: all rights. */
  sharedToken?: string;
  /** `MQ_ADMIN_TOKEN`, the operator's credential for routing pushes. */
  operatorToken?: string;
  /**
   * `--client-ca`: a request without a token may authenticate by a client certificate whose CN
   * names a user (docs/security.md, "mTLS client certificates").
   */
  clientCertificates?: boolean;
}

interface Known {
  digest: Buffer;
  principal: Principal;
}

/**
 * Tokens to principals, and rights checks. Tokens are compared as SHA-256 digests with
 * `timingSafeEqual`, against every known digest without stopping at a match, so neither the
 * length nor the content of a token shows in the answer time.
 */
export class Auth {
  private users: Known[] = [];
  private readonly fixed: Known[] = [];
  private usersEnabled: boolean;
  private readonly clientCertificates: boolean;

  constructor(opts: AuthOptions) {
    this.clientCertificates = opts.clientCertificates ?? false;
    if (opts.operatorToken) {
      this.fixed.push({
        digest: digestOf(opts.operatorToken),
        principal: { name: 'operator', rights: ALL, operator: true },
      });
    }
    if (opts.sharedToken) {
      this.fixed.push({
        digest: digestOf(opts.sharedToken),
        principal: { name: 'shared-token', rights: ALL },
      });
    }
    this.usersEnabled = opts.users !== undefined || opts.sharedToken !== undefined;
    if (opts.users) this.setUsers(opts.users);
  }

  /** Whether clients must send a token. */
  get enabled(): boolean {
    return this.usersEnabled;
  }

  /** Replaces the users (a reloaded users file); requests already authenticated keep their rights. */
  setUsers(doc: UsersDocument): void {
    this.users = doc.users.map((u) => ({
      digest: Buffer.from(u.tokenSha256, 'hex'),
      principal: { name: u.name, rights: u.rights },
    }));
    this.usersEnabled = true;
  }

  /**
   * The request's principal: the token's owner; without a token, the user a client certificate
   * names (with `clientCertificates`); anonymous when authentication is off and neither is sent;
   * or a 401 `unauthenticated`. A token decides alone, whatever certificate the connection shows.
   */
  authenticate(req: IncomingMessage): Principal {
    const token = bearerToken(req);
    if (token === undefined) {
      const claim = this.clientCertificates ? connectionClaim(req) : undefined;
      if (claim) return this.certificateUser(claim);
      if (!this.usersEnabled) return ANONYMOUS;
      throw unauthenticated(
        this.clientCertificates
          ? 'send Authorization: Bearer <token> with a user token, or a client certificate of a user'
          : 'send Authorization: Bearer <token> with a user token',
      );
    }
    const digest = digestOf(token);
    let found: Principal | undefined;
    for (const k of this.fixed.concat(this.users)) {
      if (timingSafeEqual(k.digest, digest) && !found) found = k.principal;
    }
    if (found) return found;
    if (!this.usersEnabled) return ANONYMOUS;
    throw unauthenticated('the bearer token belongs to no user (unknown, revoked or mistyped)');
  }

  /** The current user a client certificate names; read per request, so a removed user is refused at once. */
  private certificateUser(claim: CertificateClaim): Principal {
    if ('problem' in claim) throw unauthenticated(claim.problem);
    const known = this.users.find((k) => k.principal.name === claim.user);
    if (!known) {
      throw unauthenticated(`the client certificate names ${claim.user}, who is not a user of these brokers`);
    }
    return known.principal;
  }

  /** A 403 `forbidden` unless `who` holds `action` on `topic` (undefined: on every topic, `*`). */
  require(who: Principal, action: Action, topic?: string): void {
    if (allows(who.rights, action, topic)) return;
    const where = topic === undefined ? 'every topic ("*")' : `topic ${topic}`;
    throw new MqError(403, 'forbidden', `user ${who.name} lacks the ${action} right on ${where}`);
  }

  /**
   * The operator's routes: routing (`topic` undefined) and topic settings. The operator token,
   * or a user with the admin right on `topic` (on every topic for routing). Never anonymous
   * callers: these routes needed the operator token before users existed.
   */
  requireOperator(who: Principal, topic?: string): void {
    if (who.operator) return;
    if (who.anonymous) {
      if (!this.fixed.some((k) => k.principal.operator)) {
        throw new MqError(403, 'admin_disabled', 'the admin API is off (no admin token)');
      }
      throw unauthenticated('send Authorization: Bearer <admin token>');
    }
    this.require(who, 'admin', topic);
  }
}

function unauthenticated(message: string): MqError {
  return new MqError(401, 'unauthenticated', message);
}

function digestOf(token: string): Buffer {
  return Buffer.from(tokenSha256(token), 'hex');
}

function bearerToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (!header) return undefined;
  return header.startsWith('Bearer ') ? header.slice(7).trim() : '';
}
