// issue 11: the era decision and the 2026-07-28 checks as pure functions (era.ts, modern.ts, the
// bridge's call identity): what a request of each shape is classified as, and what is refused.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { SUPPORTED_PROTOCOL_VERSIONS } from "../../contract/gateway-config.ts";
import { type EraDecision, classify, decodeHeaderValue, paramHeaderProblem, paramHeaders } from "../../gateway/src/era.ts";
import type { Stop } from "../../gateway/src/exchange.ts";
import { type JsonRpcMessage, modernErrorCode } from "../../gateway/src/jsonrpc.ts";
import { filterDiscover, modernResult } from "../../gateway/src/modern.ts";
import { callIdentity, toLegacyRequest } from "../../gateway/src/stateless-bridge.ts";

const ALL = [...SUPPORTED_PROTOCOL_VERSIONS];
const meta = (v: unknown = "2026-07-28") => ({ _meta: { "io.modelcontextprotocol/protocolVersion": v, "io.modelcontextprotocol/clientCapabilities": {} } });
const req = (method: string, params: Record<string, unknown> = {}): JsonRpcMessage => ({ jsonrpc: "2.0", id: 1, method, params });
const H = (method: string, extra: Record<string, string> = {}) => ({ "mcp-protocol-version": "2026-07-28", "mcp-method": method, ...extra });

function refused(d: EraDecision | Stop): Stop {
  assert.ok("status" in d, `expected a refusal, got ${JSON.stringify(d)}`);
  return d;
}
function decided(d: EraDecision | Stop): EraDecision {
  assert.ok(!("status" in d), `expected a decision, got ${JSON.stringify(d)}`);
  return d;
}

