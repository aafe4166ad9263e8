// A tamper-evident audit trail (issue 14): each line carries the hash of the one before it and signed
// checkpoints follow, so `mcp-bastion audit verify` finds a line removed, edited, reordered or appended
// by someone without the key; the audit line says how the request was answered (status and sanitized
// error, never the result content); a missing checkpoint key is a specific error everywhere.
import assert from "node:assert/strict";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { run as auditCli } from "../../cli/src/commands/audit.ts";
import { AuditLog, type AuditRecord, auditResultOf, auditResultOfBytes, resultTap } from "../../gateway/src/audit.ts";
import { CheckpointKeyError, MissingKeyError, checkpointKey, genesis, lineHash, verifyAuditLog } from "../../gateway/src/auditchain.ts";
import { parseConfig } from "../../gateway/src/load.ts";
import { Gateway } from "../../gateway/src/server.ts";
import { MemorySink, baseConfig, openSession, startToy, tempDir, type Toy } from "./helpers.ts";

const HMAC = Buffer.from(randomBytes(32).toString("base64"));
const hmacKey = checkpointKey(HMAC, "test");

function rec(i: number): AuditRecord {
  return {
    time: new Date(1_700_000_000_000 + i).toISOString(),
    client: `apikey:c${i % 3}`,
    source: "127.0.0.1",
    transport: "streamable-http",
    method: "tools/call",
    tool: "add",
    arguments: { a: i, b: 1 },
    outcome: "ok",
    status: 200,
    latencyMs: 1,
    result: "ok",
  };
}

/** A closed log of `n` records with a checkpoint every `every` lines. */
function writeLog(n: number, every: number, key = hmacKey, run?: string): string[] {
  const sink = new MemorySink();
  const log = new AuditLog([], sink, { checkpoint: { key, everyLines: every, everySeconds: 3600 }, run });
  for (let i = 0; i < n; i++) log.record(rec(i));
  log.close();
  return sink.lines;
}

const verify = (lines: string[], key = hmacKey) => verifyAuditLog(`${lines.join("\n")}\n`, key);
const isCheckpoint = (l: string) => l.includes('"type":"checkpoint"');

/** What someone without the key can do best: recompute seq and prev of every line after an edit. */
function rechain(lines: string[]): string[] {
  const out: string[] = [];
  let prev = "";
  let seq = 0;
  for (const l of lines) {
    const m = JSON.parse(l) as Record<string, unknown>;
    if (m.seq === 0) {
      prev = genesis(String(m.run));
      seq = 0;
    }
    m.seq = seq++;
    m.prev = prev;
    const line = JSON.stringify(m);
    prev = lineHash(line);
    out.push(line);
  }
  return out;
}

