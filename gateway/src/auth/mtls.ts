// Istio peer identity from x-forwarded-client-cert (XFCC). The Istio sidecar sets this header for
// mTLS connections, so it is trusted only when config.auth.mtls is set (mesh on) and the pod is not
// reachable around the sidecar (the renderer's NetworkPolicy and PeerAuthentication STRICT).
//
// Envoy's format (http_conn_man/headers, x-forwarded-client-cert): elements separated by `,`, one per
// proxy; in an element, `key=value` pairs separated by `;`; keys By, Hash, Cert, Chain, Subject, URI,
// DNS (case-insensitive); a value holding `,` `;` or `=` is double-quoted, with `"` inside written `\"`.
// A sidecar in APPEND_FORWARD mode appends its own element to whatever header the caller sent, so the
// caller controls every element but the last. The parser is strict: a caller's unbalanced quote must
// not swallow the sidecar's element (so that the caller's URI would be read as the last one); any
// malformed header is refused as a whole, and the identity comes from the last element only.

export interface XfccElement {
  /** Lower-cased key -> values in order (URI and DNS may repeat). */
  pairs: Map<string, string[]>;
}

export type XfccParse = { ok: true; elements: XfccElement[] } | { ok: false; problem: string };

const KEYS = new Set(["by", "hash", "cert", "chain", "subject", "uri", "dns"]);

/** Pure: the header as Envoy writes it, or the first thing wrong with it. */
export function parseXfcc(header: string): XfccParse {
  const elements: XfccElement[] = [];
  let i = 0;
  const n = header.length;
  const fail = (problem: string): XfccParse => ({ ok: false, problem: `${problem} at offset ${i}` });
  const skipSpaces = () => {
    // Optional white space around elements only (a proxy that folds two header lines writes ", ").
    while (i < n && (header[i] === " " || header[i] === "\t")) i++;
  };
  skipSpaces();
  if (i === n) return fail("empty header");
  for (;;) {
    const pairs = new Map<string, string[]>();
    for (;;) {
      const keyStart = i;
      while (i < n && /[A-Za-z]/.test(header[i]!)) i++;
      const key = header.slice(keyStart, i).toLowerCase();
      if (key === "") return fail("expected a key");
      if (!KEYS.has(key)) return fail(`unknown key "${header.slice(keyStart, i).slice(0, 20)}"`);
      if (header[i] !== "=") return fail(`expected "=" after ${key}`);
      i++;
      let value = "";
      if (header[i] === '"') {
        i++;
        let closed = false;
        while (i < n) {
          const c = header[i]!;
          if (c === "\\" && header[i + 1] === '"') {
            value += '"';
            i += 2;
          } else if (c === '"') {
            i++;
            closed = true;
            break;
          } else {
            value += c;
            i++;
          }
        }
        if (!closed) return fail("unbalanced double quote");
      } else {
        const start = i;
        while (i < n && header[i] !== ";" && header[i] !== ",") {
          if (header[i] === '"' || header[i] === "=") return fail(`unexpected ${JSON.stringify(header[i])} in an unquoted value`);
          i++;
        }
        value = header.slice(start, i);
      }
      if (/\p{Cc}/u.test(value)) return fail("control character in a value");
      const list = pairs.get(key);
      if (list) list.push(value);
      else pairs.set(key, [value]);
      if (header[i] === ";") {
        i++;
        continue;
      }
      break;
    }
    elements.push({ pairs });
    skipSpaces();
    if (i === n) break;
    if (header[i] !== ",") return fail(`expected "," or ";" after a value`);
    i++;
    skipSpaces();
    if (i === n) return fail("empty element at the end");
  }
  return { ok: true, elements };
}

export type XfccPeer = { ok: true; uri: string | undefined } | { ok: false; problem: string };

/**
 * Pure: the SPIFFE id of the immediate peer, from the last element (the one the local sidecar
 * appended). `uri: undefined` when there is no header or the last element names no SPIFFE id; a
 * refusal when the header is malformed or the last element names more than one SPIFFE id (an SVID has
 * exactly one URI SAN, so two are not a certificate the mesh issued).
 */
export function xfccPeer(header: string | readonly string[] | undefined): XfccPeer {
  if (header === undefined) return { ok: true, uri: undefined };
  // Repeated header lines are one list (RFC 9110 5.3); Node already joins unknown headers with ", ".
  const parsed = parseXfcc(typeof header === "string" ? header : header.join(","));
  if (!parsed.ok) return parsed;
  const last = parsed.elements[parsed.elements.length - 1]!;
  const ids = (last.pairs.get("uri") ?? []).filter((u) => u.startsWith("spiffe://"));
  if (ids.length > 1) return { ok: false, problem: "the peer element names more than one SPIFFE id" };
  return { ok: true, uri: ids[0] };
}

/** Pure: the SPIFFE id of the immediate peer, or undefined (also for a malformed header). */
export function xfccPeerUri(header: string | undefined): string | undefined {
  const p = xfccPeer(header);
  return p.ok ? p.uri : undefined;
}
