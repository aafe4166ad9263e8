// OAuth scopes end to end (issue 13): the official SDK client with its OAuth support, a real
// authorization server run locally (oidc-provider from npm: an OpenID Certified provider, with RFC 8707
// resource indicators and JWT access tokens carrying `scope`), the gateway, and server-everything.
// The client connects with the scopes the 401 asks for, calls a tool that needs more, gets the 403
// insufficient_scope challenge, steps up through the authorization server and retries: the SDK's flow,
// with this test acting as the user's browser (log in, consent).
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import http from "node:http";
import { after, before, describe, it } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import type { OAuthClientProvider } from "@modelcontextprotocol/sdk/client/auth.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { OAuthClientInformationMixed, OAuthClientMetadata, OAuthTokens } from "@modelcontextprotocol/sdk/shared/auth.js";
import { decodeJwt } from "jose";
import Provider from "oidc-provider";
import { GatewayConfigSchema } from "../../contract/gateway-config.ts";
import { Gateway } from "../../gateway/src/server.ts";
import { freePort, waitFor } from "../support/index.ts";
import { type Child, MemorySink, baseConfig, startEverything, startIssuer } from "./helpers.ts";

const CLIENT_ID = "mcp-test-client";

/** The authorization server: oidc-provider with dev interactions (login form + consent), loopback only. */
async function startAuthorizationServer(resource: string, redirectUri: string) {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const key = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ format: "jwk" });
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: CLIENT_ID,
        application_type: "native",
        token_endpoint_auth_method: "none",
        redirect_uris: [redirectUri],
        id_token_signed_response_alg: "ES256",
        grant_types: ["authorization_code"],
        response_types: ["code"],
      },
    ],
    jwks: { keys: [{ ...key, alg: "ES256", use: "sig", kid: "as-1" }] },
    scopes: ["openid"],
    features: {
      devInteractions: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => resource,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx: unknown, indicator: string) => {
          if (indicator !== resource) throw new Error(`unknown resource ${indicator}`);
          return { scope: "mcp:connect db:read db:write", audience: resource, accessTokenFormat: "jwt", accessTokenTTL: 600, jwt: { sign: { alg: "ES256" } } };
        },
      },
    },
    pkce: { required: () => true },
    findAccount: (_ctx: unknown, sub: string) => ({ accountId: sub, claims: () => ({ sub }) }),
    cookies: { keys: ["test-only-cookie-key-not-a-secret"] },
  } as never);
  const server = http.createServer(provider.callback());
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
  return {
    issuer,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** The user's browser: follows the authorization URL, logs in as `user`, consents, returns the code. */
async function actAsUser(authorizationUrl: URL, user: string, jar: Map<string, string>): Promise<{ code: string; askedScope: string }> {
  const askedScope = authorizationUrl.searchParams.get("scope") ?? "";
  let url = authorizationUrl.href;
  let body: string | undefined;
  for (let step = 0; step < 12; step++) {
    const res = await fetch(url, {
      method: body ? "POST" : "GET",
      redirect: "manual",
      headers: { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join("; "), ...(body ? { "content-type": "application/x-www-form-urlencoded" } : {}) },
      body,
    });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(";");
      const eq = pair!.indexOf("=");
      jar.set(pair!.slice(0, eq), pair!.slice(eq + 1));
    }
    body = undefined;
    const location = res.headers.get("location");
    if (location) {
      const next = new URL(location, url);
      const code = next.searchParams.get("code");
      if (code) return { code, askedScope };
      if (next.searchParams.get("error"))
        throw new Error(`authorization failed: ${next.searchParams.get("error")} ${next.searchParams.get("error_description")}`);
      url = next.href;
      await res.text();
      continue;
    }
    const html = await res.text();
    // The dev interaction pages: a login form, then a consent form; both POST back to the same URL.
    if (/name="login"/.test(html)) body = new URLSearchParams({ prompt: "login", login: user, password: "x" }).toString();
    else if (/name="prompt" value="consent"/.test(html) || /consent/.test(html)) body = new URLSearchParams({ prompt: "consent" }).toString();
    else
      throw new Error(
        `unexpected page at ${url}: ${res.status} ${html
          .replace(/<[^>]*>/g, " ")
          .replace(/\s+/g, " ")
          .slice(-400)}`,
      );
  }
  throw new Error("authorization did not finish in 12 steps");
}

