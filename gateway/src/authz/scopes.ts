// OAuth scopes (MCP authorization spec 2025-11-25 and 2026-07-28, RFC 6750 section 3): the scopes a token
// carries, the scopes an operation needs, and the challenges that tell a client what to ask for.

/** Scopes granted by a token: `scope` (space-separated string, RFC 9068) or `scp` (array or string). */
export function grantedScopes(payload: Record<string, unknown>): string[] {
  const out = new Set<string>();
  for (const claim of [payload.scope, payload.scp]) {
    if (typeof claim === "string") for (const s of claim.split(/\s+/)) s && out.add(s);
    else if (Array.isArray(claim)) for (const s of claim) typeof s === "string" && s && out.add(s);
  }
  return [...out];
}

export function missingScopes(needed: readonly string[], granted: ReadonlySet<string> | readonly string[]): string[] {
  const g = granted instanceof Set ? granted : new Set(granted as readonly string[]);
  return needed.filter((s) => !g.has(s));
}

/** A quoted-string auth-param value (RFC 9110): backslash-escape '"' and '\\', drop control characters. */
function q(v: string): string {
  // Only printable ASCII may appear in a header value: everything else (controls, CR/LF) is dropped.
  return `"${[...v]
    .filter((ch) => ch >= " " && ch <= "~")
    .join("")
    .replace(/["\\]/g, "\\$&")}"`;
}

/** The 401 challenge: where the metadata is, which scopes to ask for first, and why a token was refused. */
export function unauthorizedChallenge(resourceMetadata: string, scopes: readonly string[], invalidToken?: string): string {
  let h = `Bearer resource_metadata=${q(resourceMetadata)}`;
  if (scopes.length > 0) h += `, scope=${q(scopes.join(" "))}`;
  if (invalidToken !== undefined) h += `, error="invalid_token", error_description=${q(invalidToken)}`;
  return h;
}

/**
 * The 403 challenge for a valid token that lacks scopes: every scope the operation needs in one
 * challenge, plus the relevant scopes the token already has (the spec's recommended approach, so a
 * client that replaces its scope set with the challenged one loses nothing).
 */
export function insufficientScopeChallenge(resourceMetadata: string, scopes: readonly string[], description: string): string {
  return `Bearer error="insufficient_scope", scope=${q(scopes.join(" "))}, resource_metadata=${q(resourceMetadata)}, error_description=${q(description)}`;
}

/** Sorted union, for stable challenges and metadata. */
export function unionScopes(...lists: readonly (readonly string[] | undefined)[]): string[] {
  const s = new Set<string>();
  for (const l of lists) for (const x of l ?? []) s.add(x);
  return [...s].sort();
}