describe("the chain and its checkpoints", () => {
  test("an untouched log verifies: every line chained, checkpoints signed, a final one at close", () => {
    const lines = writeLog(25, 10);
    assert.equal(lines.filter(isCheckpoint).length, 3, "after lines 10 and 20, and the final one");
    const v = verify(lines);
    assert.deepEqual([v.ok, v.problems, v.warnings], [true, [], []]);
    assert.equal(v.lines, 28);
    const first = JSON.parse(lines[0]!) as { seq: number; prev: string; run: string };
    assert.equal(first.seq, 0);
    assert.equal(first.prev, genesis(first.run));
    const last = JSON.parse(lines.at(-1)!) as { final?: boolean; alg: string };
    assert.deepEqual([last.final, last.alg], [true, "HMAC-SHA256"]);
  });

  const tamperings: [string, (l: string[]) => string[], RegExp][] = [
    ["a line removed", (l) => l.filter((_, i) => i !== 5), /line 6: does not follow line 5 \(seq 6 after 4\): 1 line\(s\) before it removed/],
    ["a line edited", (l) => l.map((x, i) => (i === 4 ? x.replace('"apikey:c1"', '"apikey:c2"') : x)), /line 6: does not follow line 5.*edited/],
    ["two lines swapped", (l) => l.map((x, i) => (i === 3 ? l[4]! : i === 4 ? l[3]! : x)), /line 4: does not follow line 3|reordered/],
    [
      "a line edited and the chain recomputed",
      (l) => rechain(l.map((x, i) => (i === 2 ? x.replace('"outcome":"ok"', '"outcome":"denied"') : x))),
      /line 11: checkpoint signature does not verify/,
    ],
    ["a line removed and the chain recomputed", (l) => rechain(l.filter((_, i) => i !== 2)), /checkpoint signature does not verify/],
    [
      "a line appended (chained correctly)",
      (l) =>
        rechain(
          [...l, JSON.stringify({ ...rec(99), seq: 0, prev: "" })].map((x, i, a) => (i === a.length - 1 ? JSON.stringify({ ...JSON.parse(x), seq: 1 }) : x)),
        ),
      /not covered by a signed checkpoint/,
    ],
    [
      "a line appended with a forged checkpoint",
      (l) =>
        rechain([
          ...l,
          JSON.stringify({ ...rec(99), seq: 1, prev: "" }),
          JSON.stringify({
            type: "checkpoint",
            time: new Date().toISOString(),
            run: (JSON.parse(l[0]!) as { run: string }).run,
            alg: "HMAC-SHA256",
            kid: hmacKey.kid,
            final: true,
            sig: randomBytes(32).toString("base64url"),
            seq: 1,
            prev: "",
          }),
        ]),
      /checkpoint signature does not verify/,
    ],
    ["a checkpoint removed", (l) => l.filter((_, i) => i !== 10), /line 11: does not follow line 10/],
    ["lines inserted from another run", (l) => [...l.slice(0, 5), ...writeLog(3, 10).slice(1, 3), ...l.slice(5)], /line 6: does not follow line 5/],
    ["the first lines removed", (l) => l.slice(3), /line 1: seq 3 without the start of its run/],
  ];
  for (const [name, tamper, message] of tamperings) {
    test(`detected: ${name}`, () => {
      const v = verify(tamper(writeLog(25, 10)));
      assert.equal(v.ok, false, `not detected: ${JSON.stringify(v)}`);
      assert.match(v.problems.join("\n"), message);
    });
  }

  test("the end of a file cut off, checkpoints with it: a warning (the limit a file alone has), not silence", () => {
    const v = verify(writeLog(25, 10).slice(0, 22)); // up to and with the second checkpoint
    assert.equal(v.ok, true);
    assert.match(v.warnings.join("\n"), /ends without its final checkpoint/);
  });

  test("two runs (a restart) in one file verify, each from its own genesis", () => {
    const v = verify([...writeLog(5, 2), ...writeLog(4, 2)]);
    assert.deepEqual([v.ok, v.runs, v.warnings], [true, 2, []]);
  });

  test("Ed25519: signed with the private key, verified with the public key alone; another key is named", () => {
    const { privateKey, publicKey } = generateKeyPairSync("ed25519");
    const priv = checkpointKey(Buffer.from(privateKey.export({ type: "pkcs8", format: "pem" }) as string), "priv");
    const pub = checkpointKey(Buffer.from(publicKey.export({ type: "spki", format: "pem" }) as string), "pub");
    assert.equal(pub.sign, undefined, "a public key cannot sign");
    const lines = writeLog(12, 5, priv);
    assert.equal(verify(lines, pub).ok, true);
    const other = checkpointKey(Buffer.from(generateKeyPairSync("ed25519").publicKey.export({ type: "spki", format: "pem" }) as string), "other");
    assert.match(verify(lines, other).problems[0]!, /signed with another key \(Ed25519 [0-9a-f]{16}; this key is Ed25519 [0-9a-f]{16}\)/);
    assert.throws(() => new AuditLog([], new MemorySink(), { checkpoint: { key: pub, everyLines: 5, everySeconds: 10 } }), /can verify but not sign/);
  });

  test("checkpoints also come with time: lines then silence still end signed", async () => {
    const sink = new MemorySink();
    const log = new AuditLog([], sink, { checkpoint: { key: hmacKey, everyLines: 1000, everySeconds: 1 } });
    for (let i = 0; i < 3; i++) log.record(rec(i));
    const deadline = Date.now() + 15_000;
    while (!sink.lines.some(isCheckpoint) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.ok(sink.lines.some(isCheckpoint), `no timed checkpoint within 15 s; lines: ${sink.lines.length}`);
    const v = verify(sink.lines);
    assert.equal(v.ok, true, v.problems.join("\n"));
    log.close();
  });

  test("keys: specific errors for unusable ones", () => {
    assert.throws(() => checkpointKey(Buffer.from("short\n"), "k"), /k: an HMAC key needs at least 32 bytes \(has 5\)/);
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 }).privateKey.export({ type: "pkcs8", format: "pem" }) as string;
    assert.throws(() => checkpointKey(Buffer.from(rsa), "k"), /k: a rsa key; checkpoints use Ed25519/);
    assert.throws(() => checkpointKey(Buffer.from("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n"), "k"), /not a readable PEM key/);
    assert.throws(() => verifyAuditLog(`${writeLog(3, 2).join("\n")}\n`, undefined), MissingKeyError);
  });

  test("without a checkpoint key the lines are still chained, and verify says what that proves", () => {
    const sink = new MemorySink();
    const log = new AuditLog([], sink);
    for (let i = 0; i < 4; i++) log.record(rec(i));
    log.close();
    const v = verifyAuditLog(`${sink.lines.join("\n")}\n`, undefined);
    assert.equal(v.ok, true);
    assert.match(v.warnings.join(" "), /no checkpoints/);
    assert.equal(verifyAuditLog(`${sink.lines.filter((_, i) => i !== 1).join("\n")}\n`, undefined).ok, false);
  });
});

