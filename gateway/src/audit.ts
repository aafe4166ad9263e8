// The audit log: one JSON line per MCP request on stdout. Lines are buffered and written in one
// write every 20 ms (or when the buffer passes 64 KiB), so auditing costs a string push on the
// hot path, not a syscall. Arguments are redacted before they are serialized (secrets.ts).

import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { type CheckpointFields, CheckpointKeyError, type CheckpointKey, checkpointKey, checkpointPayload, genesis, lineHash } from "./auditchain.ts";
import { ERROR_KEY, bytesMayHoldKey, mayHoldKey, sanitizeMessage } from "./sanitize.ts";
import { REDACTED, isSecretKey, scrubText } from "./secrets.ts";
import { BoundedMemo } from "./memo.ts";
import { parseEvent } from "./sse.ts";

function normalizeKey(k: string): string {
  return k
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .toLowerCase()
    .replace(/[^a-z0-9]/g, "");
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
  const text = (s: string): string => {
    const c = s.length >= 4 ? scrubText(s) : s;
    return c.length > MAX_STRING ? `${c.slice(0, MAX_STRING)}…` : c;
  };
  // Argument names repeat from call to call: their verdict and scrubbed form are kept (bounded: clients choose them).
  const keyInfo = new BoundedMemo(10_000, (k: string) => ({ secret: isSecretKey(k, extra), shown: text(k) }));
  const secretKey = (k: string): boolean => keyInfo.get(k).secret;
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
    for (const [k, x] of Object.entries(v)) {
      const i = keyInfo.get(k);
      out[i.shown] = i.secret ? REDACTED : walk(x, depth + 1);
    }
    return out;
  };
  return (value) => walk(value, 0);
}

/**
 * Formats epoch milliseconds like Date.prototype.toISOString, formatting the part up to the second
 * once per second: consecutive audit lines are mostly within the same second.
 */
export function isoTimeFormatter(): (ms: number) => string {
  let second = Number.NaN;
  let prefix = "";
  return (ms) => {
    if (!Number.isInteger(ms) || ms < 0 || ms > 253402300799999) return new Date(ms).toISOString();
    const s = Math.floor(ms / 1000);
    if (s !== second) {
      second = s;
      prefix = new Date(s * 1000).toISOString().slice(0, 20);
    }
    const frac = ms - s * 1000;
    return `${prefix}${frac < 10 ? "00" : frac < 100 ? "0" : ""}${frac}Z`;
  };
}

export interface AuditRecord {
  /** ISO 8601, or epoch milliseconds (formatted when the line is written). */
  time: string | number;
  client: string;
  source: string;
  transport: string;
  method: string;
  tool?: string;
  /** The call's arguments as the client sent them: redacted when the line is written (never logged as is). */
  arguments?: unknown;
  outcome: string;
  status: number;
  latencyMs: number;
  session?: string;
  /** issue 11: the protocol version the request named (2026-07-28 requests are stateless: no session). */
  protocol?: string;
  reason?: string;
  /** The authorization rule or constraint that refused the request (issue 13). */
  rule?: string;
  /** How the request was answered: "ok", "error" (a JSON-RPC error) or "tool-error" (a result with isError). */
  result?: AuditResult["result"];
  /** The JSON-RPC error the client received, sanitized (never the result content). */
  error?: { code: number; message: string };
}

export interface AuditResult {
  result: "ok" | "error" | "tool-error";
  error?: { code: number; message: string };
}

export interface AuditSink {
  write(chunk: string): unknown;
}

export interface AuditOptions {
  /** Signed checkpoints (auditchain.ts); without them lines are still chained. */
  checkpoint?: { key: CheckpointKey; everyLines: number; everySeconds: number };
  /** This run's id (random by default); the first line's prev hashes it. */
  run?: string;
  now?: () => number;
}

/**
 * One JSON line per request. Each line ends with `seq` and `prev` (the sha256 of the line before), and
 * with a checkpoint key every `everyLines` lines or `everySeconds` (whichever comes first, while lines
 * arrive) a signed checkpoint line follows, plus a final one on close(): `mcp-bastion audit verify`
 * then finds a line removed, edited, reordered, or appended without the key.
 */
export class AuditLog {
  /**
   * Records not serialized yet, and checkpoint markers between them (true: the final one). The hot
   * path only queues a record: serializing, chaining (a sha256 per line) and writing happen in flush(),
   * for every queued record at once, every 20 ms or sooner when many are queued.
   */
  #pending: (AuditRecord | boolean)[] = [];
  #scheduled = false;
  readonly #sink: AuditSink;
  readonly redact: (value: unknown) => unknown;
  readonly run: string;
  readonly #checkpoint: AuditOptions["checkpoint"];
  readonly #now: () => number;
  #seq = 0;
  #records = 0;
  #prev: string;
  #unsigned = 0;
  #checkpointTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(redactKeys: readonly string[], sink: AuditSink = process.stdout, opts: AuditOptions = {}) {
    this.#sink = sink;
    this.redact = makeRedactor(redactKeys);
    this.run = opts.run ?? randomBytes(9).toString("base64url");
    this.#prev = genesis(this.run);
    this.#checkpoint = opts.checkpoint;
    this.#now = opts.now ?? Date.now;
    if (this.#checkpoint && !this.#checkpoint.key.sign)
      throw new CheckpointKeyError("audit checkpoint key: a public key can verify but not sign; mount the private key or the HMAC secret");
  }

