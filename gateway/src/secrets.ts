// Credentials inside text. The audit line and the errors the gateway passes on must never carry a
// key or a token, and credentials rarely arrive as a whole value under a key called "password": they
// sit inside longer strings (a connection string, a curl command, a log excerpt, a URL with userinfo).
// scrubText replaces each credential it recognizes in place and keeps the text around it, so the audit
// line still says what the call was about. Recognized: PEM private keys, URL userinfo, HTTP auth
// schemes, `key=value` / `key: value` / `--key value` where the key names a secret, well-known token
// shapes (JWT, AWS, GitHub, GitLab, Slack, Stripe, OpenAI, Anthropic, Google, npm, PyPI, Hugging Face,
// SendGrid, Twilio, Mailgun, Shopify, DigitalOcean, Vault, Doppler, Databricks, age, Telegram, ...), and
// long random-looking runs.

export const REDACTED = "[REDACTED]";

/** Splits a key into lower-case words: "githubToken" -> [github, token], "X-API-Key" -> [x, api, key]. */
function words(key: string): string[] {
  return key
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((w) => w.length > 0);
}

/** Joined forms that name a secret wherever they end the key ("db_password", "AWS_SECRET_ACCESS_KEY"). */
const SECRET_ENDINGS = [
  "password",
  "passwd",
  "passphrase",
  "secret",
  "token",
  "apikey",
  "accesskey",
  "secretkey",
  "privatekey",
  "accesskeyid",
  "accountkey",
  "signingkey",
  "encryptionkey",
  "masterkey",
  "credential",
  "credentials",
  "sessionid",
  "sessiontoken",
  "cookie",
  "authorization",
  "clientsecret",
  "secretaccesskey",
  "webhooksecret",
];
/** Joined forms that name a secret anywhere in the key ("password_confirmation", "client_secret_b64"). */
const SECRET_PARTS = ["password", "passwd", "passphrase", "secret", "privatekey", "apikey"];
/** Last words that name a secret only as a word of their own ("db_pass" but not "compass"). */
const SECRET_LAST_WORDS = new Set(["pass", "pwd", "pw", "auth", "sig", "signature", "bearer", "jwt", "otp", "psk"]);

/** Whether a key (object key, `key=` in text, `--key` flag) names a secret. `extra` are normalized keys. */
export function isSecretKey(key: string, extra?: ReadonlySet<string>): boolean {
  const w = words(key);
  if (w.length === 0) return false;
  const joined = w.join("");
  if (extra?.has(joined)) return true;
  if (SECRET_LAST_WORDS.has(w[w.length - 1]!)) return true;
  for (const e of SECRET_ENDINGS) if (joined.endsWith(e)) return true;
  for (const p of SECRET_PARTS) if (joined.includes(p)) return true;
  return false;
}

/** Token shapes that are credentials wherever they appear. */
const TOKEN_SHAPES: RegExp = new RegExp(
  [
    /eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*)?/, // JWS / JWE
    /\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA|ABIA|ACCA)[A-Z0-9]{16}\b/, // AWS key ids
    /\bgh[pousr]_[A-Za-z0-9]{30,}/, // GitHub tokens
    /\bgithub_pat_[A-Za-z0-9_]{22,}/,
    /\bglpat-[A-Za-z0-9_-]{20,}/, // GitLab
    /\bgl(?:sa|c|dt|ptt|rt|cbt)_[A-Za-z0-9_-]{20,}/, // Grafana / GitLab deploy tokens
    /\bxox[abposre]-[A-Za-z0-9-]{10,}/, // Slack
    /\bxapp-\d-[A-Za-z0-9-]{10,}/,
    /https:\/\/hooks\.slack\.com\/services\/[A-Za-z0-9/]+/,
    /\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{10,}/, // Stripe
    /\bwhsec_[A-Za-z0-9+/=]{20,}/,
    /\bsk-(?:proj-|ant-[a-z]+\d*-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}/, // OpenAI, Anthropic
    /\bAIza[0-9A-Za-z_-]{35}/, // Google API key
    /\bya29\.[0-9A-Za-z_-]{20,}/, // Google OAuth access token
    /\bGOCSPX-[A-Za-z0-9_-]{20,}/, // Google OAuth client secret
    /\bnpm_[A-Za-z0-9]{36}/,
    /\bpypi-AgE[A-Za-z0-9_-]{40,}/,
    /\bhf_[A-Za-z0-9]{30,}/, // Hugging Face
    /\bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}/, // SendGrid
    /\bSK[0-9a-fA-F]{32}\b/, // Twilio API key
    /\bkey-[0-9a-f]{32}\b/, // Mailgun
    /\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}/, // Shopify
    /\bdo[opr]_v1_[a-f0-9]{64}/, // DigitalOcean
    /\bhv[sbr]\.[A-Za-z0-9_-]{20,}/, // HashiCorp Vault
    /\bdp\.(?:st|sa|ct|pt|scim|audit)\.[A-Za-z0-9_.-]{20,}/, // Doppler
    /\bdapi[0-9a-f]{32}/, // Databricks
    /\bAGE-SECRET-KEY-1[0-9A-Z]{50,}/, // age
    /\b\d{8,10}:AA[A-Za-z0-9_-]{30,}/, // Telegram bot
    /\b[MNO][A-Za-z0-9]{23,27}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,}/, // Discord bot
    /\bsq0(?:atp|csp)-[A-Za-z0-9_-]{22,}/, // Square
    /\bATATT3[A-Za-z0-9_=-]{40,}/, // Atlassian
    /\blin_api_[A-Za-z0-9]{32,}/, // Linear
    /\bPMAK-[A-Za-z0-9]{20,}-[A-Za-z0-9]{20,}/, // Postman
    /\bmcpb_[A-Za-z0-9_-]{40,}/, // mcp-bastion API keys (mcp-bastion apikey new)
  ]
    .map((r) => r.source)
    .join("|"),
  "g",
);

