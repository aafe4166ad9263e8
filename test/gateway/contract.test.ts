// The contract between the renderer and the gateway: the gateway.json the renderer writes for every
// example McpServer is a config the gateway accepts (schema and semantic checks), with the files it names
// mounted where the gateway reads them.
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { GATEWAY_PATHS } from "../../contract/gateway-config.ts";
import { parseConfig } from "../../gateway/src/load.ts";
import { validateMcpServer } from "../../operator/src/api/validate.ts";
import { renderMcpServer } from "../../operator/src/render/index.ts";
import { ROOT } from "./helpers.ts";
import { exampleMcpServerDoc, exampleMcpServers } from "../support/examples.ts";

test("every example renders a gateway.json the gateway loads", () => {
  let seen = 0;
  for (const { file: f, server } of exampleMcpServers()) {
    const r = renderMcpServer(server, { gatewayImage: "ghcr.io/example/mcp-bastion:test" });
    const cm = r.objects.find((o) => o.kind === "ConfigMap" && typeof (o.data as Record<string, unknown> | undefined)?.["gateway.json"] === "string");
    assert.ok(cm, `${f}: a ConfigMap with gateway.json`);
    const cfg = parseConfig(JSON.parse((cm.data as Record<string, string>)["gateway.json"]!));
    assert.equal(cfg.server.name, server.metadata.name, `${f}: server name`);
    if (cfg.auth.apiKeys) assert.equal(cfg.auth.apiKeys.dir, GATEWAY_PATHS.apiKeysDir, `${f}: api keys mounted where the gateway reads them`);
    if (cfg.auth.jwt?.jwksFile) assert.ok(cfg.auth.jwt.jwksFile.startsWith(`${GATEWAY_PATHS.jwksDir}/`), `${f}: jwks file under ${GATEWAY_PATHS.jwksDir}`);
    if (cfg.upstream.transport === "stdio") assert.equal(cfg.upstream.bridge.host, "127.0.0.1", `${f}: the bridge is reached on loopback`);
    // In-cluster clients use the Service's short names: the gateway's Host check must accept them.
    const { name, namespace } = server.metadata;
    assert.deepEqual(cfg.hostAliases, [name, `${name}.${namespace}`, `${name}.${namespace}.svc`], `${f}: Service names as Host aliases`);
    seen++;
  }
  assert.ok(seen >= 3, `rendered ${seen} McpServers`);
});

test("`mcp-bastion gateway` with a broken config exits 1 naming the field, without a stack trace", async () => {
  const { execFile } = await import("node:child_process");
  const { writeFileSync } = await import("node:fs");
  const { tempDir } = await import("./helpers.ts");
  const dir = tempDir("badcfg");
  const run = (file: string) =>
    new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const p = execFile(process.execPath, [join(ROOT, "cli/bin/mcp-bastion.js"), "gateway", "--config", file], (_e, _out, stderr) =>
        resolve({ code: p.exitCode, stderr }),
      );
    });
  writeFileSync(join(dir, "a.json"), JSON.stringify({ version: 1, server: { namespace: "n", name: "x" }, listen: {}, publicUrl: "https://x/mcp" }));
  const a = await run(join(dir, "a.json"));
  assert.equal(a.code, 1);
  assert.match(a.stderr, /invalid gateway config: upstream: /);
  assert.doesNotMatch(a.stderr, /\n\s+at /);
  writeFileSync(join(dir, "b.json"), "{ not json");
  const b = await run(join(dir, "b.json"));
  assert.equal(b.code, 1);
  assert.match(b.stderr, /is not valid JSON/);
  const c = await run(join(dir, "missing.json"));
  assert.match(c.stderr, /cannot read gateway config .*missing\.json: ENOENT/);
});

test("spec.audit.checkpoint: the signing key is mounted into the gateway only, where gateway.json names it", () => {
  const doc = exampleMcpServerDoc("everything.yaml") as { spec: Record<string, unknown> };
  const v = validateMcpServer({ ...doc, spec: { ...doc.spec, audit: { checkpoint: { secretRef: { name: "audit-signing" } } } } });
  assert.ok(v.ok, v.ok ? "" : v.errors.join("; "));
  assert.deepEqual(v.value.spec.audit.checkpoint, { secretRef: { name: "audit-signing", key: "checkpoint.key" }, everyLines: 1000, everySeconds: 10 });
  const r = renderMcpServer(v.value, { gatewayImage: "ghcr.io/example/mcp-bastion:test" });
  const cm = r.objects.find((o) => o.kind === "ConfigMap" && typeof (o.data as Record<string, unknown> | undefined)?.["gateway.json"] === "string")!;
  const cfg = parseConfig(JSON.parse((cm.data as Record<string, string>)["gateway.json"]!));
  assert.deepEqual(cfg.audit.checkpoint, { keyFile: GATEWAY_PATHS.auditKeyFile, everyLines: 1000, everySeconds: 10 });
  type Pod = {
    spec: {
      template: {
        spec: {
          volumes: { name: string; secret?: { secretName: string; items?: { key: string; path: string }[] } }[];
          containers: { name: string; volumeMounts?: { name: string; mountPath: string }[] }[];
        };
      };
    };
  };
  const pod = (r.objects.find((o) => o.kind === "Deployment") as unknown as Pod).spec.template.spec;
  const vol = pod.volumes.find((x) => x.secret?.secretName === "audit-signing");
  assert.ok(vol, "a volume from the key's Secret");
  assert.deepEqual(vol.secret!.items, [{ key: "checkpoint.key", path: "checkpoint.key" }]);
  for (const c of pod.containers) {
    const mounted: { name: string; mountPath: string }[] = (c.volumeMounts ?? []).filter((m) => m.name === vol.name);
    if (c.name === "gateway")
      assert.deepEqual(
        mounted.map((m) => m.mountPath),
        [GATEWAY_PATHS.auditKeyDir],
      );
    else assert.deepEqual(mounted, [], `${c.name} must not see the signing key`);
  }
  const bad = validateMcpServer({ ...doc, spec: { ...doc.spec, audit: { checkpoint: { secretRef: { name: "Bad_Name" }, everySeconds: 0 } } } });
  assert.ok(!bad.ok);
  assert.match(bad.errors.join("; "), /spec\.audit\.checkpoint/);
});
