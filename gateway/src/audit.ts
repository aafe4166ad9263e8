// The audit log: one JSON line per MCP request on stdout. Lines are buffered and written in one
// write every 20 ms (or when the buffer passes 64 KiB), so auditing costs a string push on the
// hot path, not a syscall. Arguments are redacted before they are serialized.

/** Keys always redacted, whatever the configuration says (compared lower-case, without - and _). */
const ALWAYS_REDACTED = [
  "authorization",
  "password",
  "passwd",
  "secret",
  "token",
  "apikey",
  "accesstoken",
  "refreshtoken",
  "idtoken",
  "clientsecret",
  "privatekey",
  "credential",
  "credentials",
  "cookie",
  "sessionid",
];

const REDACTED = "[REDACTED]";

/** Values that look like credentials: JWTs, bearer tokens, PEM keys, well-known key prefixes, long random strings. */
const TOKEN_PATTERNS: RegExp[] = [
  /^ey[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*$/, // JWT / JWS
  /^bearer\s+\S+/i,
  /-----BEGIN [A-Z ]*PRIVATE KEY-----/,
  /^(sk|pk|rk)[-_][A-Za-z0-9_-]{16,}$/, // OpenAI/Stripe style
  /^(ghp|gho|ghu|ghs|ghr|github_pat)_[A-Za-z0-9_]{20,}$/,
  /^xox[abprs]-[A-Za-z0-9-]{10,}$/, // Slack
  /^AKIA[0-9A-Z]{16}$/, // AWS access key id
  /^AIza[0-9A-Za-z_-]{35}$/, // Google API key
  /^glpat-[A-Za-z0-9_-]{20,}$/,
];

function normalizeKey(k: string): string {
  return k.toLowerCase().replace(/[-_.\s]/g, "");
}

/** A long string without spaces mixing letters and digits reads as a key or a token. */
function looksRandom(s: string): boolean {
  if (s.length < 32 || s.length > 4096 || /\s/.test(s)) return false;
  if (!/^[A-Za-z0-9+/=_\-.~]+$/.test(s)) return false;
  const classes = (/[a-z]/.test(s) ? 1 : 0) + (/[A-Z]/.test(s) ? 1 : 0) + (/[0-9]/.test(s) ? 1 : 0);
  return classes >= 3 || (classes >= 2 && /^[0-9a-f]{40,}$/i.test(s));
}

export function looksLikeSecret(s: string): boolean {
  for (const re of TOKEN_PATTERNS) if (re.test(s)) return true;
  return looksRandom(s);
}

export function makeRedactor(configured: readonly string[]): (value: unknown) => unknown {
  const keys = new Set([...ALWAYS_REDACTED, ...configured.map(normalizeKey)]);
  const secretKey = (k: string): boolean => {
    const n = normalizeKey(k);
    if (keys.has(n)) return true;
    // "github_token", "db_password", "x-api-key"...
    return n.endsWith("token") || n.endsWith("password") || n.endsWith("secret") || n.endsWith("apikey");
  };
  const walk = (v: unknown, depth: number): unknown => {
    if (typeof v === "string") return looksLikeSecret(v) ? REDACTED : v.length > 512 ? `${v.slice(0, 512)}…` : v;
    if (v === null || typeof v !== "object") return v;
    if (depth > 8) return "[…]";
    if (Array.isArray(v)) return v.slice(0, 50).map((x) => walk(x, depth + 1));
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = secretKey(k) ? REDACTED : walk(x, depth + 1);
    return out;
  };
  return (value) => walk(value, 0);
}

export interface AuditRecord {
  time: string;
  client: string;
  source: string;
  transport: string;
  method: string;
  tool?: string;
  arguments?: unknown;
  outcome: string;
  status: number;
  latencyMs: number;
  session?: string;
  reason?: string;
  /** The authorization rule or constraint that refused the request (issue 13). */
  rule?: string;
}

export interface AuditSink {
  write(chunk: string): unknown;
}

export class AuditLog {
  #buf: string[] = [];
  #size = 0;
  #scheduled = false;
  readonly #sink: AuditSink;
  readonly redact: (value: unknown) => unknown;

  constructor(redactKeys: readonly string[], sink: AuditSink = process.stdout) {
    this.#sink = sink;
    this.redact = makeRedactor(redactKeys);
  }

  record(r: AuditRecord): void {
    const line = `${JSON.stringify(r)}\n`;
    this.#buf.push(line);
    this.#size += line.length;
    if (this.#size > 65536) this.flush();
    else if (!this.#scheduled) {
      // One write per 20 ms at most: under load, hundreds of lines share a syscall. close() flushes.
      this.#scheduled = true;
      setTimeout(this.#flushSoon, 20);
    }
  }

  #flushSoon = (): void => {
    this.#scheduled = false;
    this.flush();
  };

  flush(): void {
    if (this.#buf.length === 0) return;
    const data = this.#buf.join("");
    this.#buf = [];
    this.#size = 0;
    this.#sink.write(data);
  }
}
