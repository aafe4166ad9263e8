// Server-sent events, parsed just enough to rewrite the JSON-RPC message inside an event.
// Events are separated by a blank line; `data:` lines of one event are joined with "\n".
import { Transform, type TransformCallback } from "node:stream";

export interface SseEvent {
  /** The raw lines of the event other than data (id:, event:, retry:, comments), kept verbatim. */
  other: string[];
  data: string | undefined;
}

/**
 * An SSE event boundary: a line terminator (CRLF, LF or CR: the SSE spec, and clients' parsers, accept
 * all three) followed by another, i.e. an empty line. The one definition the rewriter and the sanitizer
 * (sanitize.ts) split by: a boundary one of them missed would let an event pass unread.
 */
export const EVENT_BOUNDARY_SOURCE = String.raw`(?:\r\n|\n|\r(?!\n))(?:\r\n|\n|\r(?!\n))`;

export function parseEvent(block: string): SseEvent {
  const other: string[] = [];
  let data: string[] | undefined;
  for (const line of block.split(/\r?\n|\r/)) {
    if (line.startsWith("data:")) {
      data ??= [];
      data.push(line.slice(line[5] === " " ? 6 : 5));
    } else if (line.length > 0) other.push(line);
  }
  return { other, data: data?.join("\n") };
}

export function formatEvent(e: SseEvent): string {
  let s = e.other.length > 0 ? `${e.other.join("\n")}\n` : "";
  if (e.data !== undefined) for (const l of e.data.split("\n")) s += `data: ${l}\n`;
  return `${s}\n`;
}

/** Splits an SSE byte stream into events and lets `rewrite` replace each event's data. */
export class SseRewriter extends Transform {
  #buf = "";
  readonly #rewrite: (data: string) => string | undefined;
  readonly #maxEvent: number;

  constructor(rewrite: (data: string) => string | undefined, maxEvent = 16 * 1024 * 1024) {
    super();
    this.#rewrite = rewrite;
    this.#maxEvent = maxEvent;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#buf += chunk.toString("utf8");
    let m: RegExpExecArray | null;
    // Its own regex per call (exec's lastIndex is state; #emit pushes downstream, which may run another rewriter).
    const sep = new RegExp(EVENT_BOUNDARY_SOURCE, "g");
    let start = 0;
    // biome-ignore lint/suspicious/noAssignInExpressions: the usual exec loop
    while ((m = sep.exec(this.#buf)) !== null) {
      const block = this.#buf.slice(start, m.index);
      start = m.index + m[0].length;
      this.#emit(block);
    }
    this.#buf = this.#buf.slice(start);
    cb(this.#buf.length > this.#maxEvent ? new Error("event too large") : null);
  }

  override _flush(cb: TransformCallback): void {
    if (this.#buf.trim().length > 0) this.#emit(this.#buf);
    cb();
  }

  #emit(block: string): void {
    const e = parseEvent(block);
    if (e.data !== undefined) {
      const d = this.#rewrite(e.data);
      if (d === undefined) return; // dropped
      e.data = d;
    }
    this.push(formatEvent(e));
  }
}