describe("the audit result", () => {
  test("status and sanitized error, never the result content", () => {
    assert.deepEqual(auditResultOf('{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"secret data"}]}}', false, 1), { result: "ok" });
    assert.deepEqual(auditResultOf('{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":true}}', false, 1), { result: "tool-error" });
    assert.deepEqual(
      auditResultOf('{"jsonrpc":"2.0","id":"a","error":{"code":-32000,"message":"ENOENT: open \'/srv/x\'","data":{"stack":"at x"}}}', false, "a"),
      { result: "error", error: { code: -32000, message: "upstream error" } },
    );
    const sse = `event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{}}\n\nevent: message\ndata: {"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"bad postgres://u:hunter2@db/x"}}\n\n`;
    assert.deepEqual(auditResultOf(sse, true, 7), { result: "error", error: { code: -32602, message: "bad postgres://[REDACTED]@db/x" } });
    // A key spelled with a JSON escape is the same key to the client: audited as the error it is.
    const escaped = '{"jsonrpc":"2.0","id":2,"\\u0065rror":{"code":-32000,"message":"boom"}}';
    assert.deepEqual(auditResultOf(escaped, false, 2), { result: "error", error: { code: -32000, message: "boom" } });
    assert.deepEqual(auditResultOfBytes(Buffer.from(escaped), false, 2), { result: "error", error: { code: -32000, message: "boom" } });
  });

  test("a large proxied answer is judged from markers while it streams, without being kept", () => {
    const big = (isError: boolean) => `{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"${"x".repeat(200_000)}"}],"isError":${isError}}}`;
    for (const isError of [false, true]) {
      const tap = resultTap(1024);
      const body = Buffer.from(big(isError));
      // Chunks of 1000 bytes: markers cut across chunk boundaries are still found.
      for (let i = 0; i < body.length; i += 1000) tap.push(body.subarray(i, i + 1000));
      assert.deepEqual(tap.result(false, 3), { result: isError ? "tool-error" : "ok" });
    }
    const small = resultTap(1024);
    small.push(Buffer.from('{"jsonrpc":"2.0","id":3,"error":{"code":-32000,"message":"boom"}}'));
    assert.deepEqual(small.result(false, 3), { result: "error", error: { code: -32000, message: "boom" } });
  });
});

// ---- through the gateway, and the CLI ---------------------------------------------------------------

let toy: Toy;
let dir: string;

before(async () => {
  toy = await startToy();
  dir = tempDir("audit");
  writeFileSync(join(dir, "keys-ops"), "ops-Zt3kq9VwPp2LmX8sRf4Y\n");
  writeFileSync(join(dir, "checkpoint.key"), HMAC);
});
after(async () => {
  await toy?.close();
});

function config(keyFile: string) {
  const keys = tempDir("audit-keys");
  writeFileSync(join(keys, "ops"), "ops-Zt3kq9VwPp2LmX8sRf4Y\n");
  const cfg = baseConfig({ upstream: { transport: "streamable-http", url: toy.url }, auth: { apiKeys: { dir: keys } } });
  cfg.authorization.rules = [
    { name: "ops", clients: { apiKeys: ["ops"] }, tools: { allow: ["*"], deny: ["delete-all"] }, prompts: { allow: ["*"], deny: [] } },
  ];
  cfg.limits.toolTimeouts = [{ tool: "slow", timeoutSeconds: 1 }];
  cfg.audit = { redactKeys: [], checkpoint: { keyFile, everyLines: 3, everySeconds: 60 } };
  return parseConfig(cfg);
}

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const w = (f: (s: string) => void) =>
    new Writable({
      write: (c, _e, cb) => {
        f(String(c));
        cb();
      },
    });
  const code = await auditCli(
    args,
    w((s) => (out += s)),
    w((s) => (err += s)),
  );
  return { code, out, err };
}

