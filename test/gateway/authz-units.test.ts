// Unit tests for the pure parts of issue 13's authorization: CEL conditions, JSON Schema overlays, time
// windows, source addresses, scopes and challenges, and the AccessEngine's decisions (clock injected).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { legacyToolFingerprint, toolFingerprint } from "../../contract/fingerprint.ts";
import type { Identity } from "../../gateway/src/authz.ts";
import {
  cleanPath,
  codePointCount,
  compileCondition,
  conditionError,
  pathWithin,
  selectPath,
  toCel,
  celTimestamp,
  urlHost,
} from "../../contract/authz/conditions.ts";
import { AccessEngine, type AccessConfig, type Decision } from "../../gateway/src/authz/engine.ts";
import { ruleSchedule } from "../../contract/authz/windows.ts";
import { grantedScopes, insufficientScopeChallenge, unauthorizedChallenge } from "../../gateway/src/authz/scopes.ts";
import { cidrSet, clientAddress } from "../../gateway/src/authz/source.ts";
import { isActive, nextChange, scheduleProblems } from "../../contract/authz/windows.ts";
import { assessTool } from "../../gateway/src/integrity.ts";

const alice: Identity = { key: "apikey:alice", kind: "apikey", name: "alice" };
const jwt = (scopes: string[], groups?: string[]): Identity => ({
  key: "jwt:u1",
  kind: "jwt",
  name: "u1",
  scopes,
  ...(groups ? { groups } : {}),
  claims: { sub: "u1", tenant: "acme" },
});
const at = (iso: string) => ({ source: "10.1.2.3", now: Date.parse(iso) });
const NOW = at("2026-11-30T12:00:00Z");

function evalWith(expr: string, args: unknown, tool = "t") {
  return compileCondition(expr)({
    request: toCel({ method: "tools/call", tool, arguments: args, uri: "", prompt: "" }) as Map<string, unknown>,
    client: toCel({ name: "apikey:alice", groups: [], scopes: [] }) as Map<string, unknown>,
    now: celTimestamp(Date.parse("2026-11-30T12:00:00Z")),
  }).ok;
}

