// The identity headers the gateway sets for the MCP server (gateway/src/authz/identity.ts) and the
// rules their names obey, which the operator checks at admission so a spec the gateway would refuse
// never reaches it.
import type { ProcessIdentityRole } from "./identity-env.ts";

export interface IdentityConfig {
  headers: { client?: string; subject?: string; groups?: string; scopes?: string; source?: string };
  /** No header: the signed token only goes to a stdio server's environment (env.token). */
  signedJwt?: { header?: string; audience: string; ttlSeconds: number };
  /**
   * A stdio server's environment (one process per session, so per caller): variable names per fact.
   * The bridge sets them for the child it spawns, after removing any inherited variable of those names.
   */
  env?: Partial<Record<ProcessIdentityRole, string>>;
}

/** Header names the gateway itself forwards or that carry credentials: identity headers must not reuse them. */
export const RESERVED_HEADERS = new Set([
  "accept",
  "mcp-session-id",
  "mcp-protocol-version",
  "last-event-id",
  "content-type",
  "content-length",
  "host",
  "authorization",
  "cookie",
  "x-api-key",
  "x-forwarded-client-cert",
  "x-forwarded-for",
  "connection",
  "transfer-encoding",
]);

export function identityHeaderProblems(cfg: IdentityConfig): string[] {
  const out: string[] = [];
  const names = [
    ...Object.entries(cfg.headers).map(([k, v]) => [`headers.${k}`, v] as const),
    ...(cfg.signedJwt?.header ? [["signedJwt.header", cfg.signedJwt.header] as const] : []),
  ];
  const seen = new Set<string>();
  for (const [field, name] of names) {
    if (name === undefined) continue;
    const n = name.toLowerCase();
    if (!/^[a-z0-9][a-z0-9-]*$/.test(n)) out.push(`${field}: "${name}" is not a header name`);
    else if (RESERVED_HEADERS.has(n)) out.push(`${field}: "${name}" is reserved (the gateway sets or strips it)`);
    if (seen.has(n)) out.push(`${field}: "${name}" is used twice`);
    seen.add(n);
  }
  return out;
}
