// Authentication on every request; there is no anonymous mode. Credentials, in order:
//   Authorization: Bearer <JWT>      (when auth.jwt is configured and the value has the JWS compact shape)
//   Authorization: Bearer <api key>  or  X-API-Key: <api key>
//   the Istio peer identity (x-forwarded-client-cert), when auth.mtls is configured and no credential was sent.
import type { IncomingHttpHeaders } from "node:http";
import type { Identity } from "../authz.ts";
import type { GatewayConfig } from "../../../contract/gateway-config.ts";
import { anyGlob } from "../glob.ts";
import { ApiKeyStore, type KeyMemo } from "./apikeys.ts";
import { JwtError, JwtVerifier } from "./jwt.ts";
import { xfccPeer } from "./mtls.ts";

export type AuthResult =
  | { ok: true; identity: Identity }
  | { ok: false; reason: string; message: string /** a credential was presented but rejected */; invalidToken: boolean };

const JWS_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

export class Authenticator {
  readonly apiKeys: ApiKeyStore | undefined;
  readonly jwt: JwtVerifier | undefined;
  readonly #spiffe: string[] | undefined;
  readonly #ids = new Map<string, Identity>();

  constructor(cfg: GatewayConfig["auth"], opts: { jwksRefreshMs?: number } = {}) {
    if (!cfg.apiKeys && !cfg.jwt && !cfg.mtls) throw new Error("auth: configure at least one of apiKeys, jwt, mtls (there is no anonymous mode)");
    this.apiKeys = cfg.apiKeys ? new ApiKeyStore(cfg.apiKeys.dir) : undefined;
    this.jwt = cfg.jwt ? new JwtVerifier(cfg.jwt, { refreshMs: opts.jwksRefreshMs }) : undefined;
    this.#spiffe = cfg.mtls?.spiffeIds;
  }

  async start(apiKeyRescanMs?: number): Promise<void> {
    await Promise.all([this.apiKeys?.start(apiKeyRescanMs), this.jwt?.start()]);
  }

  stop(): void {
    this.apiKeys?.stop();
    this.jwt?.stop();
  }

  get ready(): boolean {
    return (this.jwt ? this.jwt.ready : true) && (this.apiKeys ? this.apiKeys.size > 0 || !this.jwt : true);
  }

  #identity(kind: Identity["kind"], name: string, groups?: string[], token?: { scopes: string[]; claims: Record<string, unknown> }): Identity {
    // A token's scopes and claims belong to that token, not to the subject: never shared through the cache.
    if (token) return { key: `${kind}:${name}`, kind, name, ...(groups && groups.length > 0 ? { groups } : {}), scopes: token.scopes, claims: token.claims };
    if (groups && groups.length > 0) return { key: `${kind}:${name}`, kind, name, groups };
    const key = `${kind}:${name}`;
    let id = this.#ids.get(key);
    if (!id) {
      id = { key, kind, name };
      if (this.#ids.size > 10000) this.#ids.clear();
      this.#ids.set(key, id);
    }
    return id;
  }

  /** `memo`: the connection's (see KeyMemo), so a key sent again on it is not hashed again. */
  authenticate(headers: IncomingHttpHeaders, memo?: KeyMemo): AuthResult | Promise<AuthResult> {
    let credential: string | undefined;
    const authz = headers.authorization;
    if (authz !== undefined) {
      if (authz.length < 8 || authz.slice(0, 7).toLowerCase() !== "bearer ")
        return { ok: false, reason: "scheme", message: "use the Bearer authorization scheme", invalidToken: true };
      credential = authz.slice(7).trim();
    } else {
      const k = headers["x-api-key"];
      if (typeof k === "string") credential = k.trim();
    }
    if (!credential) {
      if (this.#spiffe) {
        const peer = xfccPeer(headers["x-forwarded-client-cert"]);
        // A malformed header is refused whole: never guess which element the sidecar wrote.
        if (!peer.ok) return { ok: false, reason: "xfcc-malformed", message: "x-forwarded-client-cert is malformed", invalidToken: false };
        const uri = peer.uri;
        if (uri && anyGlob(this.#spiffe, uri)) return { ok: true, identity: this.#identity("spiffe", uri) };
        if (uri) return { ok: false, reason: "peer", message: "peer identity not accepted", invalidToken: false };
      }
      return { ok: false, reason: "missing", message: "authentication required", invalidToken: false };
    }
    if (this.jwt && JWS_SHAPE.test(credential)) return this.#jwt(this.jwt, credential);
    if (this.apiKeys) {
      const c = this.apiKeys.check(credential, Date.now(), memo);
      if (c?.ok) return { ok: true, identity: this.#identity("apikey", c.client) };
      // The holder of an expired key learns that it expired (and when), so it can be renewed, not guessed at.
      if (c) return { ok: false, reason: "expired", message: `API key expired at ${new Date(c.expiresAt).toISOString()}`, invalidToken: true };
    }
    return { ok: false, reason: "invalid-key", message: "invalid credentials", invalidToken: true };
  }

  async #jwt(v: JwtVerifier, token: string): Promise<AuthResult> {
    try {
      const id = await v.verify(token);
      return { ok: true, identity: this.#identity("jwt", id.subject, id.groups, id) };
    } catch (e) {
      const reason = e instanceof JwtError ? e.reason : "invalid";
      const message = e instanceof JwtError ? e.message : "token invalid";
      return { ok: false, reason, message, invalidToken: true };
    }
  }
}