describe("era classification", () => {
  test("a request carrying the _meta protocol version is modern; initialize and session requests are legacy", () => {
    assert.equal(decided(classify(req("tools/list", meta()), H("tools/list"), ALL)).era, "modern");
    assert.equal(decided(classify(req("initialize", { protocolVersion: "2025-06-18" }), {}, ALL)).era, "legacy");
    assert.equal(decided(classify(req("tools/list"), { "mcp-session-id": "s", "mcp-protocol-version": "2025-06-18" }, ALL)).era, "legacy");
    assert.equal(decided(classify({ jsonrpc: "2.0", id: 3, result: {} }, {}, ALL)).era, "legacy", "a client's answer to a server request");
  });

  test("header/body disagreements are 400 -32020", () => {
    const cases: [JsonRpcMessage, Record<string, string>][] = [
      [req("tools/call", { ...meta(), name: "a" }), H("tools/call", { "mcp-name": "b" })],
      [req("tools/call", { ...meta(), name: "a" }), H("tools/list", { "mcp-name": "a" })],
      [req("tools/call", { ...meta(), name: "a" }), H("tools/call")], // Mcp-Name missing
      [req("tools/list", meta()), { "mcp-protocol-version": "2026-07-28" }], // Mcp-Method missing
      [req("tools/list", meta()), { "mcp-method": "tools/list" }], // version header missing
      [req("tools/list", meta()), H("tools/list", { "mcp-protocol-version": "2025-11-25" })],
      [req("resources/read", { ...meta(), uri: "file:///a" }), H("resources/read", { "mcp-name": "file:///b" })],
      [req("initialize", { protocolVersion: "2025-06-18" }), { "mcp-protocol-version": "2026-07-28" }],
      // Present headers are checked in the 2025 era too: nothing in front of the gateway may route on a lie.
      [req("tools/call", { name: "a" }), { "mcp-method": "tools/call", "mcp-name": "b" }],
      [req("tools/call", { ...meta(), name: "a" }), H("tools/call", { "mcp-name": "=?base64?not base64?=" })],
    ];
    for (const [m, h] of cases) {
      const s = refused(classify(m, h, ALL));
      assert.equal(s.status, 400, JSON.stringify(h));
      assert.equal(s.code, -32020, JSON.stringify(h));
    }
  });

  test("an encoded Mcp-Name is decoded before comparing", () => {
    const name = "grüße";
    const h = H("tools/call", { "mcp-name": `=?base64?${Buffer.from(name).toString("base64")}?=` });
    assert.equal(decided(classify(req("tools/call", { ...meta(), name }), h, ALL)).era, "modern");
    assert.equal(decodeHeaderValue("=?base64?YQ?="), undefined, "non-canonical base64 is invalid");
    assert.equal(decodeHeaderValue("plain"), "plain");
  });

  test("versions outside the allowlist get 400 -32022 with the supported list; missing capabilities -32602", () => {
    const s = refused(classify(req("tools/list", meta("2099-01-01")), H("tools/list", { "mcp-protocol-version": "2099-01-01" }), ALL));
    assert.equal(s.code, -32022);
    assert.deepEqual(s.data, { supported: ALL, requested: "2099-01-01" });
    const only2025 = ["2025-11-25", "2025-06-18"];
    assert.equal(refused(classify(req("tools/list", meta()), H("tools/list"), only2025)).code, -32022, "2026 not allowed");
    assert.equal(refused(classify(req("tools/list"), { "mcp-session-id": "s", "mcp-protocol-version": "2025-03-26" }, only2025)).code, -32022);
    const noCaps = req("tools/list", { _meta: { "io.modelcontextprotocol/protocolVersion": "2026-07-28" } });
    assert.equal(refused(classify(noCaps, H("tools/list"), ALL)).code, -32602);
    assert.equal(refused(classify(req("tools/list"), H("tools/list"), ALL)).code, -32602, "a 2026 header without the _meta envelope");
  });

  test("MRTR retry fields are refused (-32602) on other methods and in other shapes", () => {
    const bad: Record<string, unknown>[] = [
      { name: "t", inputResponses: [] },
      { name: "t", inputResponses: { a: "yes" } },
      { name: "t", requestState: 5 },
    ];
    for (const p of bad)
      assert.equal(refused(classify(req("tools/call", { ...meta(), ...p }), H("tools/call", { "mcp-name": "t" }), ALL)).code, -32602, JSON.stringify(p));
    assert.equal(refused(classify(req("tools/list", { ...meta(), requestState: "s" }), H("tools/list"), ALL)).code, -32602);
    const ok = req("tools/call", { ...meta(), name: "t", inputResponses: { a: { action: "accept" } }, requestState: "s" });
    assert.equal(decided(classify(ok, H("tools/call", { "mcp-name": "t" }), ALL)).era, "modern");
  });

  test("2025 initialize: an allowed version as asked; another is offered the newest allowed 2025 version; none allowed: -32022", () => {
    assert.deepEqual(decided(classify(req("initialize", { protocolVersion: "2025-06-18" }), {}, ALL)), { era: "legacy", version: "2025-06-18" });
    assert.deepEqual(decided(classify(req("initialize", { protocolVersion: "2024-11-05" }), {}, ["2026-07-28", "2025-06-18"])), {
      era: "legacy",
      version: "2025-06-18",
      offer: "2025-06-18",
    });
    const s = refused(classify(req("initialize", { protocolVersion: "2025-06-18" }), {}, ["2026-07-28"]));
    assert.equal(s.code, -32022);
    assert.deepEqual((s.data as { supported: string[] }).supported, ["2026-07-28"]);
  });
});

describe("x-mcp-header parameters", () => {
  const schema = {
    type: "object",
    properties: {
      region: { type: "string", "x-mcp-header": "Region" },
      n: { type: "integer", "x-mcp-header": "N" },
      nested: { type: "object", properties: { tenant: { type: "string", "x-mcp-header": "Tenant" } } },
      list: { type: "array", items: { type: "string", "x-mcp-header": "Ignored" } },
    },
  };
  const decls = paramHeaders(schema);
  test("only properties reachable by `properties` chains are declarations", () => {
    assert.deepEqual(
      decls.map((d) => d.header),
      ["Region", "N", "Tenant"],
    );
  });
  test("a body value needs its header, equal after decoding (integers numerically); null or absent values need none", () => {
    assert.equal(
      paramHeaderProblem(decls, { region: "eu", n: 42, nested: { tenant: "t" } }, { "mcp-param-region": "eu", "mcp-param-n": "42.0", "mcp-param-tenant": "t" }),
      undefined,
    );
    assert.equal(paramHeaderProblem(decls, { region: null }, {}), undefined);
    assert.equal(paramHeaderProblem(decls, { region: "eu" }, {})?.code, -32020);
    assert.equal(paramHeaderProblem(decls, { n: 42 }, { "mcp-param-n": "43" })?.code, -32020);
    assert.equal(paramHeaderProblem(decls, { nested: { tenant: "a" } }, { "mcp-param-tenant": "b" })?.code, -32020);
  });
});

