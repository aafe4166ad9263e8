// Adversarial requests against the real gateway (`mcp-bastion gateway`, a child process) in front
// of the real server-everything: malformed JSON and HTTP, deep nesting, oversized bodies and
// headers, batches, unicode and case tricks in tool names, methods outside the spec, token tricks,
// JWKS fetch failures. Every one must be refused cleanly (4xx or a JSON-RPC error, short, no stack
// trace, no secret), while a valid client keeps calling a tool the whole time without one error,
// and the gateway's memory stays bounded.
import assert from "node:assert/strict";
import { createHmac, generateKeyPairSync, type KeyObject, sign as cryptoSign } from "node:crypto";
import http from "node:http";
import { after, before, describe, test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { baseConfig, type Child, startEverything, tempDir, writeKeys } from "../gateway/helpers.ts";
import { waitFor } from "../support/index.ts";
import { Figures, peakRssMb, rssMb } from "./figures.ts";
import { type GatewayProcess, httpRequest, type RawResponse, rawExchange, STACK_TRACE, startGateway } from "./gateway.ts";

const figures = new Figures(import.meta.url);
after(() => figures.flush());

const KEYS = { alice: "alice-Rl7Hq2Zp9Wm4Xc8Vb3Nk", carol: "carol-Gt5Yh8Uj2Ik6Ol9Pq3Wd", valid: "valid-Mn4Bv7Cx1Za5Sd8Fg2Hj" };
const PROTOCOL = "2025-06-18";
const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");

let upstream: Child;
let issuer: OwnIssuer;
let gw: GatewayProcess;
let aliceSession = "";
let carolSession = "";
/** Every token the tests send: none may come back in an answer or a log line. */
const secrets: string[] = [...Object.values(KEYS)];

// ---- a valid client that calls a tool all the time ----------------------------------------------
const valid = { ok: 0, errors: [] as string[], stop: false, done: Promise.resolve() };
async function validLoop(): Promise<void> {
  const c = new Client({ name: "valid", version: "1" });
  await c.connect(new StreamableHTTPClientTransport(new URL(`${gw.base}/mcp`), { requestInit: { headers: { authorization: `Bearer ${KEYS.valid}` } } }));
  while (!valid.stop) {
    try {
      const r = await c.callTool({ name: "echo", arguments: { message: `ping ${valid.ok}` } });
      if (JSON.stringify(r.content).includes(`ping ${valid.ok}`)) valid.ok++;
      else valid.errors.push(`unexpected answer ${JSON.stringify(r.content).slice(0, 100)}`);
    } catch (e) {
      valid.errors.push(String(e).slice(0, 200));
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  await c.close();
}

async function initSession(key: string): Promise<string> {
  const r = await httpRequest(gw.base, {
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json", accept: "application/json, text/event-stream" },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: "hostile", version: "1" } },
    }),
  });
  const sid = r.headers["mcp-session-id"];
  assert.equal(typeof sid, "string", `initialize failed: HTTP ${r.status} ${r.body.slice(0, 200)}`);
  await httpRequest(gw.base, {
    headers: {
      authorization: `Bearer ${key}`,
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      "mcp-session-id": sid as string,
      "mcp-protocol-version": PROTOCOL,
    },
    body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }),
  });
  return sid as string;
}

before(async () => {
  [upstream, issuer] = await Promise.all([startEverything("streamableHttp"), startOwnIssuer()]);
  const keysDir = tempDir("rel-keys");
  writeKeys(keysDir, KEYS);
  const cfg = baseConfig({
    upstream: { transport: "streamable-http", url: `http://127.0.0.1:${upstream.port}/mcp` },
    auth: {
      apiKeys: { dir: keysDir },
      jwt: { issuer: issuer.url, audiences: ["mcp-test"], algorithms: ["RS256", "ES256"], maxTokenAgeSeconds: 600, subjectClaim: "sub", groupsClaim: "groups" },
    },
  });
  cfg.authorization.rules = [
    { name: "alice", clients: { apiKeys: ["alice"], groups: ["readers"] }, tools: { allow: ["echo", "get-sum"], deny: [] } },
    {
      name: "carol",
      clients: { apiKeys: ["carol"] },
      tools: { allow: ["echo"], deny: [] },
      resources: { allow: ["demo://resource/static/document/*"], deny: [] },
    },
    { name: "valid", clients: { apiKeys: ["valid"] }, tools: { allow: ["echo"], deny: [] } },
  ];
  // The McpServer default (1 MiB): deep nesting fits in it.
  cfg.limits.maxRequestBytes = 1024 * 1024;
  cfg.limits.perClient = { requestsPerMinute: 60_000, burst: 5_000 };
  gw = await startGateway(cfg);
  aliceSession = await initSession(KEYS.alice);
  carolSession = await initSession(KEYS.carol);
  valid.done = validLoop();
});

