// Authorization decides on the string the server will act on (issue 10, class 1). Resource URIs
// are matched in the form the WHATWG URL parser gives them, with the path decoded, and ambiguous URIs
// are refused; tool and prompt names are matched on exact bytes and refused when they hide
// characters. Table cases go through the policy engine (what a client sees: allowed, -32003 denied,
// -32602 refused), and a property drives random URIs built from the pieces attackers use against
// two model servers: a WHATWG one (new URL + percent-decoding, like fileURLToPath) and a naive one
// (decode the raw path once, `\` as `/`, TAB/CR/LF deleted, then resolve dot segments).
import assert from "node:assert/strict";
import { posix } from "node:path";
import { describe, test } from "node:test";
import fc from "fast-check";
import { Authorizer } from "../../gateway/src/authz.ts";
import { ToolCatalog } from "../../gateway/src/catalog.ts";
import { AccessEngine } from "../../gateway/src/authz/engine.ts";
import { globMatch } from "../../gateway/src/glob.ts";
import { canonicalResourcePattern, canonicalResourceUri, nameProblem } from "../../gateway/src/names.ts";
import { type Checked, PolicyEngine, type Refusal } from "../../gateway/src/policy.ts";
import { LocalLimiter } from "../../gateway/src/ratelimit.ts";

const RULES = [
  {
    name: "docs",
    clients: { apiKeys: ["alice"] },
    tools: { allow: ["echo", "read-*"], deny: ["read-secret"] },
    prompts: { allow: ["summary"], deny: [] },
    resources: {
      allow: ["file:///srv/docs/*", "demo://resource/static/*", "file:///srv/my%20files/*"],
      deny: ["file:///srv/docs/private/*", "demo://resource/static/secret/*"],
    },
  },
];

function engine(): PolicyEngine {
  const catalog = new ToolCatalog({ pinned: [], onDrift: "Block", allowUnpinned: true, scanDescriptions: false }, { drift() {}, finding() {} });
  catalog.learn(["echo", "read-file", "read-secret", "get\u200b-env"].map((name) => ({ name, inputSchema: { type: "object" } })));
  const limits = {
    perClient: { requestsPerMinute: 6e10, burst: 1e9 },
    perTool: [],
    maxConcurrentRequests: 64,
    maxRequestBytes: 65536,
    requestTimeoutSeconds: 30,
    toolTimeouts: [],
    mode: "divided" as const,
    replicas: 1,
  };
  return new PolicyEngine(limits, new LocalLimiter(), new Authorizer(RULES), catalog);
}

const policy = engine();
const alice = { key: "apikey:alice", kind: "apikey" as const, name: "alice" };

function verdict(method: string, params: Record<string, unknown>): "allowed" | "denied" | "refused" {
  const r = policy.check(alice, method, params) as Refusal | Checked;
  assert.ok(!(r instanceof Promise), "local limiter and known tools decide synchronously");
  if (!("status" in r)) return "allowed";
  if (r.code === -32003) return "denied";
  assert.equal(r.code, -32602, `refusal is invalid params: ${r.message}`);
  return "refused";
}
const read = (uri: string) => verdict("resources/read", { uri });

