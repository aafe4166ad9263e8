// "No key or token is ever logged" (README), tested against a corpus of realistic secret shapes
// embedded in tool arguments the way they arrive in practice: inside connection strings, URLs, curl
// commands, .env files, YAML, JSON text, argv arrays, nested objects, and long strings (issue 10,
// class 8). For each one the audit line written by the real AuditLog must not contain the secret's
// bytes (nor a 12-character piece of a long one), while the text around it is kept. Upstream error
// messages passed to clients go through the same scrubbing. The secrets are generated from a seeded
// generator at run time, so no token-shaped literal sits in the repository.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { AuditLog, makeRedactor } from "../../gateway/src/audit.ts";
import { sanitizeRaw } from "../../gateway/src/sanitize.ts";
import { isSecretKey, looksRandom, scrubText } from "../../gateway/src/secrets.ts";
import { MemorySink } from "./helpers.ts";

// ---- seeded secret material ----------------------------------------------------------------------
let seed = 0x5eed;
function next(): number {
  // mulberry32
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const LOWER = "abcdefghijklmnopqrstuvwxyz";
const DIGITS = "0123456789";
const ALNUM = UPPER + LOWER + DIGITS;
const B64 = `${ALNUM}+/`;
const B64URL = `${ALNUM}-_`;
const HEX = "0123456789abcdef";
function rnd(alphabet: string, n: number): string {
  let s = "";
  for (let i = 0; i < n; i++) s += alphabet[Math.floor(next() * alphabet.length)];
  // Make sure mixed alphabets really mix (a generated token of only letters would be unrealistic).
  if (alphabet === ALNUM || alphabet === B64 || alphabet === B64URL) s = `${s.slice(0, -3)}${rnd(UPPER, 1)}${rnd(LOWER, 1)}${rnd(DIGITS, 1)}`;
  return s;
}
const b64url = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
const pemBody = () => Array.from({ length: 6 }, () => rnd(B64, 64)).join("\n");
const pem = (label: string) => (body: string) => `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----`;
const password = () => `${rnd(ALNUM, 10)}!${rnd(DIGITS, 2)}`;

interface Case {
  name: string;
  /** The bytes that must never appear in an audit line. */
  secret: string;
  /** The text the secret arrives in (where the secret sits inside ordinary text). */
  text: string;
}

function corpus(): Case[] {
  const c: Case[] = [];
  const add = (name: string, secret: string, text: (s: string) => string = (s) => s) => c.push({ name, secret, text: text(secret) });
  // Well-known token shapes, as bare values and inside sentences.
  add("AWS access key id", `AKIA${rnd(UPPER + DIGITS, 16)}`, (s) => `aws configure set aws_access_key_id ${s}`);
  add("AWS secret access key (env)", rnd(B64, 40), (s) => `AWS_SECRET_ACCESS_KEY=${s}`);
  add("AWS session token (ini)", rnd(B64, 120), (s) => `[default]\naws_session_token = ${s}\nregion = eu-west-1`);
  add("GitHub classic PAT", `ghp_${rnd(ALNUM, 36)}`, (s) => `clone with token ${s} please`);
  add("GitHub OAuth token", `gho_${rnd(ALNUM, 36)}`);
  add("GitHub app token", `ghs_${rnd(ALNUM, 36)}`, (s) => `installation token is ${s}.`);
  add("GitHub fine-grained PAT", `github_pat_${rnd(ALNUM, 22)}_${rnd(ALNUM, 59)}`);
  add("GitLab PAT", `glpat-${rnd(B64URL, 20)}`, (s) => `PRIVATE-TOKEN ${s}`);
  add("Slack bot token", `xoxb-${rnd(DIGITS, 12)}-${rnd(DIGITS, 13)}-${rnd(ALNUM, 24)}`);
  add("Slack user token", `xoxp-${rnd(DIGITS, 12)}-${rnd(DIGITS, 12)}-${rnd(DIGITS, 13)}-${rnd(HEX, 32)}`);
  add(
    "Slack webhook",
    `https://hooks.slack.com/services/T${rnd(UPPER + DIGITS, 8)}/B${rnd(UPPER + DIGITS, 10)}/${rnd(ALNUM, 24)}`,
    (s) => `post the summary to ${s} when done`,
  );
  add("Stripe live secret key", `sk_live_${rnd(ALNUM, 24)}`);
  add("Stripe restricted key", `rk_live_${rnd(ALNUM, 24)}`, (s) => `stripe.api_key = "${s}"`);
  add("Stripe webhook secret", `whsec_${rnd(ALNUM, 32)}`);
  add("OpenAI project key", `sk-proj-${rnd(B64URL, 48)}`, (s) => `OPENAI_API_KEY: ${s}`);
  add("OpenAI legacy key", `sk-${rnd(ALNUM, 48)}`, (s) => `use ${s} for the embeddings call`);
  add("Anthropic key", `sk-ant-api03-${rnd(B64URL, 93)}AA`);
  add("Google API key", `AIza${rnd(B64URL, 35)}`, (s) => `https://maps.googleapis.com/maps/api/geocode/json?address=Paris&key=${s}`);
  add("Google OAuth access token", `ya29.${rnd(B64URL, 120)}`);
  add("Google OAuth client secret", `GOCSPX-${rnd(B64URL, 28)}`);
  add("npm token", `npm_${rnd(ALNUM, 36)}`, (s) => `//registry.npmjs.org/:_authToken=${s}`);
  add("PyPI token", `pypi-AgEIcHlwaS5vcmc${rnd(B64URL, 60)}`);
  add("Hugging Face token", `hf_${rnd(ALNUM, 34)}`);
  add("SendGrid key", `SG.${rnd(B64URL, 22)}.${rnd(B64URL, 43)}`);
  add("Twilio API key", `SK${rnd(HEX, 32)}`);
  add("Mailgun key", `key-${rnd(HEX, 32)}`);
  add("Shopify token", `shpat_${rnd(HEX, 32)}`);
  add("DigitalOcean token", `dop_v1_${rnd(HEX, 64)}`);
  add("Vault token", `hvs.${rnd(B64URL, 90)}`, (s) => `vault login ${s}`);
  add("Doppler token", `dp.st.prd.${rnd(ALNUM, 40)}`);
  add("Databricks token", `dapi${rnd(HEX, 32)}`);
  add("age secret key", `AGE-SECRET-KEY-1${rnd(UPPER + DIGITS, 58)}`);
  add("Telegram bot token", `${rnd(DIGITS, 10)}:AA${rnd(B64URL, 33)}`, (s) => `https://api.telegram.org/bot${s}/sendMessage`);
  add("Discord bot token", `M${rnd(ALNUM, 25)}.${rnd(B64URL, 6)}.${rnd(B64URL, 38)}`);
  add("Square token", `sq0atp-${rnd(B64URL, 22)}`);
  add("Atlassian token", `ATATT3xFfGF0${rnd(B64URL, 60)}`);
  add("Linear key", `lin_api_${rnd(ALNUM, 40)}`);
  add("Postman key", `PMAK-${rnd(HEX, 24)}-${rnd(HEX, 34)}`);
  add(
    "JWT",
    `${b64url({ alg: "RS256", typ: "JWT", kid: "k1" })}.${b64url({ sub: "alice", exp: 1999999999, scope: "read write" })}.${rnd(B64URL, 86)}`,
    (s) => `the id token was ${s}`,
  );
  add("generic high-entropy key", rnd(ALNUM, 40), (s) => `license key ${s} expires soon`);
  add("64-hex signing secret", rnd(HEX, 64));
  // HTTP authorization in text.
  add("Bearer in a curl command", rnd(ALNUM, 32), (s) => `curl -H "Authorization: Bearer ${s}" https://api.example.com/v1/items`);
  add("Bearer in prose", `${rnd(B64URL, 20)}.${rnd(B64URL, 10)}`, (s) => `send it with bearer ${s} and retry`);
  add("Basic credentials", Buffer.from(`deploy:${password()}`).toString("base64"), (s) => `Authorization: Basic ${s}`);
  add("Token scheme", rnd(HEX, 40), (s) => `Authorization: Token ${s}`);
  // URLs with userinfo and connection strings.
  add("https userinfo password", password(), (s) => `fetch https://admin:${s}@internal.example.com/export.csv`);
  add("https userinfo token as user", `ghp_${rnd(ALNUM, 36)}`, (s) => `git clone https://${s}@github.com/acme/app.git`);
  add("postgres URL", password(), (s) => `postgres://app:${s}@db.internal:5432/app?sslmode=require`);
  add("postgresql URL with @ in password", `${rnd(ALNUM, 6)}@${rnd(ALNUM, 6)}`, (s) => `DATABASE_URL=postgresql://app:${s}@db:5432/app`);
  add("mongodb+srv URL", password(), (s) => `mongodb+srv://svc:${s}@cluster0.abcde.mongodb.net/prod?retryWrites=true`);
  add("redis URL, empty user", password(), (s) => `redis://:${s}@cache:6379/0`);
  add("rediss URL", password(), (s) => `rediss://default:${s}@cache.example.com:6380`);
  add("amqp URL", password(), (s) => `amqp://guest:${s}@rabbit:5672/vhost`);
  add("mysql URL", password(), (s) => `mysql://root:${s}@127.0.0.1:3306/shop`);
  add("JDBC password parameter", password(), (s) => `jdbc:postgresql://db:5432/app?user=app&password=${s}&ssl=true`);
  add("ODBC Pwd", password(), (s) => `Driver={ODBC Driver 18 for SQL Server};Server=tcp:sql.example.com,1433;Uid=sa;Pwd=${s};Encrypt=yes;`);
  add("ODBC Pwd in braces", `${rnd(ALNUM, 8)};${rnd(ALNUM, 4)}`, (s) => `Server=x;UID=sa;PWD={${s}};`);
  add("ADO.NET Password", password(), (s) => `Server=myServer;Database=myDb;User Id=sa;Password=${s};`);
  add(
    "Azure storage AccountKey",
    `${rnd(B64, 86)}==`,
    (s) => `DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=${s};EndpointSuffix=core.windows.net`,
  );
  add("Azure Service Bus SharedAccessKey", `${rnd(B64, 43)}=`, (s) => `Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey=${s}`);
  add("Azure SAS sig", `${rnd(B64, 43)}%3D`, (s) => `https://acct.blob.core.windows.net/c/f.txt?sv=2022-11-02&se=2030-01-01&sr=b&sp=r&sig=${s}`);
  add("S3 presigned signature", rnd(HEX, 64), (s) => `https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=${s}`);
  // Key names, in text formats.
  add(".env file", password(), (s) => `NODE_ENV=production\nDB_PASSWORD=${s}\nPORT=8080`);
  add("YAML passphrase", password(), (s) => `ssh:\n  host: bastion\n  passphrase: ${s}\n  user: ops`);
  add("JSON text client_secret", rnd(ALNUM, 24), (s) => `{"client_id":"web","client_secret":"${s}","redirect_uri":"https://app/cb"}`);
  add("--password flag in a command", password(), (s) => `pg_dump --host db --password ${s} --dbname app`);
  add("--token= flag", rnd(ALNUM, 20), (s) => `deploy --token=${s} --env prod`);
  add("export GITHUB_TOKEN", rnd(ALNUM, 30), (s) => `export GITHUB_TOKEN=${s}`);
  add("Cookie header", rnd(B64URL, 32), (s) => `Cookie: session=${s}; theme=dark`);
  add("x-api-key header line", rnd(ALNUM, 28), (s) => `x-api-key: ${s}`);
  add("private_key in text", rnd(B64, 44), (s) => `private_key=${s}`);
  // PEM blocks.
  add("RSA private key", pemBody(), (s) => `here is the key:\n${pem("RSA PRIVATE KEY")(s)}\nkeep it safe`);
  add("PKCS8 private key", pemBody(), pem("PRIVATE KEY"));
  add("OpenSSH private key", pemBody(), pem("OPENSSH PRIVATE KEY"));
  add("EC private key", pemBody(), pem("EC PRIVATE KEY"));
  add("encrypted private key", pemBody(), pem("ENCRYPTED PRIVATE KEY"));
  add("PGP private key block", pemBody(), pem("PGP PRIVATE KEY BLOCK"));
  return c;
}

/** Secrets under keys that name them (whatever the value looks like). */
function keyedCorpus(): { key: string; secret: string }[] {
  const keys = [
    "pass",
    "passphrase",
    "password",
    "db_pass",
    "pwd",
    "access_key",
    "accessKey",
    "private_key",
    "privateKey",
    "secret",
    "client_secret",
    "clientSecret",
    "token",
    "api_key",
    "apiKey",
    "x-api-key",
    "AWS_SECRET_ACCESS_KEY",
    "authorization",
    "Cookie",
    "session_id",
    "refresh_token",
    "auth",
    "signature",
    "webhook_secret",
    "encryption_key",
    "credentials",
  ];
  return keys.map((key) => ({ key, secret: `plain words ${rnd(LOWER, 6)}` }));
}

const PREFIX = "Please use";
const SUFFIX = "to finish the job, thanks.";
const LOREM = "The quarterly report covers revenue, churn and the roadmap for the next release. ".repeat(4);

function embeddings(text: string): Record<string, unknown>[] {
  return [
    { value: text },
    { steps: [{ note: `${PREFIX} ${text} ${SUFFIX}` }] },
    { blob: `${LOREM.slice(0, 250)} ${text} ${LOREM}` },
    { list: ["first", text, "last"] },
    { deep: { a: { b: { c: [{ d: text }] } } } },
    { [text]: "as a key" },
  ];
}

function pieces(secret: string): string[] {
  if (secret.length <= 20) return [secret];
  const out = [secret];
  for (let i = 0; i + 12 <= secret.length; i += 4) out.push(secret.slice(i, i + 12));
  return out;
}

function auditLine(args: unknown): string {
  const sink = new MemorySink();
  const audit = new AuditLog(["ssn"], sink);
  audit.record({
    time: new Date(0).toISOString(),
    client: "apikey:alice",
    source: "127.0.0.1",
    transport: "streamable-http",
    method: "tools/call",
    tool: "run",
    arguments: args, // the log redacts them when it writes the line
    outcome: "ok",
    status: 200,
    latencyMs: 1,
  });
  audit.flush();
  assert.equal(sink.lines.length, 1);
  return sink.lines[0]!;
}

describe("no key or token is ever logged", () => {
  const cases = corpus();
  test("the corpus is big enough to mean something", () => {
    assert.ok(cases.length >= 50, `${cases.length} shapes`);
    assert.equal(new Set(cases.map((c) => c.name)).size, cases.length);
  });

  for (const c of cases) {
    test(`${c.name}: absent from the audit line in every embedding, surrounding text kept`, () => {
      for (const args of embeddings(c.text)) {
        const line = auditLine(args);
        // JSON escaping changes \n and quotes: compare on the decoded line too.
        const decoded = JSON.stringify(JSON.parse(line));
        for (const p of pieces(c.secret))
          assert.ok(!line.includes(p) && !decoded.includes(JSON.stringify(p).slice(1, -1)), `${JSON.stringify(p)} leaked in ${line.slice(0, 400)}`);
      }
      const nested = JSON.parse(auditLine(embeddings(c.text)[1])) as { arguments: { steps: { note: string }[] } };
      const note = nested.arguments.steps[0]!.note;
      assert.ok(note.startsWith(PREFIX) && note.endsWith(SUFFIX), `surrounding text lost: ${note}`);
      assert.match(note, /\[REDACTED/);
    });
  }

  test("values under keys that name a secret are redacted whatever they look like", () => {
    for (const { key, secret } of keyedCorpus()) {
      const line = auditLine({ config: { [key]: secret, region: "eu-west-1" }, list: [{ [key]: { nested: secret } }] });
      assert.ok(!line.includes(secret), `${key}: ${line}`);
      assert.ok(line.includes("eu-west-1"), "neighbouring values are kept");
    }
  });

  test("argv-style arrays: the value after a secret flag", () => {
    const pw = password();
    const line = auditLine({ argv: ["psql", "--password", pw, "--host", "db.internal"] });
    assert.ok(!line.includes(pw));
    assert.ok(line.includes("db.internal"));
  });

  test("an upstream error that quotes a credential reaches the client without it", () => {
    for (const c of cases) {
      const raw = JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        error: { code: -32000, message: `request failed: ${c.text.split("\n")[0]}`, data: { secret: c.secret } },
      });
      const out = sanitizeRaw(raw);
      const firstLine = c.text.split("\n")[0]!;
      if (!firstLine.includes(c.secret.split("\n")[0]!)) continue; // the secret sits on a later line of a multi-line text
      for (const p of pieces(c.secret.split("\n")[0]!)) assert.ok(!out.includes(p), `${c.name}: ${out.slice(0, 300)}`);
    }
  });
});

