// The folders' boundaries are enforced by `make lint` (biome.json, noRestrictedImports per folder):
// contract/ imports neither the operator nor the gateway, the gateway does not import the operator and
// the operator does not import the gateway; only cli/ wires both. This runs the repo's own biome.json
// over a scratch tree holding one forbidden and one allowed import per folder, so a rule that stopped
// matching (a changed glob, a renamed folder, an override that no longer applies) fails here.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";

const ROOT = resolve(import.meta.dirname, "..", "..");

/** Repo-relative file -> the module it imports, and whether the boundary allows it. */
const PROBES: { file: string; from: string; allowed: boolean }[] = [
  { file: "contract/probe-operator.ts", from: "../operator/src/render/index.ts", allowed: false },
  { file: "contract/authz/probe-gateway.ts", from: "../../gateway/src/server.ts", allowed: false },
  { file: "contract/probe-ok.ts", from: "./fingerprint.ts", allowed: true },
  { file: "gateway/src/probe-operator.ts", from: "../../operator/src/api/v1alpha1.ts", allowed: false },
  { file: "gateway/src/auth/probe-cli.ts", from: "../../../cli/src/main.ts", allowed: false },
  { file: "gateway/src/probe-ok.ts", from: "../../contract/gateway-config.ts", allowed: true },
  { file: "operator/src/render/probe-gateway.ts", from: "../../../gateway/src/index.ts", allowed: false },
  { file: "operator/src/probe-ok.ts", from: "../../contract/kube-object.ts", allowed: true },
  { file: "cli/src/probe-ok.ts", from: "../../gateway/src/index.ts", allowed: true },
];

interface Diagnostic {
  severity: string;
  category?: string;
  message: string;
  location?: { path?: string };
}

test("make lint refuses an import across the contract/operator/gateway boundaries and allows the others", () => {
  const dir = mkdtempSync(join(tmpdir(), "mcp-bastion-boundaries-"));
  try {
    copyFileSync(join(ROOT, "biome.json"), join(dir, "biome.json"));
    for (const p of PROBES) {
      mkdirSync(dirname(join(dir, p.file)), { recursive: true });
      writeFileSync(join(dir, p.file), `import { thing } from "${p.from}";\nexport const probe = thing;\n`);
    }
    const r = spawnSync(join(ROOT, "node_modules", ".bin", "biome"), ["lint", "--reporter=json", "--max-diagnostics=100", "."], { cwd: dir, encoding: "utf8" });
    assert.ok(r.stdout.trim().startsWith("{"), `biome gave no JSON report (exit ${r.status}): ${r.stderr.slice(0, 2000)}`);
    const report = JSON.parse(r.stdout) as { diagnostics: Diagnostic[] };
    const restricted = report.diagnostics.filter((d) => d.category === "lint/style/noRestrictedImports");
    for (const p of PROBES) {
      const hits = restricted.filter((d) => d.location?.path === p.file);
      if (p.allowed) assert.deepEqual(hits, [], `${p.file} importing ${p.from} is allowed, yet biome refused it`);
      else
        assert.equal(
          hits.length,
          1,
          `${p.file} importing ${p.from} crosses a boundary, yet biome let it pass; all diagnostics: ${JSON.stringify(report.diagnostics)}`,
        );
    }
    assert.notEqual(r.status, 0, "biome lint exited 0 with forbidden imports in the tree");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