describe("resource URIs: matched in the form the server resolves", () => {
  const cases: [string, string, "allowed" | "denied" | "refused"][] = [
    ["plain allowed", "file:///srv/docs/readme.md", "allowed"],
    ["outside", "file:///etc/passwd", "denied"],
    ["deny rule", "file:///srv/docs/private/key.pem", "denied"],
    ["deny rule via percent-encoded letter", "file:///srv/docs/%70rivate/key.pem", "denied"],
    ["deny rule via file://localhost", "file://localhost/srv/docs/private/key.pem", "denied"],
    ["deny rule via upper-case scheme", "FILE:///srv/docs/private/key.pem", "denied"],
    ["deny rule via file: without slashes", "file:srv/docs/private/key.pem", "denied"],
    ["allowed via file://localhost", "file://localhost/srv/docs/readme.md", "allowed"],
    ["rule with %20 matches a space", "file:///srv/my files/a.txt", "allowed"],
    ["rule with %20 matches %20", "file:///srv/my%20files/a.txt", "allowed"],
    ["dot-dot escape", "file:///srv/docs/../../etc/passwd", "refused"],
    ["dot segment", "file:///srv/docs/./private/key.pem", "refused"],
    ["dot-dot at the end", "file:///srv/docs/private/..", "refused"],
    ["encoded dot-dot", "file:///srv/docs/%2e%2e/%2E%2E/etc/passwd", "refused"],
    ["half-encoded dot-dot", "file:///srv/docs/.%2e/etc/passwd", "refused"],
    ["double-encoded dot-dot", "file:///srv/docs/%252e%252e/etc/passwd", "refused"],
    ["TAB inside dot-dot (the parser deletes it)", "file:///srv/docs/.\t./.\t./etc/passwd", "refused"],
    ["LF inside dot-dot", "file:///srv/docs/.\n./etc/passwd", "refused"],
    ["CR inside a deny prefix", "file:///srv/docs/pri\rvate/key.pem", "refused"],
    ["backslash dot-dot (a separator for file:)", "file:///srv/docs/..\\..\\etc\\passwd", "refused"],
    ["backslash into a denied directory", "file:///srv/docs\\private\\key.pem", "refused"],
    ["encoded slash", "file:///srv/docs/..%2f..%2fetc/passwd", "refused"],
    ["encoded backslash", "file:///srv/docs/..%5c..%5cetc/passwd", "refused"],
    ["empty segment (//etc is /etc on disk)", "file:///srv/docs//private/key.pem", "refused"],
    ["four slashes", "file:////srv/docs/readme.md", "refused"],
    ["userinfo moving the host", "demo://evil@resource/static/x", "refused"],
    ["zero-width space in the path", "file:///srv/docs/pri\u200bvate/key.pem", "refused"],
    ["bidi override", "file:///srv/docs/\u202egnp.exe", "refused"],
    ["encoded control", "file:///srv/docs/a%09b", "refused"],
    ["encoded invalid UTF-8", "file:///srv/docs/%C3%28", "refused"],
    ["not NFC", "file:///srv/docs/e\u0301.txt", "refused"],
    ["relative reference", "srv/docs/readme.md", "refused"],
    ["leading space", " file:///srv/docs/readme.md", "refused"],
    ["query carrying dots is the server's business", "demo://resource/static/doc?path=a", "allowed"],
    ["non-special scheme, dot-dot", "demo://resource/static/../dynamic/1", "refused"],
    ["opaque path with dot-dot", "demo:resource/static/../../x", "refused"],
  ];
  for (const [name, uri, want] of cases) test(`${name}: ${JSON.stringify(uri)} is ${want}`, () => assert.equal(read(uri), want));

  test("subscribe, unsubscribe and completion refs go through the same check", () => {
    assert.equal(verdict("resources/subscribe", { uri: "file:///srv/docs/.\t./x" }), "refused");
    assert.equal(verdict("resources/unsubscribe", { uri: "file:///srv/docs/%70rivate/k" }), "denied");
    assert.equal(
      verdict("completion/complete", { ref: { type: "ref/resource", uri: "file:///srv/docs\\private/{name}" }, argument: { name: "name", value: "" } }),
      "refused",
    );
    assert.equal(
      verdict("completion/complete", { ref: { type: "ref/resource", uri: "file:///srv/docs/{name}" }, argument: { name: "name", value: "" } }),
      "allowed",
    );
  });

  test("the refusal names the problem (a client can fix its request)", () => {
    const r = policy.check(alice, "resources/read", { uri: "file:///srv/docs/..\\x" }) as Refusal;
    assert.match(r.message, /backslash/);
    const e = policy.check(alice, "resources/read", { uri: "file:///srv/docs//x" }) as Refusal;
    assert.match(e.message, /empty path segments/);
  });

  test("lists the server sends are filtered on the same canonical form", () => {
    const out = policy.filterList(alice, "resources/list", {
      resources: [
        { uri: "file:///srv/docs/a.md" },
        { uri: "file:///srv/docs/%70rivate/k" },
        { uri: "file:///srv/docs/.\t./x" },
        { uri: "file:///srv/docs/b\u200b.md" },
      ],
    }) as { resources: { uri: string }[] };
    assert.deepEqual(
      out.resources.map((r) => r.uri),
      ["file:///srv/docs/a.md"],
    );
  });

  test("rule patterns are canonicalized like URIs; patterns the parser cannot take stay as written", () => {
    assert.equal(canonicalResourcePattern("FILE://localhost/srv/my%20docs/*"), "file:///srv/my docs/*");
    assert.equal(canonicalResourcePattern("https://*.example.com/*"), "https://*.example.com/*");
    assert.equal(canonicalResourcePattern("*"), "*");
    assert.deepEqual(canonicalResourceUri("HTTP://EXAMPLE.com:80/a%20b?q=1"), { ok: true, uri: "http://example.com/a b?q=1" });
  });
});

