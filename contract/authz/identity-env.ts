// The caller's identity in a stdio server's environment (issue 13): the facts a process can get, the
// variable names they may take, and the rules those names obey. The operator checks them at admission,
// the bridge (gateway/src/bridge.ts) again when it starts; pure, no imports (the bridge is bundled alone).

/** The facts a stdio process can get in its environment; the bridge maps each to a variable name. */
export const PROCESS_IDENTITY_ROLES = ["client", "subject", "groups", "scopes", "source", "token"] as const;
export type ProcessIdentityRole = (typeof PROCESS_IDENTITY_ROLES)[number];

/**
 * Variable names identity may not take: they change how the process or its runtime starts (a subject
 * named "x.so" in LD_PRELOAD would be code execution chosen by a client), or that any program needs.
 */
export const RESERVED_ENV =
  /^(PATH|HOME|USER|LOGNAME|SHELL|PWD|TMPDIR|TMP|TEMP|TZ|LANG|LANGUAGE|TERM|HOSTNAME|IFS|ENV|BASH_ENV|CDPATH|PS4|LC_[A-Z_]*|LD_[A-Z_]*|DYLD_[A-Z_]*|NODE_[A-Z0-9_]*|NPM_[A-Z0-9_]*|PYTHON[A-Z0-9_]*|PERL5?[A-Z0-9_]*|RUBY[A-Z0-9_]*|GEM_[A-Z_]*|JAVA_TOOL_OPTIONS|_JAVA_OPTIONS|JDK_JAVA_OPTIONS|CLASSPATH|GLIBC_TUNABLES|SSL_CERT_[A-Z_]*|[A-Z_]*_PROXY|MCP_BASTION_[A-Z0-9_]*)$/i;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function identityEnvProblems(env: Partial<Record<string, string>> | undefined, hasSignedJwt: boolean): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const [role, name] of Object.entries(env ?? {})) {
    if (name === undefined) continue;
    const field = `env.${role}`;
    if (!(PROCESS_IDENTITY_ROLES as readonly string[]).includes(role)) out.push(`${field}: not one of ${PROCESS_IDENTITY_ROLES.join(", ")}`);
    if (!ENV_NAME.test(name)) out.push(`${field}: "${name}" is not an environment variable name (letters, digits, _)`);
    else if (RESERVED_ENV.test(name)) out.push(`${field}: "${name}" is reserved (it changes how programs start or run)`);
    if (seen.has(name)) out.push(`${field}: "${name}" is used twice`);
    seen.add(name);
  }
  if (env?.token !== undefined && !hasSignedJwt) out.push("env.token: needs signedJwt (audience, ttlSeconds) for the token it carries");
  return out;
}

export interface CallerFacts {
  key: string;
  kind: string;
  name: string;
  groups?: readonly string[];
  scopes?: readonly string[];
  spiffeId?: string;
  source: string;
}