after(async () => {
  valid.stop = true;
  await valid.done.catch(() => {});
  await gw?.stop();
  await Promise.all([upstream?.stop(), issuer?.close()]);
});

// ---- the requests ----------------------------------------------------------------------------------

type Who = "alice" | "carol" | "none";
function headersFor(who: Who, extra: Record<string, string> = {}): Record<string, string> {
  const h: Record<string, string> = { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": PROTOCOL };
  if (who === "alice") Object.assign(h, { authorization: `Bearer ${KEYS.alice}`, "mcp-session-id": aliceSession });
  if (who === "carol") Object.assign(h, { authorization: `Bearer ${KEYS.carol}`, "mcp-session-id": carolSession });
  return { ...h, ...extra };
}
const rpc = (method: string, params?: unknown, id: unknown = 7) => JSON.stringify({ jsonrpc: "2.0", id, method, ...(params !== undefined ? { params } : {}) });
const post = (who: Who, body: string | Buffer, extra: Record<string, string> = {}) => httpRequest(gw.base, { headers: headersFor(who, extra), body });
const call = (who: Who, name: string, args: unknown = { message: "x" }) => post(who, rpc("tools/call", { name, arguments: args }));
const withToken = (token: string, body = rpc("initialize", { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: "t", version: "1" } })) => {
  secrets.push(token);
  return httpRequest(gw.base, { headers: { ...headersFor("none"), authorization: `Bearer ${token}` }, body });
};
const now = () => Math.floor(Date.now() / 1000);
/** Claims that would be accepted with a genuine signature. */
const claims = (over: Record<string, unknown> = {}) => ({
  iss: issuer.url,
  aud: "mcp-test",
  sub: "mallory",
  groups: ["readers"],
  iat: now(),
  exp: now() + 300,
  ...over,
});

interface Hostile {
  name: string;
  send(): Promise<RawResponse | string>;
  /** Extra check on a refused answer (e.g. which error code). */
  expect?: (r: RawResponse) => void;
}

// ---- tokens: signed by hand, so every header and claim can be whatever an attacker wants --------

function rsaKey(): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync("rsa", { modulusLength: 2048 });
}
function signJwt(privateKey: KeyObject, header: Record<string, unknown>, payload: Record<string, unknown>): string {
  const head = `${b64({ alg: "RS256", typ: "JWT", ...header })}.${b64(payload)}`;
  return `${head}.${cryptoSign("sha256", Buffer.from(head), privateKey).toString("base64url")}`;
}

interface OwnIssuer {
  url: string;
  publicPem: string;
  publicJwk: Record<string, unknown>;
  /** Signs with the issuer's real key (kid k1). */
  sign(payload: Record<string, unknown>, header?: Record<string, unknown>): string;
  close(): Promise<void>;
}