describe("tool and prompt names: exact bytes, nothing hidden", () => {
  const names: [string, string, "allowed" | "denied" | "refused"][] = [
    ["allowed tool", "echo", "allowed"],
    ["denied tool", "read-secret", "denied"],
    ["zero-width space", "read\u200b-secret", "refused"],
    ["zero-width joiner", "ec\u200dho", "refused"],
    ["word joiner", "ec\u2060ho", "refused"],
    ["BOM", "\ufeffecho", "refused"],
    ["soft hyphen", "read\u00ad-secret", "refused"],
    ["right-to-left override", "\u202eohce", "refused"],
    ["bidi isolate", "\u2066echo\u2069", "refused"],
    ["variation selector", "echo\ufe0f", "refused"],
    ["tag character", "echo\u{e0041}", "refused"],
    ["NUL", "echo\u0000", "refused"],
    ["DEL", "echo\u007f", "refused"],
    ["C1 control", "echo\u0085", "refused"],
    ["TAB", "echo\t", "refused"],
    ["no-break space", "read\u00a0secret", "refused"],
    ["trailing space", "echo ", "refused"],
    ["line separator", "echo\u2028", "refused"],
    ["lone surrogate", "echo\ud800", "refused"],
    ["decomposed accent (not NFC)", "e\u0301cho", "refused"],
    ["upper case is another tool", "ECHO", "denied"],
    ["fullwidth letters are another tool", "\uff45cho", "denied"],
  ];
  for (const [what, name, want] of names) {
    test(`tools/call ${what} is ${want}`, () => {
      const r = policy.check(alice, "tools/call", { name, arguments: {} });
      // An unknown tool is looked up upstream (a promise): with nothing upstream it stays unknown.
      const v = r instanceof Promise ? "denied-or-unknown" : "status" in r ? (r.code === -32003 ? "denied" : "refused") : "allowed";
      if (want === "denied") assert.ok(v === "denied" || v === "denied-or-unknown", `got ${v}`);
      else assert.equal(v, want);
    });
  }

  test("prompts/get and completion prompt refs refuse hidden characters too", () => {
    assert.equal(verdict("prompts/get", { name: "summary" }), "allowed");
    assert.equal(verdict("prompts/get", { name: "sum\u200bmary" }), "refused");
    assert.equal(verdict("completion/complete", { ref: { type: "ref/prompt", name: "summary\u202e" }, argument: { name: "a", value: "" } }), "refused");
  });

  test("a server-listed tool whose name hides characters is not shown, even when a glob would allow it", () => {
    const out = policy.filterList(alice, "tools/list", {
      tools: [
        { name: "read-file", inputSchema: { type: "object" } },
        { name: "read\u200b-secret", inputSchema: { type: "object" } },
      ],
    }) as { tools: { name: string }[] };
    assert.deepEqual(
      out.tools.map((t) => t.name),
      ["read-file"],
    );
  });

  test("the refusal says why", () => {
    assert.match(nameProblem("get\u200b-env")!, /U\+200B/);
    assert.match(nameProblem("e\u0301cho")!, /NFC/);
    assert.equal(nameProblem("get-env"), undefined);
  });
});

// ---- the property ---------------------------------------------------------------------------------

/** What a server built on the WHATWG parser reads (fileURLToPath decodes the path). */
function whatwgServerPath(uri: string): string | undefined {
  try {
    const u = new URL(uri);
    return posix.normalize(decodeURIComponent(u.pathname));
  } catch {
    return undefined;
  }
}