describe("a gateway's audit trail, verified by mcp-bastion audit verify", () => {
  test("a missing checkpoint key stops the gateway with a specific error", () => {
    assert.throws(
      () => new Gateway({ config: config(join(dir, "nope.key")) }),
      (e: Error) =>
        e instanceof CheckpointKeyError &&
        /audit\.checkpoint\.keyFile: cannot read .*nope\.key \(ENOENT\): the audit checkpoint key is missing/.test(e.message),
    );
  });

  test("results and errors are audited, the trail verifies, and each tampering is found by the CLI", async () => {
    const sink = new MemorySink();
    const gw = new Gateway({ config: config(join(dir, "checkpoint.key")), auditSink: sink });
    const { port } = await gw.start();
    const url = `http://127.0.0.1:${port}/mcp`;
    const headers: Record<string, string> = {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      authorization: "Bearer ops-Zt3kq9VwPp2LmX8sRf4Y",
    };
    const post = async (body: object) => (await fetch(url, { method: "POST", headers, body: JSON.stringify({ jsonrpc: "2.0", ...body }) })).text();
    headers["mcp-session-id"] = await openSession(url, headers);
    headers["mcp-protocol-version"] = "2025-06-18";
    for (let i = 0; i < 50 && !gw.ready; i++) await new Promise((r) => setTimeout(r, 50));
    await post({ id: 2, method: "tools/call", params: { name: "add", arguments: { a: 2, b: 3 } } });
    await post({ id: 3, method: "tools/call", params: { name: "delete-all", arguments: { confirm: true } } });
    await post({ id: 4, method: "prompts/get", params: { name: "nope" } });
    await post({ id: 5, method: "tools/call", params: { name: "slow", arguments: { ms: 3000 } } });
    await post({ id: 6, method: "tools/list" });
    await gw.close();

    const records = sink.records();
    const call = (id: string) => records.find((r) => r.tool === id || r.method === id);
    assert.deepEqual([call("add")?.result, call("add")?.error], ["ok", undefined]);
    assert.ok(!JSON.stringify(call("add")).includes('"text"'), "no result content in the audit line");
    assert.deepEqual(call("delete-all")?.error, { code: -32003, message: 'tool "delete-all" is not allowed for this client' });
    assert.equal(call("prompts/get")?.result, "error");
    assert.equal(typeof (call("prompts/get")!.error as { code: number }).code, "number");
    assert.deepEqual(call("slow")?.error, { code: -32008, message: "request timed out after 1 s" });
    assert.deepEqual([call("tools/list")?.result, call("tools/list")?.error], ["ok", undefined], "a list answer (filtered for the client) is audited too");

    const file = join(dir, "audit.log");
    const keyFile = join(dir, "checkpoint.key");
    writeFileSync(file, `${sink.lines.join("\n")}\n`);
    const ok = await cli(["verify", file, "--key", keyFile]);
    assert.equal(ok.code, 0, ok.out + ok.err);
    assert.match(ok.out, /^verified: \d+ line\(s\), 1 run\(s\), \d+ checkpoint\(s\); chain and checkpoints intact$/m);

    const variants: [string, string[]][] = [
      ["removed", sink.lines.filter((_, i) => i !== 2)],
      ["edited", sink.lines.map((l, i) => (i === 1 ? l.replace('"status":200', '"status":201') : l))],
      ["reordered", sink.lines.map((l, i, a) => (i === 1 ? a[2]! : i === 2 ? a[1]! : l))],
      // Chained correctly after the final checkpoint: only the missing signature gives it away.
      [
        "appended",
        [...sink.lines, JSON.stringify({ ...rec(1), seq: (JSON.parse(sink.lines.at(-1)!) as { seq: number }).seq + 1, prev: lineHash(sink.lines.at(-1)!) })],
      ],
    ];
    for (const [what, lines] of variants) {
      writeFileSync(file, `${lines.join("\n")}\n`);
      const r = await cli(["verify", file, "--key", keyFile]);
      assert.equal(r.code, 1, `${what}: ${r.out}`);
      assert.match(r.out, /^TAMPERED: lines? \d+/m, what);
      assert.match(r.out, /^FAILED: /m);
    }
    const noKey = await cli(["verify", file]);
    assert.equal(noKey.code, 2);
    assert.match(noKey.err, /this file has signed checkpoints: give the checkpoint key/);
    const missing = await cli(["verify", file, "--key", join(dir, "nope.key")]);
    assert.equal(missing.code, 2);
    assert.match(missing.err, /cannot read key file .*nope\.key \(ENOENT\)/);
  });
});