describe("ordinary text is kept", () => {
  const ordinary = [
    "weather in Paris tomorrow",
    "Basic authentication is described in RFC 7617 and Bearer tokens in RFC 6750.",
    "SELECT id, name FROM users WHERE created_at > now() - interval '7 days' ORDER BY id",
    "/srv/User/Projects/app2/src/components/index.ts",
    "D:/Shares/Alice/Documents/Quarterly Report 2024.docx",
    "123e4567-e89b-12d3-a456-426614174000",
    "https://example.com/docs/getting-started?lang=en#install",
    "alice@example.com wrote: the token bucket refills every second",
    "git commit -m 'Fix the password reset page layout'",
    "max_tokens: 4096, temperature: 0.2",
    "The compass: north by north-west",
    "Set the PASSWORD_MIN_LENGTH policy to 12 characters.",
    "ThisIsAVeryLongIdentifierNameForAJavaClassFactoryBean",
    "kubectl get pods -n production -o wide --sort-by=.metadata.creationTimestamp",
    "a secret garden is a novel",
    // A dash inside a name is not a flag: the gateway's own error message stays readable in the audit line.
    "missing Mcp-Session-Id header (initialize first)",
  ];
  const redact = makeRedactor([]);
  for (const s of ordinary) test(JSON.stringify(s.slice(0, 60)), () => assert.deepEqual(redact({ text: s, n: 3, ok: true }), { text: s, n: 3, ok: true }));

  test("numbers and booleans under ordinary keys, and ordinary keys, are untouched", () => {
    assert.deepEqual(redact({ max_tokens: 4096, tokens: ["a", "b"], author: "Ann", compass: "N", key: "user-42" }), {
      max_tokens: 4096,
      tokens: ["a", "b"],
      author: "Ann",
      compass: "N",
      key: "user-42",
    });
  });
});