/** What a naive server reads: the raw path decoded once, `\` as `/`, TAB/CR/LF deleted, dots resolved. */
function naiveServerPath(uri: string): string | undefined {
  try {
    const raw = uri
      .replace(/^[A-Za-z][A-Za-z0-9+.-]*:/, "")
      .replace(/^\/\/[^/?#]*/, "")
      .replace(/[?#].*$/s, "");
    return posix.normalize(
      `/${decodeURIComponent(raw)
        .replace(/[\t\r\n]/g, "")
        .replace(/\\/g, "/")}`,
    );
  } catch {
    return undefined;
  }
}

/** The rules, applied to the path a server reads (a deny of `dir/*` covers what is in dir, as written). */
const ruleAdmits = (p: string) => globMatch("file:///srv/docs/*", `file://${p}`) && !globMatch("file:///srv/docs/private/*", `file://${p}`);

const PIECES = [
  "..",
  ".",
  "%2e",
  "%2E%2e",
  ".%2e",
  "\\",
  "/",
  "//",
  "%2f",
  "%2F",
  "%5c",
  "\t",
  "\n",
  "\r",
  ".\t.",
  "private",
  "pri\tvate",
  "%70rivate",
  "PRIVATE",
  "a",
  "b.txt",
  "%25",
  "%252e",
  "\u200b",
  " ",
  "é",
  "e\u0301",
  "?",
  "#",
  "%3f",
  "etc",
  "passwd",
  ";",
  "@",
  ":",
  "%00",
  "%C3%A9",
  "~",
];
const PREFIXES = [
  "file:///srv/docs/",
  "file://localhost/srv/docs/",
  "FILE:///srv/docs/",
  "file:/srv/docs/",
  "file:///srv/",
  "file:///srv/docs",
  "file:srv/docs/",
  "file://evil@/srv/docs/",
  "file:\\\\\\srv\\docs\\",
];

describe("property: an admitted URI resolves under the allowed prefix and outside the denied one, for both servers", () => {
  const uriArb = fc.tuple(fc.constantFrom(...PREFIXES), fc.array(fc.constantFrom(...PIECES), { maxLength: 8 })).map(([p, parts]) => p + parts.join(""));

  test("random URIs from attack pieces", () => {
    let admitted = 0;
    let refused = 0;
    fc.assert(
      fc.property(uriArb, (uri) => {
        const v = read(uri);
        if (v !== "allowed") {
          refused++;
          return true;
        }
        admitted++;
        for (const [server, p] of [
          ["WHATWG", whatwgServerPath(uri)],
          ["naive", naiveServerPath(uri)],
        ] as const) {
          if (p === undefined) continue; // that server cannot read it at all
          if (!ruleAdmits(p)) throw new Error(`gateway admitted ${JSON.stringify(uri)} but a ${server} server reads ${JSON.stringify(p)}`);
        }
        return true;
      }),
      { numRuns: 3000 },
    );
    // Neither side of the property may be empty, or it proves nothing.
    assert.ok(admitted > 50, `admitted ${admitted}`);
    assert.ok(refused > 50, `refused ${refused}`);
  });

  test("non-special scheme (demo://): an admitted URI is what the rules allow, as the server's parser reads it", () => {
    const demoPrefixes = [
      "demo://resource/static/",
      "DEMO://resource/static/",
      "demo://resource/static",
      "demo://resource/",
      "demo://x@resource/static/",
      "demo:resource/static/",
      "demo://resource:80/static/",
    ];
    const demoArb = fc
      .tuple(fc.constantFrom(...demoPrefixes), fc.array(fc.constantFrom(...PIECES, "secret", "s%65cret", "SECRET"), { maxLength: 8 }))
      .map(([p, parts]) => p + parts.join(""));
    let admitted = 0;
    fc.assert(
      fc.property(demoArb, (uri) => {
        if (read(uri) !== "allowed") return true;
        admitted++;
        const u = new URL(uri);
        let path: string;
        try {
          path = posix.normalize(decodeURIComponent(u.pathname));
        } catch {
          return true;
        }
        const seen = `${u.protocol}//${u.host}${path}`;
        if (!globMatch("demo://resource/static/*", seen) || globMatch("demo://resource/static/secret/*", seen))
          throw new Error(`gateway admitted ${JSON.stringify(uri)} but the server reads ${JSON.stringify(seen)}`);
        return true;
      }),
      { numRuns: 3000 },
    );
    assert.ok(admitted > 50, `admitted ${admitted}`);
  });

  test("arbitrary unicode after an allowed prefix never reaches a denied or outside path", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 24 }), (tail) => {
        const uri = `file:///srv/docs/${tail}`;
        if (read(uri) !== "allowed") return true;
        for (const p of [whatwgServerPath(uri), naiveServerPath(uri)]) {
          if (p === undefined) continue;
          if (!ruleAdmits(p)) return false;
        }
        return true;
      }),
      { numRuns: 3000 },
    );
  });
});

test("issue 13: a refusal on the plain path (no extended authorization) names the rule whose deny matched, for the audit", () => {
  const catalog = new ToolCatalog({ pinned: [], onDrift: "Block", allowUnpinned: true, scanDescriptions: false }, { drift() {}, finding() {} });
  catalog.learn(["echo", "read-file", "read-secret"].map((name) => ({ name, inputSchema: { type: "object" } })));
  const limits = {
    perClient: { requestsPerMinute: 6e10, burst: 1e9 },
    perTool: [],
    maxConcurrentRequests: 64,
    maxRequestBytes: 65536,
    requestTimeoutSeconds: 30,
    toolTimeouts: [],
    mode: "divided" as const,
    replicas: 1,
  };
  const access = new AccessEngine({ rules: RULES });
  assert.equal(access.extended, false, "plain rules: the Authorizer decides, the engine only explains refusals");
  const p = new PolicyEngine(limits, new LocalLimiter(), new Authorizer(RULES), catalog, access);
  const denied = p.check(alice, "tools/call", { name: "read-secret", arguments: {} }) as Refusal;
  assert.equal(denied.outcome, "denied");
  assert.equal(denied.rule, "docs");
  assert.equal(denied.message, 'tool "read-secret" is not allowed for this client', "the client's answer is unchanged");
  const unlisted = p.check({ key: "apikey:bob", kind: "apikey", name: "bob" }, "tools/call", { name: "echo", arguments: {} }) as Refusal;
  assert.equal(unlisted.outcome, "denied");
  assert.equal(unlisted.rule, undefined, "no rule allows it: no rule to name, the reason says so");
});