describe("CEL conditions (the checklist's examples)", () => {
  it("a file tool limited to a directory refuses traversal after normalization", () => {
    const e = "pathWithin(request.arguments.path, '/srv/data')";
    assert.equal(evalWith(e, { path: "/srv/data/reports/q3.csv" }), true);
    assert.equal(evalWith(e, { path: "/srv/data" }), true);
    for (const bad of ["/srv/data/../../etc/passwd", "/srv/data/./../secret", "/srv/database/x", "srv/data/x", "/srv/data/\u0000/x", "//srv/data/../../etc"]) {
      assert.equal(evalWith(e, { path: bad }), false, bad);
    }
    assert.equal(cleanPath("/srv/data//a/./b/../c/"), "/srv/data/a/c");
    assert.equal(pathWithin("/srv/data/../data2/x", "/srv/data"), false);
  });

  it("a database tool accepts only read-only statements", () => {
    const e =
      "request.arguments.sql.matches('^\\\\s*(?i:select|explain|show)\\\\b[^;]*;?\\\\s*$') && !request.arguments.sql.matches('(?i)\\\\b(insert|update|delete|drop|alter|create|grant|revoke|truncate|copy|call|do|lock|vacuum|into|set)\\\\b')";
    assert.equal(conditionError(e), undefined);
    for (const ok of ["SELECT id, name FROM users WHERE id = 1", "  select count(*) from orders;", "EXPLAIN SELECT 1", "show search_path"])
      assert.equal(evalWith(e, { sql: ok }), true, ok);
    for (const bad of [
      "DELETE FROM users",
      "select 1; drop table users",
      "WITH x AS (DELETE FROM users RETURNING *) SELECT * FROM x",
      "select * into backup from users",
      "UPDATE users SET admin = true",
      "select 1;\ndelete from t",
    ])
      assert.equal(evalWith(e, { sql: bad }), false, bad);
  });

  it("a web tool's URL must name an allowlisted host (as the WHATWG URL parser sees it)", () => {
    const e = "urlScheme(request.arguments.url) == 'https' && urlHost(request.arguments.url) in ['api.github.com', 'docs.example.com']";
    for (const ok of ["https://api.github.com/repos", "https://API.GitHub.com./x", "https://docs.example.com:443/a?b"])
      assert.equal(evalWith(e, { url: ok }), true, ok);
    for (const bad of [
      "https://api.github.com.evil.io/",
      "https://evil.io/?u=https://api.github.com",
      "https://api.github.com@evil.io/",
      "http://api.github.com/",
      "javascript:alert(1)",
      "not a url",
      "https://evil.io\\@api.github.com/",
    ])
      assert.equal(evalWith(e, { url: bad }), false, bad);
    assert.equal(urlHost("https://[::1]:8080/"), "::1");
  });

  it("numeric ranges and string lengths, in CEL", () => {
    const e = "request.arguments.limit >= 1 && request.arguments.limit <= 100 && size(request.arguments.q) <= 64";
    assert.equal(evalWith(e, { limit: 10, q: "abc" }), true);
    assert.equal(evalWith(e, { limit: 101, q: "abc" }), false);
    assert.equal(evalWith(e, { limit: 0, q: "abc" }), false);
    assert.equal(evalWith(e, { limit: 5, q: "x".repeat(65) }), false);
    // a missing field is an evaluation error: refused, never allowed
    assert.equal(evalWith(e, { q: "abc" }), false);
  });

  it("size() counts code points as CEL defines it (our replacement of the standard overloads)", () => {
    const samples = ["", "abc", "héllo", "😀", "😀a\ud800", "\udc00\ud800", "x\ud83d", "\ud83d\ude00\ud83d", "日本語", "a".repeat(5000)];
    for (const x of samples) {
      assert.equal(codePointCount(x), [...x].length, JSON.stringify(x).slice(0, 40));
      const n = [...x].length;
      assert.equal(evalWith(`size(request.arguments.x) == ${n} && request.arguments.x.size() == ${n}`, { x }), true, JSON.stringify(x).slice(0, 40));
    }
    // The other overloads of the same name are still the standard library's.
    assert.equal(
      evalWith("size(request.arguments.l) == 2 && size(request.arguments.m) == 1 && size(b'ab') == 2 && request.arguments.l.size() == 2", {
        l: [1, 2],
        m: { a: 1 },
      }),
      true,
    );
  });

  it("invalid expressions are refused at compile time with the reason", () => {
    assert.match(conditionError("request.arguments.path.startsWith(") ?? "", /at 1:/);
    assert.match(conditionError("nosuch(request.tool)") ?? "", /unknown function "nosuch"/);
    assert.match(conditionError("reqest.tool == 'x'") ?? "", /undeclared reference to "reqest"/);
    assert.equal(conditionError("request.arguments.all(k, k != 'x') && [1,2].exists(i, i == 2)"), undefined);
    assert.equal(conditionError("now.getHours('Europe/Berlin') < 18 && 'ops' in client.groups"), undefined);
  });

  it("nested arguments read lazily behave as JSON: macros over lists of objects, map keys, has(), odd keys stay data", () => {
    const order = {
      items: [
        { sku: "a", qty: 2 },
        { sku: "b", qty: 12 },
      ],
      meta: { $typeName: "google.protobuf.Timestamp", constructor: "x", nested: { deep: [1, [2, { z: true }]] } },
    };
    assert.equal(evalWith("request.arguments.items.all(i, i.qty <= 10)", order), false);
    assert.equal(evalWith("request.arguments.items.exists(i, i.sku == 'b' && i.qty == 12)", order), true);
    assert.equal(evalWith("request.arguments.meta.exists(k, k == 'constructor')", order), true);
    assert.equal(evalWith("size(request.arguments.meta) == 3 && request.arguments.meta['$typeName'] == 'google.protobuf.Timestamp'", order), true);
    assert.equal(evalWith("request.arguments.meta.nested.deep[1][1].z", order), true);
    assert.equal(evalWith("has(request.arguments.meta.nested) && !has(request.arguments.meta.absent)", order), true);
    assert.equal(evalWith("request.arguments.meta.absent == 1", order), false, "a missing key is an error, which refuses");
    assert.equal(evalWith("request.arguments == {'a': [1, {'b': 'c'}]}", { a: [1, { b: "c" }] }), true);
  });

  it("each expression says which request and client fields it reads, so the activation builds only those", () => {
    const uses = (e: string) => {
      const u = compileCondition(e).uses;
      return { request: u.request === "all" ? "all" : [...u.request].sort(), client: u.client === "all" ? "all" : [...u.client].sort() };
    };
    assert.deepEqual(uses("size(request.arguments.message) <= 1024"), { request: ["arguments"], client: [] });
    assert.deepEqual(uses("request.tool == 'x' && client.source.startsWith('10.') || has(request.uri)"), { request: ["tool", "uri"], client: ["source"] });
    assert.deepEqual(uses("'tool' in request && client['name'] == 'a'"), { request: "all", client: "all" });
    assert.deepEqual(uses("[1].exists(client, client > 0) && request.method == 'x'"), { request: ["method"], client: "all" });
  });
});

