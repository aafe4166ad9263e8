// API keys that expire and never sit raw in the cluster (issue 14): the Secret may hold `sha256:<hex>`
// digests instead of keys and an expiry per key; old files (just the key) keep working; a malformed
// entry is refused with a message naming the client and line (never the key) while the others load;
// an expired key gets a 401 that says so; the metrics count keys expiring within 14 days and name the
// clients whose keys have no expiry; `mcp-bastion apikey new` makes a key and the entry to store.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { expiryFrom, run as apikey } from "../../cli/src/commands/apikey.ts";
import { ApiKeyStore, keyStats, loadKeys, newKeyMemo, parseKeyFile, sameSecret } from "../../gateway/src/auth/apikeys.ts";
import { parseConfig } from "../../gateway/src/load.ts";
import { Gateway } from "../../gateway/src/server.ts";
import { MemorySink, baseConfig, startToy, tempDir, type Toy } from "./helpers.ts";

const DAY = 86400e3;
const hex = (k: string) => createHash("sha256").update(k).digest("hex");
const iso = (t: number) => new Date(t).toISOString();

describe("key file format", () => {
  test("a file holding just the key (today's format) is one entry without expiry", () => {
    const r = parseKeyFile("alice", "k-alice-0123456789\n");
    assert.deepEqual(r.problems, []);
    assert.equal(r.entries.length, 1);
    assert.equal(r.entries[0]!.digest.toString("hex"), hex("k-alice-0123456789"));
    assert.equal(r.entries[0]!.expiresAt, undefined);
    assert.equal(r.entries[0]!.hashed, false);
  });

  test("digests, expiries (date or RFC 3339), comments and several keys per client", () => {
    const r = parseKeyFile(
      "bob",
      `# rotated 2026-11\nsha256:${hex("old")} expires=2026-12-15\n\nSHA256:${hex("new").toUpperCase()} expires=2027-03-01T12:30:00+01:00\n`,
    );
    assert.deepEqual(r.problems, []);
    assert.deepEqual(
      r.entries.map((e) => [e.digest.toString("hex"), e.expiresAt && iso(e.expiresAt), e.hashed]),
      [
        [hex("old"), "2026-12-15T00:00:00.000Z", true],
        [hex("new"), "2027-03-01T11:30:00.000Z", true],
      ],
    );
  });

  const malformed: [string, string, RegExp][] = [
    ["short digest", `sha256:${hex("x").slice(0, 63)}`, /line 1: malformed digest: sha256: must be followed by 64 hex characters \(got 63 characters\)/],
    ["non-hex digest", `sha256:${"z".repeat(64)}`, /malformed digest.*not all hex/],
    ["empty digest", "sha256:", /malformed digest.*got 0 characters/],
    ["bad date", `sha256:${hex("x")} expires=next-tuesday`, /expires= is not a date/],
    ["impossible time", `sha256:${hex("x")} expires=2027-02-03T25:00:00Z`, /expires= is not a date/],
    ["February 30", `sha256:${hex("x")} expires=2027-02-30`, /expires= is not a date/],
    ["unknown attribute", `sha256:${hex("x")} scope=admin`, /unknown attribute "scope"/],
    ["expiry twice", `sha256:${hex("x")} expires=2027-01-01 expires=2028-01-01`, /given twice/],
    ["a key with a space", "my secret key", /unexpected text after the key/],
  ];
  for (const [name, line, message] of malformed) {
    test(`malformed entry is refused with a specific message: ${name}`, () => {
      const r = parseKeyFile("carol", `${line}\nk-carol-valid-0123456789`);
      assert.equal(r.entries.length, 1, "the valid line still loads");
      assert.equal(r.problems.length, 1);
      const text = `client "${r.problems[0]!.client}" line ${r.problems[0]!.line}: ${r.problems[0]!.problem}`;
      assert.match(text, /client "carol" line 1: /);
      assert.match(text, message);
      assert.ok(!text.includes("secret key") && !text.includes(hex("x")), "the problem never quotes the line");
    });
  }

  test("one key listed for two clients is refused for both", () => {
    const r = loadKeys(
      new Map([
        ["alice", "shared-key-0123456789"],
        ["bob", `sha256:${hex("shared-key-0123456789")}`],
        ["carol", "own-key-0123456789"],
      ]),
    );
    assert.deepEqual(
      [...r.byDigest.values()].map((e) => e.client),
      ["carol"],
    );
    assert.match(r.problems[0]!.problem, /also listed for client "alice"/);
  });

  test("statistics: expired, expiring within 14 days, without expiry per client, invalid lines per client", () => {
    const now = Date.parse("2027-01-01T00:00:00Z");
    const { byDigest, problems } = loadKeys(
      new Map([
        ["a", "key-a-0123456789"],
        ["b", `sha256:${hex("b1")} expires=2026-12-31\nsha256:${hex("b2")} expires=2027-01-10\nsha256:${hex("b3")} expires=2027-06-01`],
        ["c", `sha256:${hex("c1")}\nsha256:${hex("c2")}\nsha256:abc`],
      ]),
    );
    const st = keyStats(byDigest.values(), problems, now);
    assert.equal(st.total, 6);
    assert.equal(st.expired, 1);
    assert.equal(st.expiringSoon, 1);
    assert.deepEqual(
      [...st.withoutExpiry],
      [
        ["a", 1],
        ["c", 2],
      ],
    );
    assert.deepEqual([...st.invalid], [["c", 1]]);
  });
});

