// Optional features: TLS termination (TLS 1.3 unless the config says minVersion "1.2"; test/tls has the rest) and OpenTelemetry traces (one span per MCP
// request with client, method and tool, never arguments) sent to a local OTLP/HTTP receiver.
import assert from "node:assert/strict";
import http from "node:http";
import https from "node:https";
import { join } from "node:path";
import { after, before, test } from "node:test";
import tls from "node:tls";
import { Gateway, parseConfig } from "../../gateway/src/index.ts";
import { waitFor } from "../support/index.ts";
import { MemorySink, type Toy, baseConfig, selfSignedPair, startToy, tempDir, writeKeys } from "./helpers.ts";

const KEY = "otel-key-Mn4Bv6Cx8Za1Sd3F";
const SECRET_ARG = "do-not-trace-this-value-7731";
let toy: Toy;
let gw: Gateway;
let port: number;
let certDir: string;
let receiver: http.Server;
const exported: unknown[] = [];

before(async () => {
  toy = await startToy();
  certDir = tempDir("tls");
  selfSignedPair(certDir, "tls", "127.0.0.1");
  receiver = http.createServer((req, res) => {
    let b = "";
    req.on("data", (d) => {
      b += d;
    });
    req.on("end", () => {
      if (req.url === "/v1/traces") exported.push(JSON.parse(b));
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
  const dir = tempDir("keys");
  writeKeys(dir, { ops: KEY });
  const cfg = baseConfig({ upstream: { transport: "streamable-http", url: toy.url }, auth: { apiKeys: { dir } } });
  cfg.authorization.rules = [{ name: "ops", clients: { apiKeys: ["ops"] }, tools: { allow: ["add", "read-note"], deny: [] } }];
  cfg.telemetry = { otlpEndpoint: `http://127.0.0.1:${(receiver.address() as { port: number }).port}` };
  cfg.listen.tls = { certFile: join(certDir, "tls.crt"), keyFile: join(certDir, "tls.key") };
  gw = new Gateway({ config: parseConfig(cfg), auditSink: new MemorySink() });
  port = (await gw.start()).port;
  await waitFor("the gateway to be ready (tool catalog loaded)", () => gw.ready);
});

after(async () => {
  await toy?.close();
  receiver?.closeAllConnections();
  await new Promise((r) => receiver?.close(r));
});

function handshake(opts: tls.ConnectionOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false, ...opts }, () => {
      const v = s.getProtocol() ?? "";
      s.end();
      resolve(v);
    });
    s.on("error", reject);
  });
}

test("TLS: 1.3 by default, a 1.2-only or 1.1 client refused", async () => {
  assert.equal(await handshake({}), "TLSv1.3");
  await assert.rejects(handshake({ maxVersion: "TLSv1.2" }));
  await assert.rejects(handshake({ minVersion: "TLSv1", maxVersion: "TLSv1.1", ciphers: "DEFAULT:@SECLEVEL=0" }));
});

test("traces: one span per request with client, method and tool, never the arguments", async () => {
  const base = `https://127.0.0.1:${port}/mcp`;
  const post = (body: unknown, sid?: string) =>
    new Promise<{ status: number; sid: string | undefined }>((resolve, reject) => {
      const req = https.request(base, {
        method: "POST",
        rejectUnauthorized: false,
        headers: {
          authorization: `Bearer ${KEY}`,
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          ...(sid ? { "mcp-session-id": sid, "mcp-protocol-version": "2025-06-18" } : {}),
        },
      });
      req.on("response", (res) => {
        res.resume();
        res.on("end", () => resolve({ status: res.statusCode ?? 0, sid: res.headers["mcp-session-id"] as string | undefined }));
      });
      req.on("error", reject);
      req.end(JSON.stringify(body));
    });
  const init = await post({
    jsonrpc: "2.0",
    id: 1,
    method: "initialize",
    params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } },
  });
  assert.equal(init.status, 200);
  const call = await post({ jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "read-note", arguments: { note: SECRET_ARG } } }, init.sid);
  assert.equal(call.status, 200);
  await gw.close(); // flushes the batch span processor
  const text = JSON.stringify(exported);
  assert.ok(!text.includes(SECRET_ARG), "arguments never in a span");
  const spans = (
    exported as { resourceSpans: { scopeSpans: { spans: { name: string; attributes: { key: string; value: { stringValue?: string } }[] }[] }[] }[] }[]
  ).flatMap((e) => e.resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans)));
  const callSpan = spans.find((s) => s.name === "mcp tools/call");
  assert.ok(callSpan, `spans: ${spans.map((s) => s.name).join(",")}`);
  const attrs = Object.fromEntries(callSpan.attributes.map((a) => [a.key, a.value.stringValue]));
  assert.equal(attrs["mcp.client"], "apikey:ops");
  assert.equal(attrs["mcp.tool"], "read-note");
  assert.equal(attrs["mcp.method"], "tools/call");
  assert.ok(spans.some((s) => s.name === "mcp initialize"));
});