describe("CEL conditions: dotted names answered by the activation (the policy stage's fast path)", () => {
  // The gateway's activation answers "request.arguments.path" itself (Uses.paths in conditions.ts), so
  // @bufbuild/cel does not try qualified names against its registry on every call. Every result and every
  // error message must be the evaluator's own: each expression runs once on the plain variables and once
  // with the dotted names answered, and both must agree (and match what the expression means).
  const args = {
    path: "/srv/x",
    n: 5,
    nested: { a: { b: null } },
    a: { b: "nested" },
    "a.b": "dotkey",
    list: [1, { x: 2 }],
  };
  const base = () => ({
    request: toCel({ method: "tools/call", tool: "t", arguments: args, uri: "", prompt: "" }),
    client: toCel({ name: "apikey:alice", claims: { tenant: "acme" } }),
    now: celTimestamp(Date.parse("2026-11-30T12:00:00Z")),
  });
  const both = (expr: string) => {
    const p = compileCondition(expr);
    const plain = p(base());
    const b = base();
    const answered: Record<string, unknown> = { ...b };
    for (const name of p.uses.paths ?? []) {
      const [root, ...fields] = name.split(".") as ["request" | "client", ...string[]];
      answered[name] = selectPath(b[root], fields);
    }
    const fast = p(answered as never);
    assert.deepEqual(fast, plain, expr);
    return { ...plain, paths: p.uses.paths && [...p.uses.paths].sort() };
  };
  it("present, absent, null and non-map steps give the evaluator's own results and errors", () => {
    assert.deepEqual(both("request.arguments.path == '/srv/x' && size(request.arguments.path) == 6"), {
      ok: true,
      paths: ["request.arguments", "request.arguments.path"],
    });
    assert.deepEqual(both("request.arguments.nested.a.b == null"), {
      ok: true,
      paths: ["request.arguments", "request.arguments.nested", "request.arguments.nested.a", "request.arguments.nested.a.b"],
    });
    assert.deepEqual(both("request.arguments.list[1].x == 2 && client.claims.tenant == 'acme'").ok, true);
    assert.deepEqual(both("has(request.arguments.nested.a) && !has(request.arguments.nested.z)").ok, true);
    assert.deepEqual(both("request.arguments.n > 3 ? request.arguments.path.startsWith('/srv') : false").ok, true);
    assert.deepEqual(both("request.arguments.n == 5 || request.arguments.missing").ok, true);
    assert.deepEqual(both("request.arguments.missing == 1"), {
      ok: false,
      error: "field not found: missing",
      paths: ["request.arguments", "request.arguments.missing"],
    });
    for (const e of ["request.arguments.nested.a.b.c == 1", "request.arguments.path.foo == 1", "request.nosuch.x == 1", "client.claims.tenant.x == 1"])
      assert.equal(both(e).ok, false, e);
  });

  it("no dotted names when the evaluator could mean something else by one", () => {
    // bufbuild looks "request.arguments.a.b" up for the index ['a.b'] too, and a dotted name in the outer
    // activation before a comprehension variable named request: answering it would change the result.
    const dotted = both("request.arguments['a.b'] == 'dotkey' && request.arguments.a.b == 'nested'");
    assert.deepEqual(dotted, { ok: true, paths: undefined });
    const shadow = both("request.arguments.path == '/srv/x' && [{'arguments': {'path': 'inner'}}].exists(request, request.arguments.path == 'inner')");
    assert.deepEqual(shadow, { ok: true, paths: undefined });
    // What the guard prevents: the same index answered from a dotted name reads the nested value.
    const p = compileCondition("request.arguments['a.b'] == 'dotkey'");
    const b = base();
    assert.equal(p(b).ok, true);
    assert.equal(p({ ...b, "request.arguments.a.b": selectPath(b.request, ["arguments", "a", "b"]) } as never).ok, false);
  });
});

