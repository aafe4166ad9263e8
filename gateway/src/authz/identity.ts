// The caller's verified identity for the MCP server (so a server that serves many users can show each
// one only their own data): configurable headers, and optionally a short-lived JWT signed with a key the
// gateway generates at start (never stored, never leaves the process) and publishes as a JWKS on its
// admin port. The client's own token is never forwarded (the MCP spec forbids token passthrough).
//
// The gateway forwards only a fixed list of headers to the upstream, so an identity header a client
// sends itself never reaches the server: these headers are always the gateway's own.
import { randomUUID } from "node:crypto";
import { type CryptoKey, type JWK, SignJWT, exportJWK, generateKeyPair } from "jose";
import type { IdentityConfig } from "../../../contract/authz/identity-headers.ts";
import type { ProcessIdentityRole } from "../../../contract/authz/identity-env.ts";

export interface CallerFacts {
  key: string;
  kind: string;
  name: string;
  groups?: readonly string[];
  scopes?: readonly string[];
  spiffeId?: string;
  source: string;
}

/** Header values carry only printable ASCII; anything else is percent-encoded so a name cannot inject headers. */
function headerValue(s: string): string {
  return /^[\x20-\x7e]*$/.test(s) ? s : encodeURIComponent(s);
}

export class IdentityForwarder {
  readonly #cfg: IdentityConfig;
  #key: CryptoKey | undefined;
  #jwk: JWK | undefined;
  readonly #kid = randomUUID();
  readonly #cache = new Map<string, { token: string; until: number }>();
  readonly #now: () => number;

  constructor(cfg: IdentityConfig, now: () => number = Date.now) {
    this.#cfg = cfg;
    this.#now = now;
  }

  get enabled(): boolean {
    return Object.values(this.#cfg.headers).some((v) => v !== undefined) || this.#cfg.signedJwt !== undefined || this.forProcesses;
  }

  /** Whether a stdio server's processes get the identity in their environment (the bridge's preamble). */
  get forProcesses(): boolean {
    return Object.values(this.#cfg.env ?? {}).some((v) => v !== undefined);
  }

  /** Generates the signing key (ES256) when a signed identity is configured. */
  async start(): Promise<void> {
    if (!this.#cfg.signedJwt) return;
    const { privateKey, publicKey } = await generateKeyPair("ES256");
    this.#key = privateKey;
    this.#jwk = { ...(await exportJWK(publicKey)), kid: this.#kid, alg: "ES256", use: "sig" };
  }

  /** The JWKS document for the admin port (empty when no signed identity is configured). */
  jwks(): { keys: JWK[] } {
    return { keys: this.#jwk ? [this.#jwk] : [] };
  }

  /**
   * Headers to add to the upstream request. Synchronous: a signed token is minted ahead (on first use of
   * an identity it is signed in the background and the call waits via `prepare`).
   */
  headers(c: CallerFacts): Record<string, string> {
    const h = this.#cfg.headers;
    const out: Record<string, string> = {};
    if (h.client) out[h.client.toLowerCase()] = headerValue(c.key);
    if (h.subject) out[h.subject.toLowerCase()] = headerValue(c.name);
    if (h.groups && c.groups) out[h.groups.toLowerCase()] = c.groups.map(headerValue).join(",");
    if (h.scopes && c.scopes) out[h.scopes.toLowerCase()] = c.scopes.map(headerValue).join(" ");
    if (h.source) out[h.source.toLowerCase()] = headerValue(c.source);
    const sj = this.#cfg.signedJwt;
    if (sj?.header) {
      const hit = this.#cache.get(this.#cacheKey(c));
      if (hit && hit.until > this.#now()) out[sj.header.toLowerCase()] = hit.token;
    }
    return out;
  }

  /**
   * The identity for one stdio process, by fact (the bridge maps facts to variable names): the same
   * values as the headers, and the signed token (minted ahead by `prepare`). The process keeps it for
   * its life, which is one session of one client.
   */
  processIdentity(c: CallerFacts): Partial<Record<ProcessIdentityRole, string>> {
    const env = this.#cfg.env ?? {};
    const out: Partial<Record<ProcessIdentityRole, string>> = {};
    if (env.client) out.client = headerValue(c.key);
    if (env.subject) out.subject = headerValue(c.name);
    if (env.groups && c.groups) out.groups = c.groups.map(headerValue).join(",");
    if (env.scopes && c.scopes) out.scopes = c.scopes.map(headerValue).join(" ");
    if (env.source) out.source = headerValue(c.source);
    if (env.token && this.#cfg.signedJwt) {
      const hit = this.#cache.get(this.#cacheKey(c));
      if (hit && hit.until > this.#now()) out.token = hit.token;
    }
    return out;
  }

  #cacheKey(c: CallerFacts): string {
    return `${c.key}\u0000${(c.groups ?? []).join(",")}\u0000${(c.scopes ?? []).join(" ")}\u0000${c.source}`;
  }

  /** Makes sure a fresh signed token exists for this caller (no-op without signedJwt or when cached). */
  prepare(c: CallerFacts): Promise<void> | undefined {
    const sj = this.#cfg.signedJwt;
    if (!sj || !this.#key) return undefined;
    const k = this.#cacheKey(c);
    const hit = this.#cache.get(k);
    // Reuse a token for the first half of its life, so every call carries at least ttl/2 of validity.
    if (hit && hit.until > this.#now()) return undefined;
    const nowS = Math.floor(this.#now() / 1000);
    return new SignJWT({
      client: c.key,
      kind: c.kind,
      ...(c.groups ? { groups: [...c.groups] } : {}),
      ...(c.scopes ? { scope: c.scopes.join(" ") } : {}),
      ...(c.spiffeId ? { spiffe_id: c.spiffeId } : {}),
      source: c.source,
    })
      .setProtectedHeader({ alg: "ES256", kid: this.#kid, typ: "JWT" })
      .setSubject(c.name)
      .setAudience(sj.audience)
      .setIssuer("mcp-bastion-gateway")
      .setIssuedAt(nowS)
      .setExpirationTime(nowS + sj.ttlSeconds)
      .setJti(randomUUID())
      .sign(this.#key)
      .then((token) => {
        if (this.#cache.size > 10000) this.#cache.clear();
        this.#cache.set(k, { token, until: this.#now() + (sj.ttlSeconds * 1000) / 2 });
      });
  }
}
