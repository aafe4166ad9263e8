// The audit log: one JSON line per MCP request on stdout. Lines are buffered and written in one
// write every 20 ms (or when the buffer passes 64 KiB), so auditing costs a string push on the
// hot path, not a syscall. Arguments are redacted before they are serialized (secrets.ts).

import { REDACTED, isSecretKey, scrubText } from "./secrets.ts";

/** Whether a whole string value is a credential (kept for callers that test one value). */
export function looksLikeSecret(s: string): boolean {
  return scrubText(s) !== s;
}

function normalizeKey(k: string): string {
  return k.replace(/([a-z0-9])([A-Z])/g, "$1 $2").toLowerCase().replace(/[^a-z0-9]/g, "");
}

/** Longest string kept in an audit line (after scrubbing, so a secret across the cut is already gone). */
const MAX_STRING = 512;

/**
 * The arguments as they may appear in an audit line: values under keys that name a secret (always, plus
 * `audit.redactKeys`) become [REDACTED]; every other string, object key included, has the credentials
 * inside it replaced in place (secrets.ts) before it is cut to 512 characters; a secret-named flag in
 * an argv-style array (`["--password", "x"]`) redacts the element after it.
 */
export function makeRedactor(configured: readonly string[]): (value: unknown) => unknown {
  const extra = new Set(configured.map(normalizeKey));
  const secretKey = (k: string): boolean => isSecretKey(k, extra);
  const text = (s: string): string => {
    const c = s.length >= 4 ? scrubText(s) : s;
    return c.length > MAX_STRING ? `${c.slice(0, MAX_STRING)}…` : c;
  };
  const walk = (v: unknown, depth: number): unknown => {
    if (typeof v === "string") return text(v);
    if (v === null || typeof v !== "object") return v;
    if (depth > 8) return "[…]";
    if (Array.isArray(v)) {
      const out = v.slice(0, 50).map((x) => walk(x, depth + 1));
      for (let i = 0; i + 1 < out.length; i++) {
        const f = v[i];
        if (typeof f === "string" && /^--?[A-Za-z][\w-]*$/.test(f) && secretKey(f)) out[i + 1] = REDACTED;
      }
      return out;
    }
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[text(k)] = secretKey(k) ? REDACTED : walk(x, depth + 1);
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