describe("time windows", () => {
  const maint = { windows: [{ days: ["Sat" as const], start: "02:00", end: "04:00", timeZone: "Europe/Berlin" }] };
  it("active only inside the window, in the window's time zone, and says when it changes", () => {
    assert.equal(isActive(maint, Date.parse("2026-11-28T00:59:00Z")), false); // Sat 01:59 Berlin
    assert.equal(isActive(maint, Date.parse("2026-11-28T01:00:00Z")), true); // Sat 02:00
    assert.equal(isActive(maint, Date.parse("2026-11-28T02:59:00Z")), true);
    assert.equal(isActive(maint, Date.parse("2026-11-28T03:00:00Z")), false); // 04:00 exclusive
    assert.equal(new Date(nextChange(maint, Date.parse("2026-11-30T12:00:00Z"))!).toISOString(), "2026-12-05T01:00:00.000Z");
    assert.equal(new Date(nextChange(maint, Date.parse("2026-11-28T01:30:00Z"))!).toISOString(), "2026-11-28T03:00:00.000Z");
  });
  it("windows past midnight belong to the day they start on; DST is followed", () => {
    const night = { windows: [{ days: ["Fri" as const], start: "22:00", end: "02:00", timeZone: "UTC" }] };
    assert.equal(isActive(night, Date.parse("2026-11-28T01:00:00Z")), true); // Sat 01:00, started Fri
    assert.equal(isActive(night, Date.parse("2026-11-29T01:00:00Z")), false); // Sun 01:00
    const office = { windows: [{ start: "09:00", end: "17:00", timeZone: "Europe/Berlin" }] };
    // 2027-03-28: Berlin switches to summer time; 09:00 local is then 07:00 UTC
    assert.equal(new Date(nextChange(office, Date.parse("2027-03-28T00:00:00Z"))!).toISOString(), "2027-03-28T07:00:00.000Z");
  });
  it("an elevation with notAfter ends by itself, and the schedule says when", () => {
    const elev = { notAfter: "2026-12-01T00:00:00Z" };
    assert.equal(isActive(elev, Date.parse("2026-11-30T23:59:59Z")), true);
    assert.equal(isActive(elev, Date.parse("2026-12-01T00:00:00Z")), false);
    assert.equal(nextChange(elev, Date.parse("2026-12-01T00:00:01Z")), undefined);
    const s = ruleSchedule([{ name: "always" }, { name: "elevated", schedule: elev }], Date.parse("2026-11-30T12:00:00Z"));
    assert.deepEqual(s, { active: ["always", "elevated"], inactive: [], nextChange: Date.parse("2026-12-01T00:00:00Z") });
  });
  it("bad time zones and times are named", () => {
    assert.deepEqual(scheduleProblems({ windows: [{ start: "25:00", end: "01:00", timeZone: "Mars/Olympus" }] }), [
      'windows[0].timeZone: unknown time zone "Mars/Olympus" (use an IANA name such as Europe/Berlin or UTC)',
      'windows[0].start: "25:00" is not a time of day (HH:MM, 00:00-23:59)',
    ]);
  });
});

describe("source addresses", () => {
  it("X-Forwarded-For counts only from a trusted proxy, walking right to left", () => {
    const trusted = cidrSet(["10.0.0.0/8"]);
    assert.equal(clientAddress("10.0.0.5", "203.0.113.7", trusted), "203.0.113.7");
    assert.equal(clientAddress("198.51.100.1", "10.9.9.9", trusted), "198.51.100.1"); // not a proxy: header ignored
    assert.equal(clientAddress("::ffff:10.0.0.5", "1.1.1.1, 203.0.113.7, 10.2.0.1", trusted), "203.0.113.7"); // forged leftmost entry ignored
    assert.equal(clientAddress("10.0.0.5", "203.0.113.7", cidrSet([])), "10.0.0.5"); // no trusted proxies: never
    assert.equal(clientAddress("10.0.0.5", "bogus", trusted), "10.0.0.5");
    assert.throws(() => cidrSet(["10.0.0.0/33"]), /prefix length/);
  });
});