/** An OAuthClientProvider kept in memory; redirectToAuthorization records the URL for the "browser". */
class MemoryProvider implements OAuthClientProvider {
  authorizationUrls: URL[] = [];
  #tokens: OAuthTokens | undefined;
  #verifier = "";
  #info: OAuthClientInformationMixed = { client_id: CLIENT_ID };
  readonly redirect: string;
  constructor(redirect: string) {
    this.redirect = redirect;
  }
  get redirectUrl() {
    return this.redirect;
  }
  get clientMetadata(): OAuthClientMetadata {
    return {
      client_name: "bastion test",
      redirect_uris: [this.redirect],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  clientInformation() {
    return this.#info;
  }
  saveClientInformation(i: OAuthClientInformationMixed) {
    this.#info = i;
  }
  tokens() {
    return this.#tokens;
  }
  saveTokens(t: OAuthTokens) {
    this.#tokens = t;
  }
  redirectToAuthorization(u: URL) {
    this.authorizationUrls.push(u);
  }
  saveCodeVerifier(v: string) {
    this.#verifier = v;
  }
  codeVerifier() {
    return this.#verifier;
  }
}

describe("OAuth scopes with step-up: SDK client, real authorization server, gateway, server-everything", () => {
  let everything: Child;
  let as: Awaited<ReturnType<typeof startAuthorizationServer>>;
  let gw: Gateway;
  let url: string;
  const sink = new MemorySink();
  const redirect = "http://127.0.0.1:1/callback"; // never contacted: the test reads the code from the redirect

  before(async () => {
    everything = await startEverything("streamableHttp");
    const port = await freePort();
    url = `http://127.0.0.1:${port}/mcp`;
    as = await startAuthorizationServer(url, redirect);
    const cfg = GatewayConfigSchema.parse(
      baseConfig({
        publicUrl: url,
        listen: { host: "127.0.0.1", port, adminPort: 0 },
        upstream: { transport: "streamable-http", url: `http://127.0.0.1:${everything.port}/mcp` },
        auth: { jwt: { issuer: as.issuer, audiences: [url], algorithms: ["ES256"], maxTokenAgeSeconds: 3600, subjectClaim: "sub", groupsClaim: "groups" } },
        authorization: {
          rules: [{ name: "users", clients: { subjects: ["*"] }, tools: { allow: ["echo", "get-sum"], deny: [] } }],
          requiredScopes: ["mcp:connect"],
          scopes: [{ tools: ["get-sum"], scopes: ["db:write"] }],
        },
      }),
    );
    gw = new Gateway({ config: cfg, auditSink: sink });
    await gw.start();
  });
  after(async () => {
    await gw?.close();
    await as?.close();
    await everything?.stop();
  });

  it("announces its scopes: 401 with scope, RFC 9728 metadata with scopes_supported", async () => {
    const r = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    assert.equal(r.status, 401);
    assert.match(
      r.headers.get("www-authenticate") ?? "",
      /^Bearer resource_metadata="http:\/\/127\.0\.0\.1:\d+\/\.well-known\/oauth-protected-resource\/mcp", scope="mcp:connect"$/,
    );
    const meta = (await (await fetch(new URL("/.well-known/oauth-protected-resource/mcp", url))).json()) as Record<string, unknown>;
    assert.deepEqual(meta.scopes_supported, ["db:write", "mcp:connect"]);
    assert.deepEqual(meta.authorization_servers, [as.issuer]);
  });

  it("connects with the minimal scope, then steps up to the scope a tool needs", async () => {
    const provider = new MemoryProvider(redirect);
    const jar = new Map<string, string>();
    const connect = async () => {
      const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
      const client = new Client({ name: "step-up", version: "1.0.0" });
      return { client, transport, done: client.connect(transport) };
    };
    // 1. No token yet: 401 -> the SDK discovers the AS through the gateway's metadata and sends the user to log in.
    let c = await connect();
    await assert.rejects(c.done, UnauthorizedError);
    const first = await actAsUser(provider.authorizationUrls.at(-1)!, "alice", jar);
    assert.equal(first.askedScope, "mcp:connect", "the client asked for exactly what the 401 named");
    await c.transport.finishAuth(first.code);
    c = await connect();
    await c.done;
    const t1 = decodeJwt(provider.tokens()!.access_token);
    assert.equal(t1.scope, "mcp:connect");
    assert.deepEqual(t1.aud, url);

    // 2. A tool that needs no extra scope works; the one that needs db:write gets the 403 challenge.
    const echo = await c.client.callTool({ name: "echo", arguments: { message: "hi" } });
    assert.match(JSON.stringify(echo.content), /hi/);
    await assert.rejects(c.client.callTool({ name: "get-sum", arguments: { a: 1, b: 2 } }), UnauthorizedError);
    const stepUp = provider.authorizationUrls.at(-1)!;
    assert.equal(provider.authorizationUrls.length, 2, "the 403 sent the client back to the authorization server");
    const second = await actAsUser(stepUp, "alice", jar);
    assert.deepEqual(
      second.askedScope.split(" ").sort(),
      ["db:write", "mcp:connect"],
      "one challenge with every scope the call needs, keeping the granted one",
    );
    // The audit log is written in batches (and the line after the answer): flush and wait for it with a deadline.
    const denied = await waitFor("the audit line of the 403 for get-sum", () => {
      gw.audit.flush();
      return sink.records().find((r) => r.tool === "get-sum" && r.status === 403);
    });
    assert.match(String(denied.reason), /needs scope\(s\) db:write/);

    // 3. With the new token the same call passes.
    await c.transport.finishAuth(second.code);
    const t2 = decodeJwt(provider.tokens()!.access_token);
    assert.deepEqual(String(t2.scope).split(" ").sort(), ["db:write", "mcp:connect"]);
    const sum = await c.client.callTool({ name: "get-sum", arguments: { a: 1, b: 2 } });
    assert.match(JSON.stringify(sum.content), /3/);
    await c.client.close();
  });

  it("the raw 403: status, error=insufficient_scope, every needed scope, resource_metadata", async () => {
    // Reuse the SDK-free path with the first token shape: a token with only mcp:connect (minted through the AS above).
    const provider = new MemoryProvider(redirect);
    const jar = new Map<string, string>();
    const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
    await assert.rejects(new Client({ name: "raw", version: "1" }).connect(transport), UnauthorizedError);
    await transport.finishAuth((await actAsUser(provider.authorizationUrls.at(-1)!, "bob", jar)).code);
    const token = provider.tokens()!.access_token;
    const h = { authorization: `Bearer ${token}`, "content-type": "application/json", accept: "application/json, text/event-stream" };
    const init = await fetch(url, {
      method: "POST",
      headers: h,
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "initialize",
        params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "1" } },
      }),
    });
    const sid = init.headers.get("mcp-session-id")!;
    await init.text();
    const r = await fetch(url, {
      method: "POST",
      headers: { ...h, "mcp-session-id": sid },
      body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "get-sum", arguments: { a: 1, b: 2 } } }),
    });
    assert.equal(r.status, 403);
    const challenge = r.headers.get("www-authenticate") ?? "";
    assert.match(
      challenge,
      /^Bearer error="insufficient_scope", scope="db:write mcp:connect", resource_metadata="http:\/\/127\.0\.0\.1:\d+\/\.well-known\/oauth-protected-resource\/mcp"/,
    );
    const body = (await r.json()) as { error: { code: number; message: string } };
    assert.equal(body.error.code, -32003);
  });
});