describe("the store", () => {
  test("digest entries authenticate the key; an expired key is reported as expired; a malformed file never crashes", async () => {
    const dir = tempDir("keys-digest");
    writeFileSync(join(dir, "alice"), `sha256:${hex("alice-key-0123456789")}\n`);
    writeFileSync(join(dir, "bob"), `sha256:${hex("bob-key-0123456789")} expires=${iso(Date.now() - 1000)}\n`);
    writeFileSync(join(dir, "dave"), `sha256:nothex\n${"\u0000".repeat(10)} expires=\n`);
    const s = new ApiKeyStore(dir);
    await s.rescan();
    assert.deepEqual(s.check("alice-key-0123456789"), { ok: true, client: "alice" });
    assert.equal(s.check(`sha256:${hex("alice-key-0123456789")}`), undefined, "the digest itself is not a key");
    const bob = s.check("bob-key-0123456789");
    assert.equal(bob?.ok, false);
    assert.equal(s.lookup("bob-key-0123456789"), undefined);
    assert.deepEqual(
      s.problems.map((p) => [p.client, p.line]),
      [
        ["dave", 1],
        ["dave", 2],
      ],
    );
  });
});

describe("a key remembered per connection (issue 16: not hashed again on every request)", () => {
  test("sameSecret: equal strings only, whatever the lengths", () => {
    assert.equal(sameSecret("k-0123456789", "k-0123456789"), true);
    assert.equal(sameSecret("k-0123456788", "k-0123456789"), false);
    assert.equal(sameSecret("k-012345678", "k-0123456789"), false, "a prefix");
    assert.equal(sameSecret("k-0123456789k-0123456789", "k-0123456789"), false, "the known key twice");
    assert.equal(sameSecret("", "k-0123456789"), false);
    assert.equal(sameSecret("k-0123456789", ""), false);
  });

  test("a remembered key expires, and a changed key set or another key is checked again", async () => {
    const dir = tempDir("keys-memo-store");
    const now = Date.now();
    writeFileSync(join(dir, "alice"), `sha256:${hex("alice-key-0123456789")} expires=${iso(now + DAY)}\n`);
    writeFileSync(join(dir, "bob"), "bob-key-0123456789\n");
    const s = new ApiKeyStore(dir);
    await s.rescan();
    const memo = newKeyMemo();
    assert.deepEqual(s.check("alice-key-0123456789", now, memo), { ok: true, client: "alice" });
    assert.deepEqual(s.check("alice-key-0123456789", now + 1000, memo), { ok: true, client: "alice" });
    assert.deepEqual(s.check("alice-key-0123456789", now + 2 * DAY, memo), {
      ok: false,
      expired: true,
      client: "alice",
      expiresAt: Date.parse(iso(now + DAY)),
    });
    assert.deepEqual(s.check("bob-key-0123456789", now, memo), { ok: true, client: "bob" }, "another key on the same connection");
    assert.equal(s.check("bob-key-012345678", now, memo), undefined, "a prefix of the remembered key");
    assert.equal(s.check("bob-key-0123456789x", now, memo), undefined, "the remembered key and more");
    writeFileSync(join(dir, "bob"), "bob-key-rotated-0123456789\n");
    await s.rescan();
    assert.equal(s.check("bob-key-0123456789", now, memo), undefined, "revoked while remembered");
    assert.deepEqual(s.check("bob-key-rotated-0123456789", now, memo), { ok: true, client: "bob" });
  });
});

// ---- through the gateway ---------------------------------------------------------------------------

let toy: Toy;
let gw: Gateway;
let base: string;
let adminBase: string;
const KEYS = { alice: "alice-Zt3kq9VwPp2LmX8sRf4Y", bob: "bob-Hs8Jd2KfLq9WmZ3xVb7N", carol: "carol-Qw4Er5Ty6Ui7Op8As9Df", erin: "erin-Mn8Bv7Cx6Zl5Kj4Hg3Fd" };

