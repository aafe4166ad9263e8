// x-forwarded-client-cert as Envoy writes it (issue 10, class 6). Istio's inbound sidecar appends its
// own element to whatever header the caller sent; the peer identity must come from that element, and
// no caller-supplied text (unbalanced quotes, escapes, extra elements) may make another URI win.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { Authenticator } from "../../gateway/src/auth/index.ts";
import { parseXfcc, xfccPeer, xfccPeerUri } from "../../gateway/src/auth/mtls.ts";

const ADMIN = "spiffe://cluster.local/ns/admin/sa/root";
const CALLER = "spiffe://cluster.local/ns/agents/sa/bot";
/** What the sidecar appends for a peer: its own identity, the cert hash, the subject, the peer's URI. */
const sidecar = (uri: string, subject = "") =>
  `By=spiffe://cluster.local/ns/mcp/sa/server;Hash=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08;Subject="${subject}";URI=${uri}`;
const appended = (callerPart: string, uri = CALLER) => `${callerPart},${sidecar(uri)}`;

describe("XFCC parsing follows Envoy's format", () => {
  test("the shapes Envoy writes parse, and the peer is the last element's URI", () => {
    assert.equal(xfccPeerUri(sidecar(CALLER)), CALLER);
    assert.equal(xfccPeerUri(`Hash=1;URI=${ADMIN},${sidecar(CALLER)}`), CALLER, "an earlier proxy's element is not the peer");
    assert.equal(xfccPeerUri(sidecar(CALLER, 'CN=a,O=b;OU=\\"quoted\\"')), CALLER, "quoted value with , ; and escaped quotes");
    const p = parseXfcc(
      'By=spiffe://td/gw;Hash=ab;Cert="-----BEGIN%20CERTIFICATE-----%0AMIIB%0A-----END%20CERTIFICATE-----%0A";Chain="x";Subject="CN=\\"q\\"";uri=spiffe://td/p;DNS=a.example;DNS=b.example',
    );
    assert.ok(p.ok);
    const last = p.elements[0]!.pairs;
    assert.deepEqual(last.get("dns"), ["a.example", "b.example"]);
    assert.equal(last.get("subject")?.[0], 'CN="q"');
    assert.equal(last.get("uri")?.[0], "spiffe://td/p", "keys are case-insensitive");
    assert.equal(xfccPeerUri(`${sidecar(CALLER)}, ${sidecar(ADMIN)}`), ADMIN, "two header lines folded with ', '");
    assert.deepEqual(xfccPeer([`Hash=1;URI=${ADMIN}`, sidecar(CALLER)]), { ok: true, uri: CALLER }, "repeated header lines: the last line's element");
    assert.deepEqual(xfccPeer(`By=spiffe://td/gw;Hash=1;URI=${ADMIN}`.replace(`;URI=${ADMIN}`, "")), { ok: true, uri: undefined });
    assert.deepEqual(xfccPeer(`Hash=1;URI=${ADMIN},By=spiffe://td/gw;Hash=2`), { ok: true, uri: undefined }, "a URI in an earlier element is never used");
    assert.equal(xfccPeerUri("Hash=1;URI=https://not-spiffe"), undefined);
    assert.equal(xfccPeerUri(undefined), undefined);
  });

  const hostile: [string, string][] = [
    ["caller's unbalanced quote would swallow the sidecar's element", appended(`URI=${ADMIN};Subject="`)],
    ["the same, against a sidecar element without quotes", `URI=${ADMIN};Subject=",By=spiffe://td/gw;Hash=2;URI=${CALLER}`],
    ["caller ends in a backslash inside quotes", appended(`URI=${ADMIN};Subject="x\\`)],
    ["caller's escaped quote at the end", appended(`URI=${ADMIN};Subject="x\\"`)],
    ["quote in an unquoted value", appended(`URI=${ADMIN}"`)],
    ["= in an unquoted value", appended(`Subject=CN=a`)],
    ["unknown key", appended(`Evil=1;URI=${ADMIN}`)],
    ["missing =", appended(`URI`)],
    ["empty element", `,${sidecar(CALLER)}`],
    ["two commas", `Hash=1,,${sidecar(CALLER)}`],
    ["trailing comma", `${sidecar(CALLER)},`],
    ["trailing semicolon", `${sidecar(CALLER)};`],
    ["text after a closing quote", appended(`Subject="a"b;URI=${ADMIN}`)],
    ["control character in a value", appended(`URI=${ADMIN}\u0000`)],
    ["two SPIFFE ids in the peer element", `${sidecar(CALLER)};URI=${ADMIN}`],
    ["empty header", ""],
  ];
  for (const [name, header] of hostile) {
    test(`refused: ${name}`, () => {
      const p = xfccPeer(header);
      assert.equal(p.ok, false, `parsed as ${JSON.stringify(p)}`);
      assert.equal(xfccPeerUri(header), undefined);
    });
  }

  test("the refusal says what and where", () => {
    const p = parseXfcc(`URI=${ADMIN};Subject=",By=spiffe://td/gw;Hash=2;URI=${CALLER}`);
    assert.deepEqual(p.ok, false);
    assert.match((p as { problem: string }).problem, /unbalanced double quote at offset \d+/);
  });

  test("property: whatever the caller sends before the sidecar's element, the peer is the sidecar's URI or the header is refused", () => {
    const piece = fc.constantFrom('"', "\\", '\\"', ",", ";", "=", " ", "URI=", "uri=", "By=", "Subject=", "Hash=", ADMIN, "spiffe://x", "a", "DNS=", "\t");
    const subject = fc.constantFrom("", "CN=a", 'CN=\\"x\\",O=y', "a;b,c=d");
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 12 }), subject, (parts, subj) => {
        const callerPart = parts.join("");
        const header = callerPart === "" ? sidecar(CALLER, subj) : `${callerPart},${sidecar(CALLER, subj)}`;
        const p = xfccPeer(header);
        return !p.ok || p.uri === CALLER;
      }),
      { numRuns: 5000 },
    );
  });
});

describe("the authenticator refuses a malformed XFCC header", () => {
  const auth = new Authenticator({ mtls: { spiffeIds: ["spiffe://cluster.local/ns/*/sa/*"] } });
  test("a caller's element cannot lend its URI; malformed headers get their own 401 reason", () => {
    const swallow = auth.authenticate({ "x-forwarded-client-cert": appended(`URI=${ADMIN};Subject="`) });
    assert.deepEqual(swallow, { ok: false, reason: "xfcc-malformed", message: "x-forwarded-client-cert is malformed", invalidToken: false });
    const ok = auth.authenticate({ "x-forwarded-client-cert": appended(`Hash=1;URI=${ADMIN}`) });
    assert.equal((ok as { ok: true; identity: { name: string } }).identity.name, CALLER);
    const noUri = auth.authenticate({ "x-forwarded-client-cert": `Hash=1;URI=${ADMIN},By=spiffe://td/gw;Hash=2` });
    assert.equal((noUri as { ok: false; reason: string }).reason, "missing");
  });
});