const PEM_PRIVATE = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|$)/g;
/** scheme://userinfo@ : the whole userinfo (a user name alone is often the token: https://TOKEN@github.com). */
const URL_USERINFO = /\b([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^\s/?#@"'<>]*(?:@[^\s/?#@"'<>]*)*@/g;
/** HTTP authorization schemes followed by their credential. */
const AUTH_SCHEME = /\b(Bearer|Basic|Token|Digest|Negotiate|NTLM|Api-?Key|SSWS|Bot)(\s+|\s*=\s*)([A-Za-z0-9._~+/=:-]+)/gi;
/** key = value, key: value, "key": "value", key=`{value}` (ODBC), in any text. */
const KEY_VALUE = /([A-Za-z][A-Za-z0-9_.-]{0,63})(["']?\s*[:=]\s*)("(?:[^"\\]|\\.)*"|'[^']*'|\{[^}]*\}|[^\s;,&"'<>{}[\]]+)/g;
/** --key value (command lines in arguments). The dash starts a word: in "Mcp-Session-Id header" it is part of a name, not a flag. */
const FLAG_VALUE = /(?<![^\s"'(])(--?[A-Za-z][A-Za-z0-9_-]{0,63})(\s+)([^\s-][^\s]*)/g;
/** Long runs of token characters: checked one by one with looksRandom. */
const LONG_RUN = /[A-Za-z0-9+/=_\-~.]{32,}/g;

function tokenLike(v: string): boolean {
  return v.length >= 8 && (/[0-9._~+/=:-]/.test(v) || v.length >= 24);
}

function basicCredential(v: string): boolean {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(v) || v.length < 8) return false;
  return Buffer.from(v, "base64").toString("latin1").includes(":");
}

/**
 * A run of token characters that reads as random: 32+ characters, and either hex of 40+ or three
 * character classes that switch often (words and paths switch rarely: "Projects/app2/src" has 3
 * classes but few switches; a base64 key switches every other character).
 */
export function looksRandom(s: string): boolean {
  if (s.length < 32 || s.length > 8192) return false;
  if (/^[0-9a-f]{40,}$/i.test(s) && /[0-9]/.test(s) && /[a-f]/i.test(s)) return true;
  let lower = false;
  let upper = false;
  let digit = false;
  let switches = 0;
  let alnum = 0;
  let prev = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const cls = c >= 97 && c <= 122 ? 1 : c >= 65 && c <= 90 ? 2 : c >= 48 && c <= 57 ? 3 : 0;
    if (cls === 0) continue;
    alnum++;
    if (cls === 1) lower = true;
    else if (cls === 2) upper = true;
    else digit = true;
    if (prev !== 0 && cls !== prev) switches++;
    prev = cls;
  }
  return lower && upper && digit && switches >= Math.max(6, alnum / 6);
}

const MAX_SCAN = 64 * 1024;

/** `key=value` pairs whose key names a secret. The value of any other key is scanned again, since it
 * may hold pairs of its own (`note="password=x"`, `failed: x-api-key: x`). */
function scrubKeyValues(s: string): string {
  const re = new RegExp(KEY_VALUE.source, "g");
  let out = "";
  let last = 0;
  for (let m = re.exec(s); m !== null; m = re.exec(s)) {
    const [all, key, sep, v] = m as unknown as [string, string, string, string];
    if (isSecretKey(key) && !v.includes(REDACTED) && v !== '""' && v !== "''") {
      const q = v[0] === '"' || v[0] === "'" ? v[0] : v[0] === "{" ? "{" : "";
      out += `${s.slice(last, m.index)}${key}${sep}${q}${REDACTED}${q === "{" ? "}" : q}`;
      last = m.index + all.length;
      re.lastIndex = last;
    } else re.lastIndex = m.index + key.length + sep.length;
  }
  return out + s.slice(last);
}

/**
 * What every credential form above needs at least one of: a digit or one of `: = @ _ / + . -` (tokens,
 * userinfo, key=value, flags, PEM headers), or a run of 20 letters (AWS key ids and bearer tokens without
 * digits). Most argument values (words and sentences) have none and skip the scan: this runs for every
 * string of every audited call.
 */
const MAY_HOLD_SECRET = /[0-9:=@_/+.-]|[A-Za-z]{20}/;

/** The text with every credential it holds replaced by [REDACTED]; the rest is kept. Pure. */
export function scrubText(text: string): string {
  if (!MAY_HOLD_SECRET.test(text)) return text;
  // Very long strings: the audit keeps only a prefix anyway; scan the first 64 kB and drop the rest.
  let s = text.length > MAX_SCAN ? `${text.slice(0, MAX_SCAN)}…` : text;
  s = s.replace(PEM_PRIVATE, "[REDACTED PRIVATE KEY]");
  s = s.replace(URL_USERINFO, `$1${REDACTED}@`);
  s = s.replace(AUTH_SCHEME, (m, scheme: string, sep: string, v: string) => {
    if (v === REDACTED) return m;
    const secret = scheme.toLowerCase() === "basic" ? basicCredential(v) || tokenLike(v) : tokenLike(v);
    return secret ? `${scheme}${sep}${REDACTED}` : m;
  });
  s = s.replace(TOKEN_SHAPES, REDACTED);
  s = scrubKeyValues(s);
  s = s.replace(FLAG_VALUE, (m, flag: string, sep: string, v: string) => (isSecretKey(flag) && v !== REDACTED ? `${flag}${sep}${REDACTED}` : m));
  s = s.replace(LONG_RUN, (run) => (looksRandom(run) ? REDACTED : run));
  return s;
}