before(async () => {
  toy = await startToy();
  const dir = tempDir("keys-gw");
  const now = Date.now();
  writeFileSync(join(dir, "alice"), `sha256:${hex(KEYS.alice)}\n`); // no expiry
  writeFileSync(join(dir, "bob"), `sha256:${hex(KEYS.bob)} expires=${iso(now - DAY)}\n`); // expired
  writeFileSync(join(dir, "carol"), `sha256:${hex(KEYS.carol)} expires=${iso(now + 3 * DAY)}\n`); // expiring soon
  writeFileSync(join(dir, "erin"), `${KEYS.erin}\n`); // today's format
  writeFileSync(join(dir, "dave"), `sha256:${"0".repeat(10)}\n`); // malformed
  const cfg = baseConfig({ upstream: { transport: "streamable-http", url: toy.url }, auth: { apiKeys: { dir } } });
  cfg.authorization.rules = [{ name: "all", clients: { apiKeys: ["*"] }, tools: { allow: ["*"], deny: [] } }];
  gw = new Gateway({ config: parseConfig(cfg), auditSink: new MemorySink() });
  const { port, adminPort } = await gw.start();
  base = `http://127.0.0.1:${port}/mcp`;
  adminBase = `http://127.0.0.1:${adminPort}`;
});

after(async () => {
  await gw?.close();
  await toy?.close();
});

function initialize(key: string): Promise<Response> {
  return fetch(base, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${key}` },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } },
    }),
  });
}

describe("the gateway with digests and expiries", () => {
  test("digest and plain keys are accepted; an expired key gets 401 saying it expired", async () => {
    for (const k of [KEYS.alice, KEYS.carol, KEYS.erin]) assert.equal((await initialize(k)).status, 200);
    const r = await initialize(KEYS.bob);
    assert.equal(r.status, 401);
    const body = (await r.json()) as { error: { message: string } };
    assert.match(body.error.message, /^API key expired at \d{4}-\d{2}-\d{2}T/);
    assert.match(r.headers.get("www-authenticate") ?? "", /invalid_token/);
    const unknown = await initialize("not-a-key-0123456789");
    assert.equal(((await unknown.json()) as { error: { message: string } }).error.message, "invalid credentials");
  });

  test("metrics: expiring within 14 days, expired, clients without expiry, invalid lines; failures by reason", async () => {
    const text = await (await fetch(`${adminBase}/metrics`)).text();
    const value = (re: RegExp) => Number(re.exec(text)?.[1]);
    assert.equal(value(/^mcp_gateway_api_keys_expiring_soon\{[^}]*\} (\d+)$/m), 1);
    assert.equal(value(/^mcp_gateway_api_keys_expired\{[^}]*\} (\d+)$/m), 1);
    assert.equal(value(/^mcp_gateway_api_keys_without_expiry\{client="alice"[^}]*\} (\d+)$/m), 1);
    assert.equal(value(/^mcp_gateway_api_keys_without_expiry\{client="erin"[^}]*\} (\d+)$/m), 1);
    assert.doesNotMatch(text, /without_expiry\{client="(bob|carol)"/);
    assert.equal(value(/^mcp_gateway_api_key_entries_invalid\{client="dave"[^}]*\} (\d+)$/m), 1);
    assert.ok(value(/^mcp_gateway_auth_failures_total\{reason="expired"[^}]*\} (\d+)$/m) >= 1);
  });
});

describe("keys on a connection that stays open (issue 16)", () => {
  test("a key revoked while its client's connection is open is refused on that connection; other keys are not mistaken for it", async () => {
    const dir = tempDir("keys-memo-gw");
    const A = "memo-alice-Zt3kq9VwPp2LmX8s";
    const B = "memo-bob-Hs8Jd2KfLq9WmZ3xVb";
    writeFileSync(join(dir, "alice"), `${A}\n`);
    writeFileSync(join(dir, "bob"), `sha256:${hex(B)}\n`);
    const cfg = baseConfig({ upstream: { transport: "streamable-http", url: toy.url }, auth: { apiKeys: { dir } } });
    cfg.authorization.rules = [{ name: "all", clients: { apiKeys: ["*"] }, tools: { allow: ["*"], deny: [] } }];
    const audit = new MemorySink();
    const g = new Gateway({ config: parseConfig(cfg), auditSink: audit });
    const { port } = await g.start();
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const clientPorts = new Set<number>();
    const body = JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } },
    });
    const status = (key: string) =>
      new Promise<number>((resolve, reject) => {
        const req = http.request(
          {
            host: "127.0.0.1",
            port,
            path: "/mcp",
            method: "POST",
            agent,
            headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${key}` },
          },
          (res) => {
            clientPorts.add(res.socket.localPort ?? 0);
            res.resume();
            res.on("end", () => resolve(res.statusCode ?? 0));
          },
        );
        req.on("error", reject);
        req.end(body);
      });
    try {
      assert.equal(await status(A), 200);
      assert.equal(await status(A), 200);
      assert.equal(await status(`${A.slice(0, -1)}t`), 401, "one character off the remembered key");
      assert.equal(await status(`${A}${A}`), 401, "the remembered key twice");
      assert.equal(await status(B), 200);
      assert.equal(await status(A), 200);
      await g.audit.flush();
      const clients = audit.lines.map((l) => (JSON.parse(l) as { client: string }).client);
      assert.deepEqual(clients, ["apikey:alice", "apikey:alice", "anonymous", "anonymous", "apikey:bob", "apikey:alice"]);
      // Revoked (alice's Secret now holds another key) while the connection stays open.
      writeFileSync(join(dir, "alice"), `${A}-rotated\n`);
      await g.auth.apiKeys!.rescan();
      assert.equal(await status(A), 401, "the revoked key on the connection it was verified on");
      assert.equal(await status(`${A}-rotated`), 200);
      assert.equal(clientPorts.size, 1, "every request went over one connection");
    } finally {
      agent.destroy();
      await g.close();
    }
  });
});

