// The strings authorization decides on, in the form the MCP server will act on.
//
// A rule is only as good as the string it is matched against. MCP servers resolve resource URIs with
// the WHATWG URL parser (`new URL(uri)`), which deletes TAB/CR/LF, resolves `.` and `..` segments,
// treats `\` as `/` for special schemes (file:, http:...), lower-cases special hosts, drops
// `localhost` from file: URLs, and then usually percent-decodes the path to find a file or a record.
// So a raw URI that looks like it stays under an allowed prefix can resolve outside it. Here every
// resource URI is either refused as ambiguous or turned into one canonical string (the WHATWG href
// with its path percent-decoded), and the rules are matched against that string only.
//
// Tool and prompt names are matched on their exact bytes; a name that renders like another one
// (control, zero-width, bidi or other invisible characters; not in NFC) is refused, since the same
// glyphs could name a different tool on the server.

export type Canonical = { ok: true; uri: string } | { ok: false; problem: string };

/** Characters that are invisible or change how text renders: C0/C1 controls, format (Cf, which
 * includes zero-width and bidi controls), line/paragraph separators, default-ignorables (variation
 * selectors, Hangul fillers, tag characters...). */
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}]/u;
/** White space other than U+0020 (no-break, ideographic, en/em spaces...). */
const ODD_SPACE = /[^\S ]/u;

function codePoint(s: string, re: RegExp): string {
  const m = re.exec(s);
  return m ? `U+${m[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}` : "";
}

/** Why a text (tool name, prompt name, decoded URI) is ambiguous, or undefined when it is not. */
export function textProblem(s: string): string | undefined {
  if (!s.isWellFormed()) return "contains an unpaired UTF-16 surrogate";
  if (INVISIBLE.test(s)) return `contains a control or invisible character (${codePoint(s, INVISIBLE)})`;
  if (ODD_SPACE.test(s)) return `contains white space other than a plain space (${codePoint(s, ODD_SPACE)})`;
  if (s !== s.normalize("NFC")) return "is not in Unicode normalization form C (NFC)";
  return undefined;
}

/** Why a tool or prompt name cannot be matched exactly, or undefined. */
export function nameProblem(name: string): string | undefined {
  // Fast path for the usual names (printable ASCII without spaces: always NFC, nothing invisible).
  if (/^[\x21-\x7e]+$/.test(name)) return undefined;
  if (name.length === 0) return "is empty";
  if (name.trim() !== name) return "has leading or trailing spaces";
  return textProblem(name);
}

/** `.` or `..` as a path segment (the URI's query and fragment are not path). */
const DOT_SEGMENT = /(^|\/)\.{1,2}(\/|$)/;
/** Percent-encoded characters that change a path's structure when a server decodes them: `.` (dot
 * segments), `/` and `\` (separators), `%` (double encoding), `?` and `#` (query and fragment). */
const ENCODED_STRUCTURE = /%(2e|2f|5c|25|3f|23)/i;
const PERCENT_RUN = /(?:%[0-9A-Fa-f]{2})+/g;
const utf8 = new TextDecoder("utf-8", { fatal: true });

function rawPath(uri: string): string {
  // Scheme, then the authority if there is one, up to the query or fragment.
  const noScheme = uri.replace(/^[A-Za-z][A-Za-z0-9+.-]*:/, "");
  const noAuthority = noScheme.startsWith("//") ? noScheme.replace(/^\/\/[^/?#]*/, "") : noScheme;
  return noAuthority.replace(/[?#].*$/s, "");
}

/** Decodes %XX runs as UTF-8; undefined when they are not UTF-8. */
function percentDecode(s: string): string | undefined {
  try {
    return s.replace(PERCENT_RUN, (run) => {
      const bytes = new Uint8Array(run.length / 3);
      for (let i = 0; i < bytes.length; i++) bytes[i] = Number.parseInt(run.slice(i * 3 + 1, i * 3 + 3), 16);
      return utf8.decode(bytes);
    });
  } catch {
    return undefined;
  }
}

/**
 * The one string resource rules are matched against, or why the URI is refused. Pure.
 *
 * Refused as ambiguous: control, invisible or odd white-space characters (the parser deletes some of
 * them), backslashes (a separator for special schemes), `.`/`..` segments before or after parsing,
 * percent-encoded `.`, `/`, `\`, `%`, `?`, `#` (a server that decodes once or twice would see a
 * different path), empty path segments (`//etc` is `/etc` to a file system), userinfo (moves the host
 * a rule names), `%` in the host, percent-encoded bytes that are not UTF-8, and anything the WHATWG
 * parser rejects. Everything else is canonicalized exactly as the server's parser does, with the path
 * then percent-decoded (so `%61dmin` and `admin` are one string, as they are one file).
 */
export function canonicalResourceUri(uri: string): Canonical {
  const t = textProblem(uri);
  if (t) return { ok: false, problem: t };
  if (uri.trim() !== uri) return { ok: false, problem: "has leading or trailing spaces" };
  if (uri.includes("\\")) return { ok: false, problem: 'contains a backslash ("\\" is a path separator for file: and http: URLs)' };
  if (ENCODED_STRUCTURE.test(uri)) return { ok: false, problem: "percent-encodes a character that changes the path when decoded (. / \\ % ? #)" };
  if (DOT_SEGMENT.test(rawPath(uri))) return { ok: false, problem: 'must not contain "." or ".." segments' };
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    return { ok: false, problem: "is not an absolute URI" };
  }
  if (u.username !== "" || u.password !== "") return { ok: false, problem: "must not contain userinfo (user@ or user:password@)" };
  if (u.host.includes("%")) return { ok: false, problem: "has a percent-encoded host" };
  const path = percentDecode(u.pathname);
  if (path === undefined) return { ok: false, problem: "percent-encodes bytes that are not UTF-8" };
  const p = textProblem(path);
  if (p) return { ok: false, problem: `path ${p} once decoded` };
  if (DOT_SEGMENT.test(path)) return { ok: false, problem: 'must not contain "." or ".." segments' };
  // An empty segment: `//` inside the path, or a path that starts with `//` after the authority.
  if (/\/\//.test(path)) return { ok: false, problem: 'must not contain empty path segments ("//")' };
  const authority = u.href.startsWith(`${u.protocol}//`) ? `//${u.host}` : "";
  return { ok: true, uri: `${u.protocol}${authority}${path}${u.search}${u.hash}` };
}

// Private-use stand-ins for the glob characters while a rule pattern goes through the same parser.
const STAR = "\uE000";
const QMARK = "\uE001";

/**
 * A resource rule pattern in the canonical form URIs are matched in (scheme and special hosts
 * lower-cased, file://localhost/ as file:///, path percent-decoded), so that `file:///srv/my%20docs/*`
 * and `file:///srv/my docs/*` are the same rule. A pattern the parser cannot take (a wildcard host,
 * a bare `*`) is kept as written, with its scheme lower-cased.
 */
export function canonicalResourcePattern(pattern: string): string {
  const marked = pattern.replaceAll("*", STAR).replaceAll("?", QMARK);
  // The stand-ins are not "invisible" to textProblem (private use is Co), so they survive the checks.
  const c = canonicalResourceUri(marked);
  if (c.ok) return c.uri.replaceAll(STAR, "*").replaceAll(QMARK, "?");
  return pattern.replace(/^[A-Za-z][A-Za-z0-9+.-]*:/, (s) => s.toLowerCase());
}