describe("scopes and challenges", () => {
  it("reads scope (string) and scp (array or string)", () => {
    assert.deepEqual(grantedScopes({ scope: "a b  c" }), ["a", "b", "c"]);
    assert.deepEqual(grantedScopes({ scp: ["x", "y"] }), ["x", "y"]);
    assert.deepEqual(grantedScopes({}), []);
  });
  it("401 names the scopes to ask for first; 403 every scope the operation needs", () => {
    assert.equal(
      unauthorizedChallenge("https://h/.well-known/oauth-protected-resource/mcp", ["mcp:connect"]),
      'Bearer resource_metadata="https://h/.well-known/oauth-protected-resource/mcp", scope="mcp:connect"',
    );
    assert.equal(
      insufficientScopeChallenge("https://h/m", ["db:read", "db:write"], 'tool "q" needs "x"\r\n'),
      'Bearer error="insufficient_scope", scope="db:read db:write", resource_metadata="https://h/m", error_description="tool \\"q\\" needs \\"x\\""',
    );
  });
});

const cfg: AccessConfig = {
  rules: [
    {
      name: "readers",
      clients: { subjects: ["u*"], apiKeys: ["alice"] },
      tools: { allow: ["query", "echo", "read_file"], deny: [] },
      resources: { allow: ["db://*"], deny: [] },
    },
    {
      name: "maintenance",
      clients: { subjects: ["u1"] },
      tools: { allow: ["execute"], deny: [] },
      scopes: ["db:write"],
      schedule: { windows: [{ days: ["Sat"], start: "02:00", end: "04:00", timeZone: "Europe/Berlin" }] },
    },
    { name: "office-only", clients: { apiKeys: ["alice"] }, tools: { allow: ["admin"], deny: [] }, sources: ["10.0.0.0/8"] },
    { name: "no-drop", clients: { subjects: ["*"] }, tools: { allow: [], deny: ["drop_*"] } },
    { name: "read-only", clients: { apiKeys: ["ro"] }, tools: { allow: ["*"], deny: [] }, readOnlyTools: true },
    {
      name: "tenant",
      clients: { subjects: ["u1"] },
      tools: { allow: ["report"], deny: [] },
      conditions: [{ expression: "client.claims.tenant == request.arguments.tenant", message: "only your own tenant" }],
    },
  ],
  scopes: [{ tools: ["query", "execute"], resources: ["db://*"], scopes: ["db:read"] }],
  constraints: [
    {
      name: "files",
      tools: ["read_file"],
      arguments: { type: "object", required: ["path"], properties: { path: { type: "string", maxLength: 256 } } },
      conditions: [{ expression: "pathWithin(request.arguments.path, '/srv/data')", message: "path must be under /srv/data" }],
    },
    { name: "query-bounds", tools: ["query"], arguments: { type: "object", properties: { limit: { type: "integer", minimum: 1, maximum: 100 } } } },
  ],
};

function refusal(d: Decision) {
  assert.equal(d.ok, false, "expected a refusal");
  return (d as { ok: false; refusal: { kind: string; rule?: string; reason: string; scopes?: string[] } }).refusal;
}