/** An OIDC issuer on loopback: discovery document and a JWKS with one RSA key, kid k1. */
async function startOwnIssuer(): Promise<OwnIssuer> {
  const { privateKey, publicKey } = rsaKey();
  const publicJwk = { ...(publicKey.export({ format: "jwk" }) as Record<string, unknown>), kid: "k1", alg: "RS256", use: "sig" };
  const server = http.createServer((req, res) => {
    if (req.url === "/.well-known/openid-configuration")
      return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ issuer: url, jwks_uri: `${url}/jwks` }));
    if (req.url === "/jwks") return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: [publicJwk] }));
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return {
    url,
    publicPem: publicKey.export({ type: "spki", format: "pem" }) as string,
    publicJwk,
    sign: (payload, header = {}) => signJwt(privateKey, { kid: "k1", ...header }, payload),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const other = rsaKey();
/** Signed by a key the issuer never published. */
function signWithOther(header: Record<string, unknown>, payload: Record<string, unknown>): string {
  return signJwt(other.privateKey, header, payload);
}
const code = (n: number) => (r: RawResponse) => assert.equal(r.rpcError, n, `expected JSON-RPC error ${n}: HTTP ${r.status} ${r.body.slice(0, 200)}`);
/** The upstream never ran the tool: no `result` in the answer. */
const noResult = (r: RawResponse) =>
  assert.ok(!r.messages.some((m) => m && typeof m === "object" && "result" in m), `the request got a result: ${r.body.slice(0, 200)}`);

const deepArray = (n: number) => `${"[".repeat(n)}${"]".repeat(n)}`;
const deepObject = (n: number) => `${'{"a":'.repeat(n)}1${"}".repeat(n)}`;

const HOSTILE: Hostile[] = [
  // ---- authentication: API keys and headers
  { name: "no credentials", send: () => post("none", rpc("tools/list")), expect: code(-32001) },
  { name: "GET without credentials", send: () => httpRequest(gw.base, { method: "GET", headers: { accept: "text/event-stream" } }) },
  {
    name: "Basic auth instead of Bearer",
    send: () => post("none", rpc("tools/list"), { authorization: `Basic ${Buffer.from(`alice:${KEYS.alice}`).toString("base64")}` }),
  },
  { name: "empty Bearer", send: () => post("none", rpc("tools/list"), { authorization: "Bearer " }) },
  { name: "10 kB Bearer garbage", send: () => post("none", rpc("tools/list"), { authorization: `Bearer ${"A".repeat(10_000)}` }) },
  { name: "API key in upper case", send: () => post("none", rpc("tools/list"), { "x-api-key": KEYS.alice.toUpperCase() }) },
  { name: "API key prefix only", send: () => post("none", rpc("tools/list"), { "x-api-key": KEYS.alice.slice(0, 10) }) },
  { name: "API key with a NUL suffix", send: () => post("none", rpc("tools/list"), { "x-api-key": `${KEYS.alice}%00` }) },
  { name: "client name instead of key", send: () => post("none", rpc("tools/list"), { authorization: "Bearer alice" }) },
  {
    name: "spoofed Istio XFCC header (mTLS off)",
    send: () => post("none", rpc("tools/list"), { "x-forwarded-client-cert": "By=spiffe://cluster.local/ns/x/sa/gw;URI=spiffe://cluster.local/ns/a/sa/admin" }),
  },
  // ---- token tricks
  { name: "alg none", send: () => withToken(`${b64({ alg: "none", typ: "JWT" })}.${b64(claims())}.`), expect: code(-32001) },
  { name: "alg NoNe (case trick)", send: () => withToken(`${b64({ alg: "NoNe", typ: "JWT" })}.${b64(claims())}.`) },
  {
    name: "HS256 signed with the issuer's public key",
    send: () => {
      const head = `${b64({ alg: "HS256", typ: "JWT", kid: "k1" })}.${b64(claims())}`;
      return withToken(`${head}.${createHmac("sha256", issuer.publicPem).update(head).digest("base64url")}`);
    },
  },
  { name: "wrong kid (unknown key)", send: () => withToken(signWithOther({ kid: "k2" }, claims())) },
  { name: "right kid, other key", send: () => withToken(signWithOther({ kid: "k1" }, claims())) },
  { name: "no kid, other key", send: () => withToken(signWithOther({}, claims())) },
  { name: "kid with path traversal", send: () => withToken(signWithOther({ kid: "../../../../etc/passwd" }, claims())) },
  { name: "jku pointing elsewhere", send: () => withToken(signWithOther({ jku: "http://127.0.0.1:1/jwks", kid: "evil" }, claims())) },
  { name: "embedded jwk header", send: () => withToken(signWithOther({ jwk: other.publicKey.export({ format: "jwk" }) }, claims())) },
  { name: "PS256 header over an RS256 signature", send: () => withToken(issuer.sign(claims(), { alg: "PS256" })) },
  { name: "expired", send: () => withToken(issuer.sign(claims({ iat: now() - 7200, exp: now() - 3600 }))) },
  { name: "not yet valid (nbf in 1 h)", send: () => withToken(issuer.sign(claims({ nbf: now() + 3600 }))) },
  { name: "issued in the future (iat in 1 h)", send: () => withToken(issuer.sign(claims({ iat: now() + 3600, exp: now() + 7200 }))) },
  { name: "older than maxTokenAgeSeconds", send: () => withToken(issuer.sign(claims({ iat: now() - 3000 }))) },
  { name: "wrong audience", send: () => withToken(issuer.sign(claims({ aud: "another-api" }))) },
  { name: "audience list without ours", send: () => withToken(issuer.sign(claims({ aud: ["a", "b", "MCP-TEST"] }))) },
  { name: "wrong issuer", send: () => withToken(issuer.sign(claims({ iss: "https://evil.example.com" }))) },
  { name: "issuer with a trailing slash", send: () => withToken(issuer.sign(claims({ iss: `${issuer.url}/` }))) },
  { name: "no exp", send: () => withToken(issuer.sign(claims({ exp: undefined }))) },
  { name: "exp as a string", send: () => withToken(issuer.sign(claims({ exp: "9999999999" }))) },
  { name: "signature stripped", send: () => withToken(`${issuer.sign(claims()).split(".").slice(0, 2).join(".")}.`) },
  { name: "three garbage segments", send: () => withToken("a.b.c") },
  { name: "JWT with a 20 kB header", send: () => withToken(`${b64({ alg: "RS256", kid: "k1", pad: "x".repeat(20_000) })}.${b64(claims())}.sig`) },
  { name: "JWT with an unknown crit header", send: () => withToken(issuer.sign(claims(), { crit: ["x-evil"], "x-evil": true })) },
  // ---- JSON and JSON-RPC shape
  { name: "malformed JSON", send: () => post("alice", '{"jsonrpc":"2.0","id":1,"method":'), expect: code(-32700) },
  { name: "invalid UTF-8 bytes", send: () => post("alice", Buffer.from([0x7b, 0xff, 0xfe, 0x22, 0x7d])), expect: code(-32700) },
  { name: "empty body", send: () => post("alice", "") },
  { name: "JSON null", send: () => post("alice", "null"), expect: code(-32600) },
  { name: "JSON string", send: () => post("alice", '"tools/list"'), expect: code(-32600) },
  { name: "empty batch", send: () => post("alice", "[]"), expect: code(-32600) },
  {
    name: "batch of two calls",
    send: () => post("alice", `[${rpc("tools/list", undefined, 1)},${rpc("tools/call", { name: "get-env", arguments: {} }, 2)}]`),
    expect: noResult,
  },
  { name: "batch of 10000", send: () => post("alice", `[${Array.from({ length: 10_000 }, (_, i) => rpc("ping", undefined, i)).join(",")}]`), expect: noResult },
  { name: "array nested 200000 deep", send: () => post("alice", deepArray(200_000)) },
  { name: "object nested 100000 deep", send: () => post("alice", deepObject(100_000)) },
  {
    name: "tool arguments nested 50000 deep",
    send: () =>
      post("alice", `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"message":"x","extra":${deepObject(50_000)}}}}`),
    expect: code(-32600),
  },
  { name: "jsonrpc 1.0", send: () => post("alice", JSON.stringify({ jsonrpc: "1.0", id: 1, method: "tools/list" })), expect: code(-32600) },
  { name: "id is an object", send: () => post("alice", JSON.stringify({ jsonrpc: "2.0", id: { $gt: 1 }, method: "tools/list" })), expect: code(-32600) },
  { name: "method is a number", send: () => post("alice", JSON.stringify({ jsonrpc: "2.0", id: 1, method: 42 })), expect: code(-32600) },
  {
    name: "params is a string",
    send: () => post("alice", JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: "echo" })),
    expect: code(-32600),
  },
  {
    name: "duplicate keys: allowed name first, denied name last",
    send: () => post("carol", '{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{},"name":"get-env"}}'),
    expect: noResult,
  },
  {
    name: "__proto__ in arguments",
    send: () => post("alice", '{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"get-env","arguments":{"__proto__":{"isAdmin":true}}}}'),
    expect: noResult,
  },
  // ---- methods outside the spec and tool-name tricks
  { name: "method outside the spec", send: () => post("alice", rpc("admin/shutdown")) },
  { name: "rpc.discover", send: () => post("alice", rpc("rpc.discover")) },
  { name: "Tools/Call (case trick) for a denied tool", send: () => post("carol", rpc("Tools/Call", { name: "get-env", arguments: {} })), expect: noResult },
  { name: "tools/call with a trailing space", send: () => post("carol", rpc("tools/call ", { name: "get-env", arguments: {} })), expect: noResult },
  { name: "denied tool", send: () => call("carol", "get-env", {}), expect: code(-32003) },
  { name: "tool name in upper case", send: () => call("carol", "GET-ENV", {}), expect: noResult },
  { name: "tool name with a zero-width space", send: () => call("carol", "get\u200B-env", {}), expect: noResult },
  { name: "tool name in fullwidth letters", send: () => call("carol", "\uFF47\uFF45\uFF54-env", {}), expect: noResult },
  { name: "tool name with a NUL", send: () => call("carol", "echo\u0000get-env", {}), expect: noResult },
  { name: "tool name '*'", send: () => call("carol", "*", {}), expect: noResult },
  { name: "tool name with ../", send: () => call("carol", "../get-env", {}), expect: noResult },
  { name: "tool name of 100 kB", send: () => call("carol", "e".repeat(100_000), {}), expect: noResult },
  { name: "tool name is an object", send: () => post("carol", rpc("tools/call", { name: { toString: "get-env" }, arguments: {} })), expect: noResult },
  { name: "arguments that break the schema", send: () => call("carol", "echo", { message: { $ne: null } }), expect: code(-32602) },
  { name: "arguments as an array", send: () => call("carol", "echo", ["x"]), expect: noResult },
  { name: "resource outside the rule", send: () => post("carol", rpc("resources/read", { uri: "file:///etc/passwd" })), expect: code(-32003) },
  {
    name: "resource glob escape with ../",
    send: () => post("carol", rpc("resources/read", { uri: "demo://resource/static/document/../../dynamic/text/1" })),
    expect: noResult,
  },
  {
    name: "resource glob escape with %2e%2e",
    send: () => post("carol", rpc("resources/read", { uri: "demo://resource/static/document/%2e%2e/%2E%2E/dynamic/text/1" })),
    expect: noResult,
  },
  {
    name: "resource glob escape with TAB inside ..",
    send: () => post("carol", rpc("resources/read", { uri: "demo://resource/static/document/.\t./.\t./dynamic/text/1" })),
    expect: code(-32602),
  },
  {
    name: "resource glob escape with backslashes",
    send: () => post("carol", rpc("resources/read", { uri: "demo://resource/static/document/..\\..\\dynamic/text/1" })),
    expect: code(-32602),
  },
  {
    name: "resource glob escape with %2f",
    send: () => post("carol", rpc("resources/read", { uri: "demo://resource/static/document/..%2f..%2fdynamic/text/1" })),
    expect: code(-32602),
  },
  { name: "resource with userinfo", send: () => post("carol", rpc("resources/read", { uri: "demo://x@resource/static/document/1" })), expect: code(-32602) },
  { name: "tool name with a bidi override", send: () => call("carol", "\u202eecho", {}), expect: code(-32602) },
  { name: "prompt without a rule", send: () => post("carol", rpc("prompts/get", { name: "simple-prompt" })), expect: code(-32003) },
  // ---- sessions and protocol headers
  { name: "another client's session", send: () => post("carol", rpc("tools/list"), { "mcp-session-id": aliceSession }) },
  { name: "10 kB session id", send: () => post("alice", rpc("tools/list"), { "mcp-session-id": "s".repeat(10_000) }) },
  {
    name: "no session id on tools/list",
    send: () => httpRequest(gw.base, { headers: { ...headersFor("none"), authorization: `Bearer ${KEYS.alice}` }, body: rpc("tools/list") }),
  },
  { name: "unknown protocol version", send: () => post("alice", rpc("tools/list"), { "mcp-protocol-version": "1999-01-01" }) },
  {
    name: "legacy SSE message to an unknown session",
    send: () => httpRequest(gw.base, { path: "/messages?sessionId=nope", headers: headersFor("alice"), body: rpc("tools/list") }),
  },
  // ---- HTTP level
  { name: "PUT /mcp", send: () => httpRequest(gw.base, { method: "PUT", headers: headersFor("alice"), body: rpc("tools/list") }) },
  { name: "admin path on the MCP port", send: () => httpRequest(gw.base, { method: "GET", path: "/metrics", headers: headersFor("alice") }) },
  { name: "path traversal", send: () => httpRequest(gw.base, { method: "GET", path: "/mcp/../../etc/passwd", headers: headersFor("alice") }) },
  {
    name: "text/plain body",
    send: () => post("alice", rpc("tools/call", { name: "get-env", arguments: {} }), { "content-type": "text/plain" }),
    expect: noResult,
  },
  { name: "body over maxRequestBytes (2 MB, with Content-Length)", send: () => post("alice", `{"x":"${"a".repeat(2 * 1024 * 1024)}"}`), expect: code(-32013) },
  {
    name: "body over maxRequestBytes (chunked, no Content-Length)",
    send: () =>
      new Promise<RawResponse>((resolve) => {
        const r = http.request(`${gw.base}/mcp`, { method: "POST", headers: headersFor("alice") }, (res) => {
          let body = "";
          res.on("data", (c: Buffer) => {
            body += c.toString();
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, messages: [] }));
        });
        r.on("error", (e) => resolve({ status: 0, headers: {}, body: e.message, messages: [] }));
        const chunk = "a".repeat(64 * 1024);
        let sent = 0;
        const pump = () => {
          while (sent < 40 && r.write(chunk)) sent++;
          if (sent < 40 && !r.destroyed) r.once("drain", pump);
          else r.end();
        };
        r.write('{"x":"');
        pump();
      }),
  },
  { name: "100 kB header", send: () => rawExchange(gw.port, `POST /mcp HTTP/1.1\r\nHost: x\r\nX-Big: ${"b".repeat(100_000)}\r\nContent-Length: 2\r\n\r\n{}`) },
  {
    name: "3000 headers",
    send: () =>
      rawExchange(
        gw.port,
        `POST /mcp HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 3000 }, (_, i) => `X-H${i}: v`).join("\r\n")}\r\nContent-Length: 2\r\n\r\n{}`,
      ),
  },
  {
    name: "Content-Length and Transfer-Encoding (smuggling)",
    send: () =>
      rawExchange(
        gw.port,
        "POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
      ),
  },
  { name: "garbage request line", send: () => rawExchange(gw.port, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n") },
  {
    name: "header with a bare LF and NUL",
    send: () => rawExchange(gw.port, "POST /mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\nX-Injected: 1\r\nX-Nul: a\0b\r\nContent-Length: 2\r\n\r\n{}"),
  },
];

// ---- the checks ------------------------------------------------------------------------------------

/** Problems with an answer: not a refusal, too long, a stack trace, a secret. */
function problemsWith(r: RawResponse | string): string[] {
  const out: string[] = [];
  if (typeof r === "string") {
    // Raw HTTP: the server answers 4xx or closes the connection; never 2xx or 5xx.
    if (r !== "" && !/^HTTP\/1\.1 4\d\d /.test(r)) out.push(`raw answer is not a 4xx: ${JSON.stringify(r.slice(0, 120))}`);
    if (r.length > 16_384) out.push(`answer of ${r.length} bytes`);
    if (STACK_TRACE.test(r)) out.push("stack trace in the answer");
    for (const s of secrets) if (r.includes(s)) out.push("a credential came back in the answer");
    return out;
  }
  const refused = r.status >= 400 || r.rpcError !== undefined;
  if (r.status === 0) out.push(`no answer (${r.body})`);
  else if (!refused) out.push(`not refused: HTTP ${r.status} ${r.body.slice(0, 200)}`);
  if (r.status >= 500 && r.status !== 503) out.push(`HTTP ${r.status}: a server error is not a clean refusal (${r.body.slice(0, 200)})`);
  if (r.body.length > 16_384) out.push(`answer of ${r.body.length} bytes (echoes the input?)`);
  const all = `${r.body}\n${JSON.stringify(r.headers)}`;
  if (STACK_TRACE.test(all)) out.push(`stack trace in the answer: ${r.body.slice(0, 300)}`);
  for (const s of secrets) if (all.includes(s)) out.push("a credential came back in the answer");
  return out;
}

describe("adversarial requests", () => {
  let peak = 0;
  test("control: a genuine token and key are accepted (so the refusals below mean something)", async () => {
    const r = await withToken(issuer.sign(claims()));
    assert.equal(r.status, 200, r.body.slice(0, 200));
    const k = await call("carol", "echo", { message: "control" });
    assert.match(k.body, /Echo: control/);
  });
  for (const h of HOSTILE) {
    test(h.name, async () => {
      let ok = false;
      try {
        const r = await h.send();
        assert.deepEqual(problemsWith(r), []);
        if (typeof r !== "string") h.expect?.(r);
        assert.ok(gw.alive(), `the gateway exited: ${gw.stderr().slice(-500)}`);
        peak = Math.max(peak, rssMb(gw.pid));
        ok = true;
      } finally {
        figures.scenario(`gateway ${h.name}`, ok);
      }
    });
  }

  test("the list is big enough to mean something", () => {
    assert.ok(HOSTILE.length >= 60, `${HOSTILE.length} requests`);
    figures.figure("adversarial requests", String(HOSTILE.length));
  });

  test("the valid client was served throughout, without one error", async () => {
    // After the last hostile request the gateway must still answer: wait for the valid client's next
    // successful calls (a state, however slow the machine), then check that none of its calls failed.
    const before = valid.ok;
    await waitFor(
      () =>
        `the valid client to make progress after the hostile requests (${valid.ok} ok, ${before} before, 20 needed; errors: ${valid.errors.slice(0, 3).join("; ")})`,
      () => valid.ok > before && valid.ok >= 20,
    );
    assert.deepEqual(valid.errors, []);
    figures.figure("valid client calls during the attack", `${valid.ok} ok, ${valid.errors.length} errors`);
    figures.scenario("valid client served throughout", true);
  });

  test("memory stays bounded (peak RSS)", () => {
    const hwm = peakRssMb(gw.pid);
    figures.figure("gateway RSS during the attack", `now ${rssMb(gw.pid).toFixed(0)} MB, peak ${hwm.toFixed(0)} MB (sampled max ${peak.toFixed(0)} MB)`);
    // Bodies are capped at 1 MiB and refused before being buffered past it: the gateway never
    // holds more than a few of them. 250 MB is twice the gateway's own RSS goal.
    const ok = hwm < 250;
    figures.scenario("gateway peak RSS < 250 MB", ok, `${hwm.toFixed(0)} MB`);
    assert.ok(ok, `peak RSS ${hwm} MB`);
  });

  test("no credential and no stack trace in any log line", () => {
    const logs = `${gw.stdout()}\n${gw.stderr()}`;
    const leaked = secrets.filter((s) => logs.includes(s));
    const stack = logs.split("\n").filter((l) => STACK_TRACE.test(l));
    const ok = leaked.length === 0 && stack.length === 0;
    figures.scenario("logs free of credentials and stack traces", ok, `${logs.split("\n").length} lines`);
    assert.equal(leaked.length, 0, `${leaked.length} credentials appear in the gateway's logs`);
    assert.deepEqual(stack.slice(0, 3), []);
  });
});

// ---- JWKS fetch failures ------------------------------------------------------------------------

type JwksMode = "500" | "not-json" | "hang" | "reset" | "huge" | "no-keys";
const JWKS_MODES: JwksMode[] = ["500", "not-json", "hang", "reset", "huge", "no-keys"];

/** A JWKS endpoint that fails in one way. */
async function brokenJwks(mode: JwksMode): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (mode === "500")
      return void res.writeHead(500, { "content-type": "text/html" }).end("<h1>Internal Server Error</h1> at Object.<anonymous> (/srv/idp/index.js:1:1)");
    if (mode === "not-json") return void res.writeHead(200, { "content-type": "application/json" }).end("{not json");
    if (mode === "hang") return; // never answers
    if (mode === "reset") return void req.socket.destroy();
    if (mode === "huge") {
      res.writeHead(200, { "content-type": "application/json" });
      res.write('{"keys":[');
      const junk = JSON.stringify({ kty: "RSA", kid: "junk", n: "x".repeat(1000), e: "AQAB" });
      for (let i = 0; i < 20_000; i++) res.write(`${i ? "," : ""}${junk}`);
      return void res.end("]}");
    }
    res.writeHead(200, { "content-type": "application/json" }).end('{"keys":[]}');
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}/jwks`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe("JWKS fetch failures", () => {
  for (const mode of JWKS_MODES) {
    test(`JWKS endpoint ${mode}: tokens refused with 401 in time, API keys still served`, async () => {
      let ok = false;
      const jwks = await brokenJwks(mode);
      const keysDir = tempDir("rel-jwks-keys");
      writeKeys(keysDir, { valid: KEYS.valid });
      const cfg = baseConfig({
        upstream: { transport: "streamable-http", url: `http://127.0.0.1:${upstream.port}/mcp` },
        auth: {
          apiKeys: { dir: keysDir },
          jwt: {
            issuer: "https://idp.example.com",
            audiences: ["mcp-test"],
            jwksUri: jwks.url,
            algorithms: ["RS256"],
            maxTokenAgeSeconds: 600,
            subjectClaim: "sub",
            groupsClaim: "groups",
          },
        },
      });
      cfg.authorization.rules = [{ name: "valid", clients: { apiKeys: ["valid"], groups: ["readers"] }, tools: { allow: ["echo"], deny: [] } }];
      let g: GatewayProcess | undefined;
      const t0 = performance.now();
      try {
        g = await startGateway(cfg, { waitReady: false });
        const token = signWithOther(
          { kid: "k1" },
          { iss: "https://idp.example.com", aud: "mcp-test", sub: "m", groups: ["readers"], iat: now(), exp: now() + 300 },
        );
        secrets.push(token);
        const start = performance.now();
        const r = await httpRequest(g.base, {
          headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${token}` },
          body: rpc("initialize", { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: "t", version: "1" } }),
          timeoutMs: 30_000,
        });
        const ms = performance.now() - start;
        assert.equal(r.status, 401, `HTTP ${r.status} ${r.body.slice(0, 200)}`);
        assert.deepEqual(problemsWith(r), []);
        // The gateway gives up on the JWKS after 3 s; 15 s separates that from a hang (the request's own
        // 30 s timeout) with room for a loaded machine.
        assert.ok(ms < 15_000, `refusal took ${ms} ms`);
        const c = new Client({ name: "valid", version: "1" });
        await c.connect(new StreamableHTTPClientTransport(new URL(`${g.base}/mcp`), { requestInit: { headers: { authorization: `Bearer ${KEYS.valid}` } } }));
        const e = await c.callTool({ name: "echo", arguments: { message: "still here" } });
        assert.match(JSON.stringify(e.content), /still here/);
        await c.close();
        assert.ok(g.alive());
        const logs = `${g.stdout()}\n${g.stderr()}`;
        assert.ok(!logs.includes(token), "the token appears in a log line");
        assert.doesNotMatch(logs, STACK_TRACE);
        figures.figure(`JWKS ${mode}: token refused in`, `${ms.toFixed(0)} ms (gateway up ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
        ok = true;
      } finally {
        figures.scenario(`JWKS ${mode}`, ok);
        await g?.stop();
        await jwks.close();
      }
    });
  }
});
