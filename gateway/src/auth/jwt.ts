// JWT bearer tokens. Keys come from a JWKS file, a JWKS URL, or the issuer's OIDC discovery document.
// The key set is kept in memory and refreshed in the background; when the issuer is unreachable the last
// good key set keeps serving (a failed refresh never empties it). The token header's `alg` is checked
// against the configured asymmetric algorithms before any verification, so `none` and HMAC tokens (e.g.
// HS256 "signed" with the public key) never reach a verifier. Verified tokens are cached by digest until
// they expire, so a client reusing its token pays one hash per request.
import { readFile, stat } from "node:fs/promises";
import { createLocalJWKSet, decodeProtectedHeader, errors, type JSONWebKeySet, type JWTPayload, jwtVerify } from "jose";
import type { GatewayConfig } from "../../../contract/gateway-config.ts";
import { errorKind, log } from "../log.ts";
import { grantedScopes } from "../authz/scopes.ts";
import { sha256 } from "./apikeys.ts";

type JwtConfig = NonNullable<GatewayConfig["auth"]["jwt"]>;

/** Algorithms the gateway can accept at all: asymmetric signatures only. */
export const ASYMMETRIC_ALGS = new Set(["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"]);

export class JwtError extends Error {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.reason = reason;
  }
}

export interface JwtIdentity {
  subject: string;
  groups: string[];
  /** `scope`/`scp` claims (issue 13: required scopes per tool and rule). */
  scopes: string[];
  claims: Record<string, unknown>;
}

type KeySet = ReturnType<typeof createLocalJWKSet>;

/** Only https, except loopback (tests, a local issuer). */
export function checkFetchUrl(url: string, field: string): void {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`${field}: not a URL`);
  }
  const loopback = u.hostname === "localhost" || u.hostname === "127.0.0.1" || u.hostname === "[::1]";
  if (u.protocol !== "https:" && !(u.protocol === "http:" && loopback)) throw new Error(`${field}: must be an https URL (http only for loopback)`);
}

async function fetchJson(url: string, timeoutMs: number): Promise<unknown> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: "error", headers: { accept: "application/json" } });
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  return res.json();
}

export class JwtVerifier {
  readonly #cfg: JwtConfig;
  readonly #algs: string[];
  #keys: KeySet | undefined;
  #jwksUri: string | undefined;
  #loading: Promise<void> | undefined;
  #lastLoad = 0;
  #fileMtime = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #cache = new Map<string, { id: JwtIdentity; until: number }>();
  readonly refreshMs: number;

  constructor(cfg: JwtConfig, opts: { refreshMs?: number } = {}) {
    this.#cfg = cfg;
    this.refreshMs = opts.refreshMs ?? 300_000;
    const bad = cfg.algorithms.filter((a) => !ASYMMETRIC_ALGS.has(a));
    if (bad.length > 0) throw new Error(`auth.jwt.algorithms: ${bad.join(", ")} not allowed (asymmetric algorithms only)`);
    this.#algs = cfg.algorithms;
    this.#jwksUri = cfg.jwksUri;
    if (cfg.jwksUri) checkFetchUrl(cfg.jwksUri, "auth.jwt.jwksUri");
    if (!cfg.jwksUri && !cfg.jwksFile) checkFetchUrl(cfg.issuer, "auth.jwt.issuer");
  }

  get ready(): boolean {
    return this.#keys !== undefined;
  }

  async start(): Promise<void> {
    await this.refresh().catch(() => undefined);
    // Files are re-read when their mtime changes (rotation); URLs every refreshMs.
    const every = this.#cfg.jwksFile ? 2000 : this.refreshMs;
    this.#timer = setInterval(() => void this.refresh().catch(() => undefined), every);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
  }