describe("AccessEngine decisions", () => {
  const facts = new Map([
    ["echo", { pinnedWithAnnotations: true, annotations: { readOnlyHint: true, destructiveHint: false } }],
    ["wipe", { pinnedWithAnnotations: true, annotations: { readOnlyHint: true, destructiveHint: true } }],
    ["unpinned-ro", { pinnedWithAnnotations: false, annotations: { readOnlyHint: true } }],
  ]);
  const engine = new AccessEngine(cfg, (n) => facts.get(n));
  const call = (name: string, args: unknown = {}) => ({ method: "tools/call", kind: "tools" as const, name, arguments: args });

  it("compiles without problems and announces every scope it uses", () => {
    assert.deepEqual(engine.problems, []);
    assert.deepEqual(engine.scopesSupported, ["db:read", "db:write"]);
  });

  it("a token lacking a tool's scope gets insufficient_scope naming it; with it the call passes", () => {
    const r = refusal(engine.decide(jwt([]), call("query", { limit: 5 }), NOW));
    assert.equal(r.kind, "insufficient_scope");
    assert.deepEqual(r.scopes, ["db:read"]);
    assert.deepEqual(engine.decide(jwt(["db:read"]), call("query", { limit: 5 }), NOW), { ok: true, rule: "readers" });
    // API key clients carry no scopes; per-tool scopes do not apply to them
    assert.deepEqual(engine.decide(alice, call("query", { limit: 5 }), NOW), { ok: true, rule: "readers" });
  });

  it("the maintenance rule allows writes only in its window, and then needs every scope at once", () => {
    const outside = refusal(engine.decide(jwt(["db:read", "db:write"]), call("execute"), NOW));
    assert.equal(outside.kind, "denied");
    assert.match(outside.reason, /rule "maintenance" is not active now/);
    const inWindow = at("2026-12-05T01:30:00Z"); // Sat 02:30 Berlin
    const r = refusal(engine.decide(jwt(["openid"]), call("execute"), inWindow));
    assert.equal(r.kind, "insufficient_scope");
    assert.deepEqual(r.scopes, ["db:read", "db:write"], "one challenge with every scope the call needs");
    // a token that already has db:read keeps it in the challenge (it is relevant), so stepping up loses nothing
    assert.deepEqual(refusal(engine.decide(jwt(["db:read"]), call("execute"), inWindow)).scopes, ["db:read", "db:write"]);
    assert.deepEqual(engine.decide(jwt(["db:read", "db:write"]), call("execute"), inWindow), { ok: true, rule: "maintenance" });
  });

  it("source CIDRs: the rule admits only its ranges", () => {
    assert.equal(engine.decide(alice, call("admin"), { source: "10.9.8.7", now: NOW.now }).ok, true);
    const r = refusal(engine.decide(alice, call("admin"), { source: "192.0.2.1", now: NOW.now }));
    assert.match(r.reason, /does not admit source 192\.0\.2\.1/);
  });

  it("deny wins, and names its rule", () => {
    const r = refusal(engine.decide(jwt(["db:read"]), call("drop_table"), NOW));
    assert.equal(r.rule, "no-drop");
  });

  it("read-only rules allow only pinned tools annotated readOnlyHint and not destructiveHint", () => {
    const ro: Identity = { key: "apikey:ro", kind: "apikey", name: "ro" };
    assert.equal(engine.decide(ro, call("echo"), NOW).ok, true);
    assert.match(refusal(engine.decide(ro, call("wipe"), NOW)).reason, /readOnlyHint/);
    assert.match(refusal(engine.decide(ro, call("unpinned-ro"), NOW)).reason, /pinned/);
    assert.match(refusal(engine.decide(ro, call("never-seen"), NOW)).reason, /readOnlyHint/);
    assert.equal(engine.listAllows(ro, "tools", "echo", NOW), true);
    assert.equal(engine.listAllows(ro, "tools", "wipe", NOW), false);
  });

  it("rule conditions see the token's claims", () => {
    assert.equal(engine.decide(jwt([]), call("report", { tenant: "acme" }), NOW).ok, true);
    const r = refusal(engine.decide(jwt([]), call("report", { tenant: "globex" }), NOW));
    assert.equal(r.rule, "tenant");
    assert.match(r.reason, /only your own tenant/);
  });

  it("conditions on different variables share one activation that has every field any of them reads", () => {
    const e = new AccessEngine({
      rules: [
        {
          name: "office",
          clients: { apiKeys: ["alice"] },
          tools: { allow: ["*"], deny: [] },
          conditions: [{ expression: "client.source.startsWith('10.') && client.name == 'apikey:alice'" }],
        },
      ],
      constraints: [
        {
          name: "tool-and-args",
          tools: ["*"],
          conditions: [{ expression: "request.tool == 'report' && request.method == 'tools/call' && size(request.arguments) < 3" }],
        },
      ],
    });
    assert.deepEqual(e.problems, []);
    assert.equal(e.decide(alice, call("report", { a: 1 }), NOW).ok, true);
    assert.equal(refusal(e.decide(alice, call("report", { a: 1 }), { ...NOW, source: "192.0.2.1" })).rule, "office");
    assert.equal(refusal(e.decide(alice, call("other", {}), NOW)).rule, "tool-and-args");
    assert.equal(refusal(e.decide(alice, call("report", { a: 1, b: 2, c: 3 }), NOW)).rule, "tool-and-args");
  });

  it("one activation for all conditions answers dotted names only when no condition could mean something else by them", () => {
    const e = (extra: string) =>
      new AccessEngine({
        rules: [{ name: "all", clients: { apiKeys: ["alice"] }, tools: { allow: ["*"], deny: [] } }],
        constraints: [
          { name: "outer", tools: ["*"], conditions: [{ expression: "request.arguments.a.b == 'nested' && request.arguments.path == '/srv/x'" }] },
          { name: "extra", tools: ["*"], conditions: [{ expression: extra }] },
        ],
      });
    const args = { a: { b: "nested" }, "a.b": "dotkey", path: "/srv/x" };
    for (const extra of [
      "request.arguments['a.b'] == 'dotkey'",
      "[{'arguments': {'path': 'inner'}}].exists(request, request.arguments.path == 'inner')",
      "request.arguments.a.b == 'nested'",
    ]) {
      const engine = e(extra);
      assert.deepEqual(engine.problems, []);
      assert.equal(engine.decide(alice, call("t", args), NOW).ok, true, extra);
      assert.equal(refusal(engine.decide(alice, call("t", { ...args, a: { b: "other" } }), NOW)).rule, "outer", extra);
    }
  });

  it("constraints: the schema overlay and conditions hold for every client", () => {
    assert.equal(engine.decide(alice, call("read_file", { path: "/srv/data/a.txt" }), NOW).ok, true);
    const trav = refusal(engine.decide(alice, call("read_file", { path: "/srv/data/../../etc/shadow" }), NOW));
    assert.equal(trav.rule, "files");
    assert.match(trav.reason, /path must be under \/srv\/data/);
    const long = refusal(engine.decide(alice, call("read_file", { path: `/srv/data/${"a".repeat(300)}` }), NOW));
    assert.equal(long.kind, "invalid");
    assert.match(long.reason, /must NOT have more than 256 characters/);
    const range = refusal(engine.decide(alice, call("query", { limit: 1000 }), NOW));
    assert.equal(range.rule, "query-bounds");
    assert.match(range.reason, /argument limit must be <= 100/);
  });

  it("requiredScopes: a JWT lacking them is challenged with every required scope (and its relevant ones); API keys are not", () => {
    const e = new AccessEngine({ ...cfg, requiredScopes: ["mcp:connect"] });
    assert.deepEqual(e.missingRequired(jwt(["db:read", "openid"])), ["db:read", "mcp:connect"]);
    assert.equal(e.missingRequired(jwt(["mcp:connect"])), undefined);
    assert.equal(e.missingRequired(alice), undefined);
  });

  it("a clock set back re-evaluates a cached schedule", () => {
    const e = new AccessEngine(cfg);
    const inWindow = at("2026-12-05T01:30:00Z");
    assert.equal(e.decide(jwt(["db:read", "db:write"]), call("execute"), inWindow).ok, true);
    assert.equal(e.decide(jwt(["db:read", "db:write"]), call("execute"), at("2026-12-05T01:00:00Z")).ok, true);
    assert.equal(e.decide(jwt(["db:read", "db:write"]), call("execute"), at("2026-12-04T12:00:00Z")).ok, false, "the day before: not in the window");
  });

  it("invalid expressions and schemas are reported with their field", () => {
    const bad = new AccessEngine({
      rules: [{ name: "r", clients: { apiKeys: ["a"] }, conditions: [{ expression: "request.tool ==" }] }],
      constraints: [{ name: "c", tools: ["*"], arguments: { type: "object", properties: { n: { type: "integer", minimun: 1 } } } }],
    });
    assert.equal(bad.problems.length, 2);
    assert.equal(bad.problems[0]!.field, "rules[0].conditions[0].expression");
    assert.match(bad.problems[1]!.message, /invalid JSON Schema: strict mode: unknown keyword: "minimun"/);
  });
});

describe("tool fingerprints include annotations; old pins keep working", () => {
  const plain = { name: "echo", description: "Echoes", inputSchema: { type: "object" } };
  const annotated = { ...plain, annotations: { readOnlyHint: true } };
  it("a tool without annotations keeps its old fingerprint", () => {
    assert.equal(toolFingerprint(plain), legacyToolFingerprint(plain));
    assert.notEqual(toolFingerprint(annotated), legacyToolFingerprint(annotated));
  });
  it("a legacy pin still matches, as pinned-legacy (annotations not vouched for); a new pin is pinned", () => {
    const policy = { pinned: [], onDrift: "Block" as const, allowUnpinned: false, scanDescriptions: false };
    assert.equal(assessTool(annotated, policy, new Map([["echo", legacyToolFingerprint(annotated)]])).verdict.status, "pinned-legacy");
    assert.equal(assessTool(annotated, policy, new Map([["echo", toolFingerprint(annotated)]])).verdict.status, "pinned");
    const flipped = { ...plain, annotations: { readOnlyHint: false } };
    assert.equal(assessTool(flipped, policy, new Map([["echo", toolFingerprint(annotated)]])).verdict.status, "drift");
  });
});