describe("a token without the required scopes is challenged on every request", () => {
  let everything: Child;
  let issuer: Awaited<ReturnType<typeof startIssuer>>;
  let gw: Gateway;
  let url: string;
  before(async () => {
    everything = await startEverything("streamableHttp");
    issuer = await startIssuer(); // signs tokens with chosen claims: only for the refusal paths, the real AS covers the flow above
    const port = await freePort();
    url = `http://127.0.0.1:${port}/mcp`;
    const cfg = GatewayConfigSchema.parse(
      baseConfig({
        publicUrl: url,
        listen: { host: "127.0.0.1", port, adminPort: 0 },
        upstream: { transport: "streamable-http", url: `http://127.0.0.1:${everything.port}/mcp` },
        auth: {
          jwt: { issuer: issuer.url, audiences: ["mcp-test"], algorithms: ["RS256"], maxTokenAgeSeconds: 3600, subjectClaim: "sub", groupsClaim: "groups" },
        },
        authorization: {
          rules: [{ name: "users", clients: { subjects: ["*"] }, tools: { allow: ["*"], deny: [] } }],
          requiredScopes: ["mcp:connect"],
          scopes: [{ tools: ["get-sum"], scopes: ["db:write"] }],
        },
      }),
    );
    gw = new Gateway({ config: cfg, auditSink: new MemorySink() });
    await gw.start();
  });
  after(async () => {
    await gw?.close();
    await issuer?.close();
    await everything?.stop();
  });

  it("403 insufficient_scope before anything reaches the server; with the scope it connects", async () => {
    const init = {
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "1" } },
    };
    const post = async (token: string) =>
      fetch(url, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json", accept: "application/json, text/event-stream" },
        body: JSON.stringify(init),
      });
    const lacking = await post(await issuer.sign({ sub: "carol", scope: "db:write openid" }));
    assert.equal(lacking.status, 403);
    assert.match(
      lacking.headers.get("www-authenticate") ?? "",
      /^Bearer error="insufficient_scope", scope="db:write mcp:connect", resource_metadata="[^"]+", error_description="the token lacks required scope\(s\): mcp:connect"$/,
    );
    await lacking.text();
    const ok = await post(await issuer.sign({ sub: "carol", scp: ["mcp:connect"] }));
    assert.equal(ok.status, 200);
    await ok.text();
  });
});
