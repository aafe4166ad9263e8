// The renderer over every example and over generated specs: golden-free properties (restricted
// pods, only the gateway listens, limits everywhere, no secret values in ConfigMaps or env, ...).
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { GATEWAY_PORTS } from "../../contract/gateway-config.ts";
import { validateMcpServer } from "../../operator/src/api/validate.ts";
import { renderMcpServer } from "../../operator/src/render/index.ts";
import { mcpServerArbitrary } from "./arbitrary.ts";
import { list, obj } from "../support/objects.ts";
import { assertHardened, byKind, one, podOf } from "./properties.ts";
import { exampleMcpServers } from "../support/examples.ts";

const OPTIONS = { gatewayImage: "ghcr.io/mcp-bastion/mcp-bastion:0.1.0" };

test("there are at least five example McpServers and each renders a hardened deployment", () => {
  const all = exampleMcpServers();
  assert.ok(all.length >= 5, `only ${all.length} examples`);
  for (const { file, server } of all) {
    const withUid = { ...server, metadata: { ...server.metadata, uid: "0b7c1c1e-1111-4222-8333-944445555666" } };
    for (const s of [server, withUid]) {
      const result = renderMcpServer(s, OPTIONS);
      try {
        assertHardened(s, result);
      } catch (e) {
        throw new Error(`${file}: ${(e as Error).message}`);
      }
    }
  }
});

test("the examples cover what the issue asks for", () => {
  const byName = new Map(exampleMcpServers().map((e) => [e.server.metadata.name, e.server]));
  const everything = byName.get("everything")!;
  assert.equal(everything.spec.transport.type, "streamable-http");
  assert.ok(everything.spec.auth.apiKeys);
  const github = byName.get("github")!;
  const gh = renderMcpServer(github, OPTIONS);
  assert.ok(github.spec.auth.jwt);
  assert.equal(byKind(gh, "ExternalSecret").length, 1);
  const entries = new Map(byKind(gh, "ServiceEntry").map((o) => [o.metadata.name, obj(o.spec)]));
  assert.ok(((entries.get("github-egress")?.hosts as string[] | undefined) ?? []).includes("api.github.com"));
  assert.equal(entries.get("github-egress")?.resolution, "DNS", "named hosts keep DNS resolution next to a wildcard");
  assert.deepEqual(entries.get("github-egress-wildcard")?.hosts, ["*.githubusercontent.com"]);
  assert.equal(byKind(gh, "ExternalSecret")[0]!.metadata.name, "github.github-token");
  assert.deepEqual(obj(one(gh, "Sidecar").spec).outboundTrafficPolicy, { mode: "REGISTRY_ONLY" });
  const fs = renderMcpServer(byName.get("filesystem")!, OPTIONS);
  const fsServer = list(podOf(fs).spec.containers).find((c) => c.name === "server")!;
  assert.equal(list(fsServer.volumeMounts).find((m) => m.mountPath === "/data")?.readOnly, true);
  assert.equal(byName.get("filesystem")!.spec.transport.type, "stdio");
  const pg = byName.get("postgres")!;
  assert.ok(pg.spec.authorization.rules.every((r) => r.tools?.deny.includes("execute_sql")));
  const pinned = byName.get("pinned-tools")!;
  assert.equal(pinned.spec.tools.onDrift, "Block");
  assert.ok(pinned.spec.tools.pinned.length > 0);
  // The fully locked-down example satisfies every checklist item.
  const unsatisfied = renderMcpServer(pinned, OPTIONS).checklist.filter((c) => !c.satisfied);
  assert.deepEqual(unsatisfied, []);
});

test("generated specs: every valid McpServer renders a hardened, deterministic deployment", () => {
  fc.assert(
    fc.property(mcpServerArbitrary, (input) => {
      const r = validateMcpServer(input);
      if (!r.ok) throw new Error(`generator produced an invalid spec: ${r.errors.join("; ")}`);
      const result = renderMcpServer(r.value, OPTIONS);
      assertHardened(r.value, result);
      // Pure and deterministic: the same input renders the same objects.
      assert.deepEqual(renderMcpServer(r.value, OPTIONS), result);
    }),
    { numRuns: 300 },
  );
});

test("a stdio server runs under the bridge installed by an init container from the gateway image", () => {
  const r = validateMcpServer({
    apiVersion: "mcp.bastion.dev/v1alpha1",
    kind: "McpServer",
    metadata: { name: "time", namespace: "t" },
    spec: {
      image: "mcp/time:1",
      command: ["mcp-server-time"],
      args: ["--local-timezone", "UTC"],
      transport: { type: "stdio" },
      auth: { apiKeys: { secretRef: { name: "k" } } },
    },
  });
  assert.ok(r.ok);
  const pod = podOf(renderMcpServer(r.value, OPTIONS)).spec;
  const init = list(pod.initContainers);
  assert.deepEqual(
    init.map((c) => [c.image, c.args]),
    [[OPTIONS.gatewayImage, ["stdio-bridge", "--install", "/opt/mcp-bastion"]]],
  );
  const server = list(pod.containers).find((c) => c.name === "server")!;
  assert.deepEqual(server.command, [
    "/opt/mcp-bastion/mcp-bastion-bridge",
    "--port",
    String(GATEWAY_PORTS.stdioBridge),
    "--",
    "mcp-server-time",
    "--local-timezone",
    "UTC",
  ]);
  assert.equal(server.args, undefined);
  const gateway = list(pod.containers).find((c) => c.name === "gateway")!;
  assert.deepEqual(gateway.args, ["gateway", "--config", "/etc/mcp-bastion/gateway.json"]);
});

test("a stdio server's identity variables are named to the bridge and the gateway is told to send them (issue 13)", () => {
  const r = validateMcpServer({
    apiVersion: "mcp.bastion.dev/v1alpha1",
    kind: "McpServer",
    metadata: { name: "notes", namespace: "t" },
    spec: {
      image: "mcp/notes:1",
      command: ["notes-server"],
      transport: { type: "stdio" },
      auth: { apiKeys: { secretRef: { name: "k" } } },
      authorization: { identity: { signedJwt: { audience: "notes" }, env: { subject: "NOTES_USER", token: "NOTES_IDENTITY_TOKEN" } } },
    },
  });
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  const objects = renderMcpServer(r.value, OPTIONS);
  const server = list(podOf(objects).spec.containers).find((c) => c.name === "server")!;
  assert.deepEqual(server.command, [
    "/opt/mcp-bastion/mcp-bastion-bridge",
    "--port",
    String(GATEWAY_PORTS.stdioBridge),
    "--identity-env",
    "subject=NOTES_USER",
    "--identity-env",
    "token=NOTES_IDENTITY_TOKEN",
    "--",
    "notes-server",
  ]);
  const cm = byKind(objects, "ConfigMap").find((o) => obj(o.data)["gateway.json"] !== undefined)!;
  const cfg = JSON.parse(String(obj(cm.data)["gateway.json"])) as { authorization: { identity: unknown } };
  assert.deepEqual(cfg.authorization.identity, {
    headers: {},
    signedJwt: { audience: "notes", ttlSeconds: 60 },
    env: { subject: "NOTES_USER", token: "NOTES_IDENTITY_TOKEN" },
  });
});