describe("the pieces", () => {
  test("key names", () => {
    for (const k of [
      "password",
      "db_pass",
      "PGPASSWORD",
      "x-api-key",
      "githubToken",
      "AWS_SECRET_ACCESS_KEY",
      "client_secret",
      "passphrase",
      "private_key",
      "Pwd",
      "sig",
      "AccountKey",
    ])
      assert.ok(isSecretKey(k), k);
    for (const k of ["compass", "passage", "author", "max_tokens", "tokens", "key", "sort_key", "name", "signal"]) assert.ok(!isSecretKey(k), k);
  });
  test("random-looking runs versus words and paths", () => {
    assert.ok(looksRandom(rnd(ALNUM, 40)));
    assert.ok(!looksRandom("ThisIsAVeryLongIdentifierNameForAJavaClassFactoryBean"));
    assert.ok(!looksRandom("/srv/User/Projects/app2/src/components/index.ts"));
  });
  test("scrubText keeps the text around a credential", () => {
    assert.equal(scrubText("connect to postgres://app:hunter2@db:5432/app now"), "connect to postgres://[REDACTED]@db:5432/app now");
  });
});

describe("names the client chooses", () => {
  test("a token sent as a tool or method name is scrubbed, and a 100 kB name is cut", () => {
    const token = `ghp_${rnd(ALNUM, 36)}`;
    const sink = new MemorySink();
    const audit = new AuditLog([], sink);
    const base = {
      time: new Date(0).toISOString(),
      client: "apikey:alice",
      source: "127.0.0.1",
      transport: "streamable-http",
      outcome: "invalid",
      status: 200,
      latencyMs: 1,
    };
    audit.record({ ...base, method: "tools/call", tool: token });
    audit.record({ ...base, method: `x/${token}` });
    audit.record({ ...base, method: "m".repeat(100_000) });
    audit.flush();
    assert.ok(!sink.lines.join("\n").includes(token));
    assert.ok(sink.lines[2]!.length < 1000, `line of ${sink.lines[2]!.length} characters`);
  });
});
