// The Argo CD health check for McpServer, run by Argo CD's own Lua engine (gopher-lua, with only
// the libraries Argo CD opens) against the status fixtures in charts/mcp-bastion/argocd/testdata,
// using Argo CD's health_test.yaml layout.
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { parse } from "yaml";
import { CHART_DIR, run, tool } from "./tools.ts";
import { scratchDir } from "../support/index.ts";

const ARGOCD = join(CHART_DIR, "argocd");
const SCRIPT = join(ARGOCD, "health.lua");

interface HealthTest {
  inputPath: string;
  healthStatus: { status: string; message: string };
}
interface Evaluated {
  status?: string;
  message?: string;
  error?: string;
}

async function evaluate(script: string, objects: unknown[]): Promise<Evaluated[]> {
  const r = await run(await tool("luahealth"), [script], { input: JSON.stringify(objects) });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Evaluated[];
}

describe("Argo CD health check for McpServer", () => {
  const cases = (parse(readFileSync(join(ARGOCD, "health_test.yaml"), "utf8")) as { tests: HealthTest[] }).tests;

  test("covers Healthy, Progressing, Degraded and a stale observedGeneration", () => {
    const statuses = new Set(cases.map((c) => c.healthStatus.status));
    for (const s of ["Healthy", "Progressing", "Degraded"]) assert.ok(statuses.has(s), `no fixture expects ${s}`);
    assert.ok(
      cases.some((c) => c.inputPath.includes("stale")),
      "no stale-generation fixture",
    );
  });

  test("every fixture gives the expected status and message", async () => {
    const objects = cases.map((c) => parse(readFileSync(join(ARGOCD, c.inputPath), "utf8")) as unknown);
    const results = await evaluate(SCRIPT, objects);
    cases.forEach((c, i) => {
      assert.deepEqual(results[i], c.healthStatus, `${c.inputPath}`);
    });
  });

  test("a spec change after Healthy turns it back to Progressing until the operator catches up", async () => {
    const healthy = parse(readFileSync(join(ARGOCD, "testdata", "healthy.yaml"), "utf8")) as {
      metadata: { generation: number };
    };
    const edited = structuredClone(healthy);
    edited.metadata.generation += 1;
    const [before, after] = await evaluate(SCRIPT, [healthy, edited]);
    assert.equal(before?.status, "Healthy");
    assert.equal(after?.status, "Progressing");
    assert.match(after?.message ?? "", /generation 3/);
  });

  test("the engine is as strict as Argo CD's: the string library is not available", async () => {
    // If this ever passes, the runner no longer mirrors Argo CD and the fixtures above prove less.
    const dir = scratchDir("luahealth-");
    const script = join(dir, "uses-string.lua");
    writeFileSync(script, 'return { status = string.upper("healthy") }\n');
    const [result] = await evaluate(script, [{}]);
    assert.match(result?.error ?? "", /string/);
  });
});
