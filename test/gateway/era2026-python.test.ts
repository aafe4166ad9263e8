// issue 11: the official Python SDK (`mcp` 2.x from PyPI, in the virtualenv hack/peers/install.sh makes) as a
// client of the gateway, in `auto` mode (it probes with server/discover, so it lands on 2026-07-28 only if
// the gateway answers the probe the spec's way) and in `legacy` mode (initialize, a 2025 session), against a
// 2026 upstream (the v2 TypeScript SDK server) and a 2025 one (server-everything, bridged). The script is
// checked against the v2 SDK server alone first, so a failure below is the gateway's.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { type GatewayConfigInput, GatewayConfigSchema } from "../../contract/gateway-config.ts";
import { Gateway } from "../../gateway/src/server.ts";
import { waitUntil } from "../support/index.ts";
import { serveV2 } from "./era-helpers.ts";
import { type Calls, MODERN, peerServer } from "./era-peers.ts";
import { baseConfig, type Child, MemorySink, ROOT, startEverything, tempDir, writeKeys } from "./helpers.ts";

const run = promisify(execFile);
const ALICE = "alice-key-era-python-0123456789";
const BOB = "bob-key-era-python-0123456789abc";
const SCRIPT = join(import.meta.dirname, "peers/python_client.py");

interface Step {
  step: string;
  tools?: string[];
  text?: string[];
  isError?: boolean;
  error?: { type: string; code: number | null; message: string };
}
interface PyOut {
  mode: string;
  protocolVersion?: string;
  connectError?: { type: string; code: number | null; message: string };
  steps: Step[];
  elicitations: string[];
}

let python = "";
before(async () => {
  // The virtualenv, installed (once, cached by its pin) by the project's own script, as `make test` does.
  const r = await run(join(ROOT, "hack", "peers", "install.sh"), ["python-mcp"], { timeout: 600_000 });
  python = r.stdout.trim().split("\n").at(-1)!;
});

async function py(url: string, key: string, mode: "auto" | "legacy", ...steps: string[]): Promise<PyOut> {
  const r = await run(python, [SCRIPT, url, key, mode, ...steps], { timeout: 120_000 });
  return JSON.parse(r.stdout) as PyOut;
}
const step = (out: PyOut, name: string) => {
  const s = out.steps.find((x) => x.step === name);
  assert.ok(s, `no step ${name} in ${JSON.stringify(out)}`);
  return s;
};

async function startGateway(upstreamUrl: string, protocol?: GatewayConfigInput["protocol"]) {
  const keys = tempDir("era-python-keys");
  writeKeys(keys, { alice: ALICE, bob: BOB });
  const cfg = baseConfig({ upstream: { transport: "streamable-http", url: upstreamUrl }, auth: { apiKeys: { dir: keys } }, ...(protocol ? { protocol } : {}) });
  cfg.authorization.rules = [
    { name: "alice", clients: { apiKeys: ["alice"] }, tools: { allow: ["echo", "deploy", "get-sum"], deny: [] } },
    { name: "bob", clients: { apiKeys: ["bob"] }, tools: { allow: ["*"], deny: ["get-env"] } },
  ];
  const sink = new MemorySink();
  const gw = new Gateway({ config: GatewayConfigSchema.parse(cfg), auditSink: sink });
  const ports = await gw.start();
  await waitUntil(
    "the gateway to be ready",
    () => gw.ready,
    (r) => r,
  );
  return { gw, sink, url: `http://127.0.0.1:${ports.port}/mcp` };
}

