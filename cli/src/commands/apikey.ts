// `mcp-bastion apikey`: makes API keys for the gateway. `new` prints a random key once (for the client)
// and the entry to store in the API key Secret: the key's sha256 digest and an optional expiry, so the
// Secret never holds a usable key. `digest` turns an existing key (stdin) into such an entry.
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { parseExpiry } from "../../../gateway/src/auth/apikeys.ts";

const USAGE = `usage: mcp-bastion apikey new NAME [--expires 90d|12w|24h|2027-03-01] [--json]
       mcp-bastion apikey digest NAME [--expires ...] [--json] < key
  new     prints a new random key (shown once: hand it to the client) and the entry to store in the
          API key Secret under the key NAME: "sha256:<hex> [expires=<time>]"
  digest  the same entry for a key read from stdin (to move existing keys to digests)
  NAME    the client name authorization rules use (spec.authorization.rules[].clients.apiKeys)
`;

/** Secret data keys: what a Secret accepts; dot-names are skipped by the gateway (Kubernetes' own files). */
const CLIENT_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,252}$/;

/** Pure: `90d`, `12w`, `24h` from `now`, or a date / RFC 3339 time; epoch ms, or an error message. */
export function expiryFrom(v: string, now: number): number | string {
  const rel = /^(\d{1,5})([hdw])$/.exec(v);
  if (rel) {
    const n = Number(rel[1]);
    if (n === 0) return "--expires must be in the future";
    const unit = rel[2] === "h" ? 3600e3 : rel[2] === "d" ? 86400e3 : 7 * 86400e3;
    // Whole seconds: the entry stays short and readable.
    return Math.floor((now + n * unit) / 1000) * 1000;
  }
  const t = parseExpiry(v);
  if (t === undefined) return `--expires: "${v}" is not a duration (90d, 12w, 24h) or a date (2027-03-01, 2027-03-01T12:00:00Z)`;
  if (t <= now) return `--expires: ${new Date(t).toISOString()} is in the past`;
  return t;
}

/** Pure: the line the gateway reads from the Secret (gateway/src/auth/apikeys.ts). */
export function keyEntry(key: string, expiresAt: number | undefined): string {
  const digest = createHash("sha256").update(key).digest("hex");
  return expiresAt === undefined ? `sha256:${digest}` : `sha256:${digest} expires=${new Date(expiresAt).toISOString().replace(".000Z", "Z")}`;
}

/** A new key: 32 random bytes, base64url, with a prefix that secret scanners (and our redactor) recognize. */
export function newKey(): string {
  return `mcpb_${randomBytes(32).toString("base64url")}`;
}

export async function run(
  args: string[],
  out: NodeJS.WritableStream = process.stdout,
  err: NodeJS.WritableStream = process.stderr,
  stdin: () => string = () => readFileSync(0, "utf8"),
): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === "-h" || sub === "--help") {
    out.write(USAGE);
    return sub === undefined ? 2 : 0;
  }
  if (sub !== "new" && sub !== "digest") {
    err.write(`mcp-bastion apikey: unknown subcommand "${sub}"\n${USAGE}`);
    return 2;
  }
  let name: string | undefined;
  let expires: string | undefined;
  let json = false;
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (a === "--expires") {
      expires = rest[++i];
      if (expires === undefined) {
        err.write("mcp-bastion apikey: --expires needs a value (90d, 12w, 24h or a date)\n");
        return 2;
      }
    } else if (a.startsWith("--expires=")) expires = a.slice("--expires=".length);
    else if (a === "--json") json = true;
    else if (a.startsWith("-")) {
      err.write(`mcp-bastion apikey: unknown option "${a}"\n${USAGE}`);
      return 2;
    } else if (name === undefined) name = a;
    else {
      err.write(`mcp-bastion apikey: one NAME only (got "${name}" and "${a}")\n`);
      return 2;
    }
  }
  if (name === undefined) {
    err.write(`mcp-bastion apikey ${sub}: NAME is required\n${USAGE}`);
    return 2;
  }
  if (!CLIENT_NAME.test(name)) {
    err.write(`mcp-bastion apikey: NAME "${name}" must be a Secret data key (letters, digits, ".", "_", "-") not starting with "."\n`);
    return 2;
  }
  const now = Date.now();
  let expiresAt: number | undefined;
  if (expires !== undefined) {
    const e = expiryFrom(expires, now);
    if (typeof e === "string") {
      err.write(`mcp-bastion apikey: ${e}\n`);
      return 2;
    }
    expiresAt = e;
  }
  let key: string;
  if (sub === "new") key = newKey();
  else {
    key = stdin().trim();
    if (key === "" || /\s/.test(key)) {
      err.write("mcp-bastion apikey digest: give the key on stdin (one line, no spaces)\n");
      return 2;
    }
  }
  const entry = keyEntry(key, expiresAt);
  if (json) {
    out.write(
      `${JSON.stringify({ client: name, ...(sub === "new" ? { key } : {}), entry, ...(expiresAt !== undefined ? { expiresAt: new Date(expiresAt).toISOString() } : {}) })}\n`,
    );
    return 0;
  }
  const lines = [
    ...(sub === "new" ? [`# API key for client "${name}": shown once, hand it to the client now (it is stored nowhere)`, `key: ${key}`, ""] : []),
    `# the entry to store in the API key Secret (spec.auth.apiKeys.secretRef) under the key "${name}";`,
    "# it is the key's digest, so a leak of the Secret leaks no usable key",
    `entry: ${entry}`,
    "",
    `# e.g. kubectl create secret generic NAME-OF-SECRET --from-literal=${name}='${entry}'`,
    expiresAt === undefined
      ? "# no expiry: the gateway's metrics list this key under mcp_gateway_api_keys_without_expiry"
      : `# expires ${new Date(expiresAt).toISOString()}: mcp_gateway_api_keys_expiring_soon counts it from 14 days before`,
  ];
  out.write(`${lines.join("\n")}\n`);
  return 0;
}