// ---- the CLI ---------------------------------------------------------------------------------------

async function cli(args: string[], stdin = ""): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const sink = (f: (s: string) => void) =>
    new Writable({
      write: (c, _e, cb) => {
        f(String(c));
        cb();
      },
    });
  const code = await apikey(
    args,
    sink((s) => (out += s)),
    sink((s) => (err += s)),
    () => stdin,
  );
  return { code, out, err };
}

describe("mcp-bastion apikey", () => {
  test("new: a random key shown once and its digest entry with the expiry; the gateway's parser accepts the entry", async () => {
    const a = await cli(["new", "alice", "--expires", "90d"]);
    assert.equal(a.code, 0, a.err);
    const key = /^key: (\S+)$/m.exec(a.out)![1]!;
    const entry = /^entry: (.+)$/m.exec(a.out)![1]!;
    assert.match(key, /^mcpb_[A-Za-z0-9_-]{43}$/);
    assert.ok(!entry.includes(key), "the entry holds no key");
    const parsed = parseKeyFile("alice", entry);
    assert.deepEqual(parsed.problems, []);
    assert.equal(parsed.entries[0]!.digest.toString("hex"), hex(key));
    const days = (parsed.entries[0]!.expiresAt! - Date.now()) / DAY;
    assert.ok(days > 89.9 && days <= 90, `expires in ${days} days`);
    const b = await cli(["new", "alice"]);
    assert.notEqual(/^key: (\S+)$/m.exec(b.out)![1], key, "every key is new");
    assert.match(b.out, /^entry: sha256:[0-9a-f]{64}$/m);
    assert.match(b.out, /no expiry/);
  });

  test("--json, and digest for an existing key read from stdin", async () => {
    const j = await cli(["new", "svc-1", "--expires=2w", "--json"]);
    const o = JSON.parse(j.out) as { client: string; key: string; entry: string; expiresAt: string };
    assert.equal(o.client, "svc-1");
    assert.equal(o.entry, `sha256:${hex(o.key)} expires=${o.expiresAt.replace(".000Z", "Z")}`);
    const d = await cli(["digest", "erin", "--expires", "2031-01-01"], `${KEYS.erin}\n`);
    assert.equal(d.code, 0);
    assert.match(d.out, new RegExp(`^entry: sha256:${hex(KEYS.erin)} expires=2031-01-01T00:00:00Z$`, "m"));
    assert.ok(!d.out.includes(KEYS.erin), "digest never prints the key");
  });

  test("bad input: specific errors, exit code 2", async () => {
    const cases: [string[], RegExp][] = [
      [["new"], /NAME is required/],
      [["new", ".hidden"], /must be a Secret data key/],
      [["new", "a/b"], /must be a Secret data key/],
      [["new", "alice", "--expires"], /--expires needs a value/],
      [["new", "alice", "--expires", "soon"], /not a duration \(90d, 12w, 24h\) or a date/],
      [["new", "alice", "--expires", "2001-01-01"], /is in the past/],
      [["new", "alice", "--expires", "0d"], /in the future/],
      [["new", "alice", "bob"], /one NAME only/],
      [["rotate", "alice"], /unknown subcommand "rotate"/],
      [["digest", "erin"], /give the key on stdin/],
    ];
    for (const [args, message] of cases) {
      const r = await cli(args);
      assert.equal(r.code, 2, args.join(" "));
      assert.match(r.err, message);
    }
    assert.equal(typeof expiryFrom("24h", 0), "number");
  });
});