describe("the Python client and a 2026-07-28 upstream (the v2 SDK server)", () => {
  const calls: Calls = [];
  let upstream: Awaited<ReturnType<typeof serveV2>>;
  let gateway: Awaited<ReturnType<typeof startGateway>>;
  before(async () => {
    upstream = await serveV2(peerServer(calls));
    gateway = await startGateway(upstream.url);
  });
  after(async () => {
    await gateway?.gw.close();
    await upstream?.close();
  });

  test("alone (no gateway): auto mode lands on 2026-07-28 and answers MRTR, legacy mode on a 2025 revision", async () => {
    const auto = await py(upstream.url, "unused", "auto", "list", 'elicit:deploy:{"env":"dev"}');
    assert.equal(auto.connectError, undefined, JSON.stringify(auto));
    assert.equal(auto.protocolVersion, MODERN);
    assert.deepEqual(step(auto, "list").tools, ["deploy", "echo", "get-env"]);
    assert.deepEqual(step(auto, 'elicit:deploy:{"env":"dev"}').text, ["deployed to dev"]);
    assert.deepEqual(auto.elicitations, ["Deploy to dev?"]);
    const legacy = await py(upstream.url, "unused", "legacy", "list");
    assert.match(legacy.protocolVersion ?? "", /^2025-/);
    assert.deepEqual(step(legacy, "list").tools, ["deploy", "echo", "get-env"]);
  });

  test("auto mode through the gateway: the server/discover probe is answered, 2026-07-28 is used; list, call, MRTR, a denied tool", async () => {
    const before = calls.length;
    const out = await py(gateway.url, ALICE, "auto", "list", 'call:echo:{"text":"from python"}', 'elicit:deploy:{"env":"prod"}', "call:get-env:{}");
    assert.equal(out.connectError, undefined, JSON.stringify(out));
    assert.equal(
      out.protocolVersion,
      MODERN,
      "auto mode fell back instead of using 2026-07-28: the gateway did not answer the server/discover probe as a modern server",
    );
    assert.deepEqual(step(out, "list").tools, ["deploy", "echo"]);
    assert.deepEqual(step(out, 'call:echo:{"text":"from python"}').text, ["from python"]);
    assert.deepEqual(step(out, 'elicit:deploy:{"env":"prod"}').text, ["deployed to prod"]);
    assert.deepEqual(out.elicitations, ["Deploy to prod?"]);
    assert.equal(step(out, "call:get-env:{}").error?.code, -32003, JSON.stringify(step(out, "call:get-env:{}")));
    assert.deepEqual(
      calls.slice(before).map((c) => c.tool),
      ["echo", "deploy"],
      "the denied tool never ran",
    );
    // auto mode found the era by asking: its server/discover probe is in the audit trail, answered.
    const probe = await waitUntil(
      "the Python client's server/discover in the audit trail",
      () => gateway.sink.records().find((r) => r.method === "server/discover" && String(r.client).endsWith("alice")),
      (r) => r !== undefined,
    );
    assert.equal(probe?.outcome, "ok", JSON.stringify(probe));
  });

  test("legacy mode through the gateway: a 2025 session on the same endpoint; list, call, a denied tool", async () => {
    const out = await py(gateway.url, ALICE, "legacy", "list", 'call:echo:{"text":"legacy python"}', "call:get-env:{}");
    assert.equal(out.connectError, undefined, JSON.stringify(out));
    assert.match(out.protocolVersion ?? "", /^2025-/);
    assert.deepEqual(step(out, "list").tools, ["deploy", "echo"]);
    assert.deepEqual(step(out, 'call:echo:{"text":"legacy python"}').text, ["legacy python"]);
    assert.equal(step(out, "call:get-env:{}").error?.code, -32003, JSON.stringify(step(out, "call:get-env:{}")));
  });
});

describe("the Python client and server-everything (2025 only, bridged by the gateway)", () => {
  let everything: Child;
  let gateway: Awaited<ReturnType<typeof startGateway>>;
  before(async () => {
    everything = await startEverything("streamableHttp");
    gateway = await startGateway(`http://127.0.0.1:${everything.port}/mcp`);
  });
  after(async () => {
    await gateway?.gw.close();
    await everything?.stop();
  });

  for (const mode of ["auto", "legacy"] as const) {
    test(`${mode} mode: lists only the allowed tools, calls one, and a denied tool is refused`, async () => {
      const out = await py(gateway.url, BOB, mode, "list", 'call:get-sum:{"a":2,"b":40}', "call:get-env:{}");
      assert.equal(out.connectError, undefined, JSON.stringify(out));
      if (mode === "auto") assert.equal(out.protocolVersion, MODERN, "the gateway speaks 2026-07-28 for a 2025 upstream too");
      else assert.match(out.protocolVersion ?? "", /^2025-/);
      const tools = step(out, "list").tools ?? [];
      assert.ok(tools.includes("get-sum") && !tools.includes("get-env"), `bob's list: ${tools.join(", ")}`);
      assert.match(JSON.stringify(step(out, 'call:get-sum:{"a":2,"b":40}').text), /42/);
      assert.equal(step(out, "call:get-env:{}").error?.code, -32003, JSON.stringify(step(out, "call:get-env:{}")));
    });
  }
});

describe("the Python client and a per-server allowlist (spec.protocol.versions)", () => {
  const calls: Calls = [];
  let upstream: Awaited<ReturnType<typeof serveV2>>;
  let only2025: Awaited<ReturnType<typeof startGateway>>;
  let only2026: Awaited<ReturnType<typeof startGateway>>;
  before(async () => {
    upstream = await serveV2(peerServer(calls));
    only2025 = await startGateway(upstream.url, { versions: ["2025-11-25", "2025-06-18"] });
    only2026 = await startGateway(upstream.url, { versions: ["2026-07-28"] });
  });
  after(async () => {
    await only2025?.gw.close();
    await only2026?.gw.close();
    await upstream?.close();
  });

  test("only 2025 revisions allowed: auto mode's server/discover probe does not land on 2026-07-28, it settles on an allowed 2025 revision", async () => {
    const out = await py(only2025.url, ALICE, "auto", "list");
    assert.equal(out.connectError, undefined, JSON.stringify(out));
    assert.ok(["2025-11-25", "2025-06-18"].includes(out.protocolVersion ?? ""), `negotiated ${out.protocolVersion}`);
    assert.deepEqual(step(out, "list").tools, ["deploy", "echo"]);
  });

  test("only 2026-07-28 allowed: legacy mode is refused at initialize; auto mode works", async () => {
    const legacy = await py(only2026.url, ALICE, "legacy", "list");
    assert.ok(legacy.connectError, `legacy mode connected to a 2026-only server: ${JSON.stringify(legacy)}`);
    assert.match(legacy.connectError.message, /2026-07-28/, "the refusal names the allowed revision");
    const auto = await py(only2026.url, ALICE, "auto", "list");
    assert.equal(auto.protocolVersion, MODERN, JSON.stringify(auto));
    assert.deepEqual(step(auto, "list").tools, ["deploy", "echo"]);
  });
});