  /** Loads the key set once at a time; on failure the previous key set stays in force. */
  refresh(): Promise<void> {
    this.#loading ??= this.#load().finally(() => {
      this.#loading = undefined;
    });
    return this.#loading;
  }

  async #load(): Promise<void> {
    this.#lastLoad = Date.now();
    try {
      let jwks: unknown;
      if (this.#cfg.jwksFile) {
        const m = (await stat(this.#cfg.jwksFile)).mtimeMs;
        if (m === this.#fileMtime && this.#keys) return;
        jwks = JSON.parse(await readFile(this.#cfg.jwksFile, "utf8"));
        this.#fileMtime = m;
      } else {
        if (!this.#jwksUri) {
          const issuer = this.#cfg.issuer.replace(/\/+$/, "");
          const doc = (await fetchJson(`${issuer}/.well-known/openid-configuration`, 3000)) as Record<string, unknown>;
          if (doc.issuer !== this.#cfg.issuer && doc.issuer !== issuer) throw new Error("discovery issuer mismatch");
          if (typeof doc.jwks_uri !== "string") throw new Error("discovery document has no jwks_uri");
          checkFetchUrl(doc.jwks_uri, "jwks_uri");
          this.#jwksUri = doc.jwks_uri;
        }
        jwks = await fetchJson(this.#jwksUri, 3000);
      }
      if (!jwks || typeof jwks !== "object" || !Array.isArray((jwks as { keys?: unknown }).keys)) throw new Error("not a JWKS document");
      this.#keys = createLocalJWKSet(jwks as JSONWebKeySet);
      log("info", "jwks loaded", { keys: (jwks as JSONWebKeySet).keys.length });
    } catch (e) {
      log("warn", this.#keys ? "jwks refresh failed; serving cached keys" : "jwks not available yet", {
        error: e instanceof Error && !(e as { code?: unknown }).code ? e.message.slice(0, 120) : errorKind(e),
      });
      throw e;
    }
  }

  async verify(token: string): Promise<JwtIdentity> {
    const digest = sha256(token).toString("base64");
    const hit = this.#cache.get(digest);
    const now = Date.now();
    if (hit) {
      if (hit.until > now) return hit.id;
      this.#cache.delete(digest);
    }
    let alg: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw new JwtError("malformed", "malformed token");
    }
    if (typeof alg !== "string" || !this.#algs.includes(alg)) throw new JwtError("algorithm", "token algorithm not accepted");
    if (!this.#keys) await this.refresh().catch(() => undefined);
    if (!this.#keys) throw new JwtError("keys-unavailable", "token keys unavailable");
    let payload: JWTPayload;
    try {
      payload = await this.#verifyWith(this.#keys, token);
    } catch (e) {
      // An unknown kid may mean the issuer rotated its keys: refresh (at most every 30 s) and retry once.
      if (e instanceof errors.JWKSNoMatchingKey && Date.now() - this.#lastLoad > 30_000) {
        await this.refresh().catch(() => undefined);
        payload = await this.#verifyWith(this.#keys, token).catch((e2: unknown) => {
          throw toJwtError(e2);
        });
      } else throw toJwtError(e);
    }
    const sub = payload[this.#cfg.subjectClaim];
    if (typeof sub !== "string" || sub.length === 0) throw new JwtError("claims", `token has no "${this.#cfg.subjectClaim}" claim`);
    const rawGroups = payload[this.#cfg.groupsClaim];
    const groups = Array.isArray(rawGroups) ? rawGroups.filter((g): g is string => typeof g === "string") : [];
    const id = { subject: sub, groups, scopes: grantedScopes(payload), claims: payload as Record<string, unknown> };
    const expMs = (payload.exp ?? 0) * 1000;
    const ageLimit = ((payload.iat ?? 0) + this.#cfg.maxTokenAgeSeconds) * 1000;
    const until = Math.min(expMs, ageLimit, now + 300_000);
    if (this.#cache.size >= 10000) this.#cache.clear();
    if (until > now) this.#cache.set(digest, { id, until });
    return id;
  }

  #verifyWith(keys: KeySet, token: string): Promise<JWTPayload> {
    return jwtVerify(token, keys, {
      issuer: this.#cfg.issuer,
      audience: this.#cfg.audiences,
      algorithms: this.#algs,
      maxTokenAge: this.#cfg.maxTokenAgeSeconds,
      clockTolerance: 30,
      requiredClaims: ["exp", "iat"],
    }).then((r) => r.payload);
  }
}

function toJwtError(e: unknown): JwtError {
  if (e instanceof JwtError) return e;
  if (e instanceof errors.JWTExpired) return new JwtError("expired", "token expired");
  if (e instanceof errors.JWTClaimValidationFailed) return new JwtError("claims", `token claim "${e.claim}" rejected`);
  if (e instanceof errors.JWSSignatureVerificationFailed) return new JwtError("signature", "token signature invalid");
  if (e instanceof errors.JWKSNoMatchingKey) return new JwtError("unknown-key", "token signed by an unknown key");
  if (e instanceof errors.JOSEAlgNotAllowed) return new JwtError("algorithm", "token algorithm not accepted");
  return new JwtError("invalid", "token invalid");
}