  /** Appends `seq`, `prev` (and `run` on a run's first line) to a serialized object and chains it. */
  #chain(json: string): string {
    const seq = this.#seq++;
    const line = `${json.slice(0, -1)},${seq === 0 ? `"run":${JSON.stringify(this.run)},` : ""}"seq":${seq},"prev":"${this.#prev}"}`;
    this.#prev = lineHash(line);
    return line;
  }

  /** Lines of the same second share its formatted prefix (toISOString per line was a fifth of a line's cost). */
  readonly #iso = isoTimeFormatter();

  /** Method and tool names are the client's choice: cut to 128 characters and scrubbed (cached, bounded). */
  readonly #names = new Map<string, string>();
  #name(s: string): string {
    let v = this.#names.get(s);
    if (v === undefined) {
      v = scrubText(s.length > 128 ? `${s.slice(0, 128)}…` : s);
      if (this.#names.size >= 10_000) this.#names.clear();
      if (s.length <= 1024) this.#names.set(s, v);
    }
    return v;
  }

  /**
   * Queues one line. The record (arguments included) must not change afterwards: it is redacted,
   * serialized and chained at the next flush, and belongs to the log from here on.
   */
  record(r: AuditRecord): void {
    if (this.#closed) return;
    this.#records++;
    this.#pending.push(r);
    const cp = this.#checkpoint;
    if (cp) {
      this.#unsigned++;
      if (this.#unsigned >= cp.everyLines) {
        this.#pending.push(false);
        this.#unsigned = 0;
      } else if (!this.#checkpointTimer) {
        this.#checkpointTimer = setTimeout(() => {
          this.#checkpointTimer = undefined;
          if (this.#unsigned > 0) {
            this.#pending.push(false);
            this.#unsigned = 0;
            this.flush();
          }
        }, cp.everySeconds * 1000);
        this.#checkpointTimer.unref();
      }
    }
    if (this.#pending.length >= 512) this.flush();
    else if (!this.#scheduled) {
      // One write per 20 ms at most: under load, hundreds of lines share a syscall. close() flushes.
      this.#scheduled = true;
      setTimeout(this.#flushSoon, 20);
    }
  }

  /**
   * The line of one record: time formatted, names cut and scrubbed, arguments redacted, the error
   * sanitized, then chained. The record is the log's own (record()), so it is rewritten in place.
   */
  #line(r: AuditRecord): string {
    if (typeof r.time === "number") r.time = this.#iso(r.time);
    r.method = this.#name(r.method);
    if (r.tool !== undefined) r.tool = this.#name(r.tool);
    if (r.arguments !== undefined) r.arguments = this.redact(r.arguments);
    if (r.error) r.error = { code: r.error.code, message: scrubText(r.error.message).slice(0, 300) };
    return this.#chain(JSON.stringify(r));
  }

  #checkpointLine(final: boolean): string {
    const cp = this.#checkpoint!;
    const fields: CheckpointFields = {
      time: new Date(this.#now()).toISOString(),
      run: this.run,
      seq: this.#seq,
      prev: this.#prev,
      alg: cp.key.alg,
      kid: cp.key.kid,
      ...(final ? { final: true } : {}),
    };
    const sig = cp.key.sign!(checkpointPayload(fields));
    const { seq: _s, prev: _p, ...shown } = fields;
    // Through #chain: the checkpoint is a line of the chain too (its seq and prev are the signed ones).
    return this.#chain(JSON.stringify({ type: "checkpoint", ...shown, sig }));
  }

  #flushSoon = (): void => {
    this.#scheduled = false;
    this.flush();
  };

  flush(): void {
    if (this.#pending.length === 0) return;
    const pending = this.#pending;
    this.#pending = [];
    let data = "";
    for (const p of pending) data += `${typeof p === "boolean" ? this.#checkpointLine(p) : this.#line(p)}\n`;
    this.#sink.write(data);
  }

  /** Writes the final checkpoint (with a key) and what is buffered; later records are dropped. */
  close(): void {
    if (this.#closed) return;
    if (this.#checkpointTimer) clearTimeout(this.#checkpointTimer);
    if (this.#checkpoint && this.#records > 0) this.#pending.push(true);
    this.#closed = true;
    this.flush();
  }
}

/**
 * The AuditLog options a gateway config asks for: the checkpoint key read from its file (a mounted
 * Secret). A configured key that cannot be read or used is a startup error naming the field, never a
 * gateway that silently writes unsigned lines.
 */
export function auditOptionsFromConfig(audit: { checkpoint?: { keyFile: string; everyLines: number; everySeconds: number } }): AuditOptions {
  const cp = audit.checkpoint;
  if (!cp) return {};
  let material: Buffer;
  try {
    material = readFileSync(cp.keyFile);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "unreadable";
    throw new CheckpointKeyError(`audit.checkpoint.keyFile: cannot read ${cp.keyFile} (${code}): the audit checkpoint key is missing`);
  }
  return { checkpoint: { key: checkpointKey(material, "audit.checkpoint.keyFile"), everyLines: cp.everyLines, everySeconds: cp.everySeconds } };
}

/** The audit result of every plain success (shared: nobody changes an AuditResult). */
const RESULT_OK: AuditResult = Object.freeze({ result: "ok" });

const IS_ERROR_KEY = Buffer.from('"isError"');
const RESULT_KEY = Buffer.from('"result"');

/**
 * auditResultOf over the answer's bytes: the markers are searched in the Buffer, so the common
 * answer (no error) is never decoded into a string just to be audited.
 */
export function auditResultOfBytes(body: Buffer, sse: boolean, id: unknown, plain = !bytesMayHoldKey(body, ERROR_KEY)): AuditResult | undefined {
  // `plain`: the caller already knows the body holds neither `"error"` nor a \u escape.
  if (plain && body.indexOf(IS_ERROR_KEY) < 0) return body.indexOf(RESULT_KEY) >= 0 ? RESULT_OK : undefined;
  return auditResultOf(body.toString("utf8"), sse, id);
}

/** Pure: the audit result of one JSON-RPC response message (already parsed). */
function resultOfMessage(m: unknown): AuditResult | undefined {
  if (!m || typeof m !== "object") return undefined;
  const r = m as { result?: unknown; error?: { code?: unknown; message?: unknown } };
  if (r.error && typeof r.error === "object") {
    const code = Number.isInteger(r.error.code) ? (r.error.code as number) : -32603;
    return { result: "error", error: { code, message: sanitizeMessage(r.error.message) } };
  }
  if (r.result !== undefined) return { result: (r.result as { isError?: unknown } | null)?.isError === true ? "tool-error" : "ok" };
  return undefined;
}

/**
 * Pure: how a response body answered request `id` (JSON, or SSE events carrying JSON-RPC messages),
 * for the audit line: the status and the sanitized error, never the result content. A body without
 * `"error"` or `"isError"` is "ok" without being parsed (large results cost a substring search only).
 */
export function auditResultOf(body: string, sse: boolean, id: unknown): AuditResult | undefined {
  if (!mayHoldKey(body, '"error"') && !mayHoldKey(body, '"isError"')) return body.includes('"result"') ? RESULT_OK : undefined;
  const want = JSON.stringify(id);
  const parse = (raw: string): AuditResult | undefined => {
    try {
      const m = JSON.parse(raw) as { id?: unknown };
      if (id !== undefined && JSON.stringify(m?.id) !== want) return undefined;
      return resultOfMessage(m);
    } catch {
      return undefined;
    }
  };
  if (!sse) return parse(body);
  for (const block of body.split(/\r?\n\r?\n/)) {
    const e = parseEvent(block);
    const r = e.data !== undefined ? parse(e.data) : undefined;
    if (r) return r;
  }
  return undefined;
}

/**
 * Tells a proxied response's audit result while it streams through. Bodies up to 64 KiB (every error
 * answer, most results) are kept and parsed at the end; past that only markers are searched for in the
 * passing chunks (`"result"`, `"isError":true`), so a large answer costs no memory here. A class, not
 * closures: one small object per proxied request.
 */
export class ResultTap {
  readonly #keep: number;
  #chunks: Buffer[] = [];
  #size = 0;
  #streaming = false;
  #carry = "";
  #sawResult = false;
  #sawToolError = false;

  constructor(keep = 64 * 1024) {
    this.#keep = keep;
  }

  #scan(text: string): void {
    const t = this.#carry + text;
    if (!this.#sawResult && t.includes('"result"')) this.#sawResult = true;
    if (!this.#sawToolError && /"isError"\s*:\s*true/.test(t)) this.#sawToolError = true;
    this.#carry = t.slice(-24);
  }

  push(chunk: Buffer): void {
    this.#size += chunk.length;
    if (!this.#streaming && this.#size <= this.#keep) return void this.#chunks.push(chunk);
    if (!this.#streaming) {
      this.#streaming = true;
      for (const c of this.#chunks) this.#scan(c.toString("latin1"));
      this.#chunks = [];
    }
    this.#scan(chunk.toString("latin1"));
  }

  result(sse: boolean, id: unknown): AuditResult | undefined {
    if (this.#size === 0) return undefined;
    if (!this.#streaming) return auditResultOfBytes(this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks), sse, id);
    return this.#sawResult ? (this.#sawToolError ? { result: "tool-error" } : RESULT_OK) : undefined;
  }
}

export function resultTap(keep = 64 * 1024): ResultTap {
  return new ResultTap(keep);
}