describe("2026 result shape and the bridge's call identity", () => {
  test("cacheable results get resultType, a valid ttlMs and cacheScope private whatever the upstream said", () => {
    assert.deepEqual(modernResult("tools/list", { tools: [], cacheScope: "public", ttlMs: 5000 }), {
      tools: [],
      cacheScope: "private",
      ttlMs: 5000,
      resultType: "complete",
    });
    assert.deepEqual(modernResult("resources/read", { contents: [], ttlMs: -3 }), { contents: [], resultType: "complete", ttlMs: 0, cacheScope: "private" });
    assert.deepEqual(modernResult("tools/call", { content: [] }), { content: [], resultType: "complete" });
    const ir = { resultType: "input_required", inputRequests: {} };
    assert.deepEqual(modernResult("tools/call", ir), ir, "an MRTR interim result passes as it is");
  });

  test("discover names only allowed versions and capabilities of kinds the client may see", () => {
    const d = filterDiscover(
      { supportedVersions: ["2026-07-28", "2027-01-01"], capabilities: { tools: {}, prompts: {}, resources: {}, completions: {} } },
      { tools: true, prompts: false, resources: false },
      ALL,
    ) as {
      supportedVersions: string[];
      capabilities: Record<string, unknown>;
    };
    assert.deepEqual(d.supportedVersions, ["2026-07-28"]);
    assert.deepEqual(Object.keys(d.capabilities), ["tools"]);
  });

  test("2026 clients never get the codes that revision forbids: -32002 and undefined codes of its reserved range", () => {
    assert.equal(modernErrorCode(-32002, "resources/read"), -32602, "resource not found");
    assert.equal(modernErrorCode(-32002, "tools/call"), -32603, "the gateway's upstream error");
    assert.equal(modernErrorCode(-32029, "tools/call"), -31029, "rate limited: outside JSON-RPC's reserved range");
    assert.equal(modernErrorCode(-32003, "tools/call"), -32003);
    assert.equal(modernErrorCode(-32020, "tools/call"), -32020);
  });

  test("a retry is the same call only with the same method, target and arguments (key order aside)", () => {
    const a = callIdentity(req("tools/call", { name: "t", arguments: { x: 1, y: [1, 2] } }));
    assert.equal(a, callIdentity(req("tools/call", { name: "t", arguments: { y: [1, 2], x: 1 }, inputResponses: {}, requestState: "s" })));
    assert.notEqual(a, callIdentity(req("tools/call", { name: "u", arguments: { x: 1, y: [1, 2] } })));
    assert.notEqual(a, callIdentity(req("tools/call", { name: "t", arguments: { x: 2, y: [1, 2] } })));
    assert.notEqual(a, callIdentity(req("prompts/get", { name: "t", arguments: { x: 1, y: [1, 2] } })));
  });

  test("a 2026 request reaches a 2025 session without the protocol _meta and MRTR fields", () => {
    const m = toLegacyRequest(req("tools/call", { ...meta(), name: "t", arguments: {}, inputResponses: { a: {} }, requestState: "s" }));
    assert.deepEqual(m.params, { name: "t", arguments: {} });
    const p = toLegacyRequest(req("tools/call", { _meta: { progressToken: 7, "io.modelcontextprotocol/protocolVersion": "2026-07-28" }, name: "t" }));
    assert.deepEqual(p.params, { name: "t", _meta: { progressToken: 7 } });
  });
});
