// Independent manifest checkers on the objects users actually get: checkov (PyPI) and kube-score
// (Go module, --kubernetes-version of our control plane) over `helm template` (default and
// namespaced values), over what the renderer makes of every example, and checkov over the
// Dockerfile. Zero failed checks; the only accepted exceptions are the rows of checks/skipped.md,
// each scoped and with a reason, and a row that no longer suppresses anything fails too (stale).
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import { stringify } from "yaml";
import { type KubeDoc, mcpServerExamples, parseManifests, renderExample } from "./manifests.ts";
import { CHART_DIR, KUBE_VERSION, ROOT, run, tool } from "./tools.ts";
import { scratchDir } from "../support/index.ts";

type Scope = "chart" | "rendered" | "dockerfile";
interface Skip {
  scanner: string;
  check: string;
  scopes: Scope[];
  reason: string;
}
interface Finding {
  scanner: "checkov" | "kube-score";
  check: string;
  scope: Scope;
  object: string;
  detail: string;
}
interface Tally {
  passed: number;
  failures: Finding[];
}

/** Rows of the table in checks/skipped.md. */
export function readSkips(markdown: string): Skip[] {
  return markdown
    .split("\n")
    .filter((l) => /^\|\s*(checkov|kube-score)\s*\|/.test(l))
    .map((l) => {
      const [scanner, check, scopes, reason] = l
        .split("|")
        .slice(1, -1)
        .map((c) => c.trim().replaceAll("`", ""));
      return { scanner: scanner!, check: check!, scopes: scopes!.split(/\s*,\s*/) as Scope[], reason: reason ?? "" };
    });
}

const skips = readSkips(readFileSync(join(ROOT, "checks", "skipped.md"), "utf8"));
const isSkipped = (f: Finding) => skips.some((s) => s.scanner === f.scanner && s.check === f.check && s.scopes.includes(f.scope));

let dir: string;
const scopeFiles: Record<Exclude<Scope, "dockerfile">, string[]> = { chart: [], rendered: [] };

function scopeOf(path: string): Scope {
  if (path.endsWith("Dockerfile")) return "dockerfile";
  return path.includes("/rendered/") ? "rendered" : "chart";
}

async function checkov(): Promise<Tally> {
  const bin = await tool("checkov");
  const r = await run(bin, ["-d", dir, "--framework", "kubernetes", "dockerfile", "--output", "json", "--skip-download"], {
    env: { ...process.env, ANSI_COLORS_DISABLED: "1", BC_SKIP_MAPPING: "TRUE" },
  });
  // checkov exits 1 when a check fails; anything else (or no JSON) is a crash.
  assert.ok(r.code === 0 || r.code === 1, `checkov failed to run (${r.code}):\n${r.stderr.slice(-2000)}`);
  const parsed = JSON.parse(r.stdout) as CheckovReport | CheckovReport[];
  const reports = Array.isArray(parsed) ? parsed : [parsed];
  const tally: Tally = { passed: 0, failures: [] };
  for (const rep of reports) {
    assert.equal(rep.summary.parsing_errors, 0, `checkov could not parse ${rep.check_type} input`);
    tally.passed += rep.summary.passed;
    for (const c of rep.results.failed_checks) {
      tally.failures.push({ scanner: "checkov", check: c.check_id, scope: scopeOf(c.file_path), object: c.resource, detail: c.check_name });
    }
  }
  return tally;
}
interface CheckovReport {
  check_type: string;
  summary: { passed: number; failed: number; parsing_errors: number };
  results: { failed_checks: { check_id: string; check_name: string; resource: string; file_path: string }[] };
}

async function kubeScore(): Promise<Tally> {
  const bin = await tool("kube-score");
  const tally: Tally = { passed: 0, failures: [] };
  for (const scope of ["chart", "rendered"] as const) {
    if (scopeFiles[scope].length === 0) continue;
    const r = await run(bin, [
      "score",
      "--kubernetes-version",
      `v${KUBE_VERSION.split(".").slice(0, 2).join(".")}`,
      "--enable-optional-test",
      "container-seccomp-profile",
      "--enable-optional-test",
      "container-ports-check",
      "--output-format",
      "json",
      ...scopeFiles[scope],
    ]);
    assert.ok(r.code === 0 || r.code === 1, `kube-score failed to run (${r.code}):\n${r.stderr}`);
    const objects = JSON.parse(r.stdout) as {
      object_name: string;
      checks: { check: { id: string }; grade: number; skipped: boolean; comments: { summary: string }[] | null }[];
    }[];
    for (const o of objects) {
      for (const c of o.checks) {
        if (c.skipped) continue;
        // Grade 10 is "all OK"; anything lower is a warning (5), almost OK (7) or critical (1).
        if (c.grade >= 10) tally.passed++;
        else
          tally.failures.push({
            scanner: "kube-score",
            check: c.check.id,
            scope,
            object: o.object_name,
            detail: (c.comments ?? []).map((x) => x.summary).join("; "),
          });
      }
    }
  }
  return tally;
}

function report(name: string, tally: Tally, t: { diagnostic(msg: string): void }): void {
  const unexplained = tally.failures.filter((f) => !isSkipped(f));
  const skipped = tally.failures.length - unexplained.length;
  t.diagnostic(`${name}: ${tally.passed} checks passed, ${unexplained.length} failed, ${skipped} skipped (checks/skipped.md)`);
  assert.deepEqual(
    unexplained.map((f) => `${f.check} on ${f.scope} ${f.object}: ${f.detail}`),
    [],
    `${name} found weaknesses; fix them, or list a check in checks/skipped.md with its reason`,
  );
  const stale = skips.filter((s) => s.scanner === name && !tally.failures.some((f) => f.check === s.check && s.scopes.includes(f.scope)));
  assert.deepEqual(
    stale.map((s) => `${s.check} (${s.scopes.join(", ")})`),
    [],
    `checks/skipped.md lists ${name} checks that no longer fail: remove them`,
  );
  assert.ok(tally.passed > 0, `${name} ran no check`);
}

describe("independent scanners", { timeout: 10 * 60_000 }, () => {
  before(async () => {
    dir = scratchDir("mcp-bastion-scan-");
    mkdirSync(join(dir, "chart"));
    mkdirSync(join(dir, "rendered"));
    const helm = await tool("helm");
    const variants: Record<string, string[]> = { default: [], namespaced: ["--set", "watchNamespaces={team-a,team-b}"] };
    for (const [name, values] of Object.entries(variants)) {
      const r = await run(helm, ["template", "bastion", CHART_DIR, "-n", "mcp-system", "--kube-version", KUBE_VERSION, ...values]);
      assert.equal(r.code, 0, r.stderr);
      const file = join(dir, "chart", `${name}.yaml`);
      writeFileSync(file, r.stdout);
      scopeFiles.chart.push(file);
    }
    for (const ex of mcpServerExamples()) {
      const objects: KubeDoc[] = await renderExample(ex.path);
      const file = join(dir, "rendered", ex.file);
      writeFileSync(file, objects.map((o) => stringify(o)).join("---\n"));
      scopeFiles.rendered.push(file);
    }
    copyFileSync(join(ROOT, "Dockerfile"), join(dir, "Dockerfile"));
  });

  test("checks/skipped.md gives every skip a scope and a reason", () => {
    for (const s of skips) {
      assert.ok(s.reason.length > 20, `${s.scanner} ${s.check}: no real reason given`);
      for (const scope of s.scopes) assert.ok(["chart", "rendered", "dockerfile"].includes(scope), `${s.check}: unknown scope ${scope}`);
    }
  });

  test("the scanners see every object: chart, rendered examples, Dockerfile", () => {
    const chartObjects = scopeFiles.chart.flatMap((f) => parseManifests(readFileSync(f, "utf8")));
    assert.ok(chartObjects.some((o) => o.kind === "Deployment"));
    assert.ok(scopeFiles.rendered.length > 0, "no rendered example to scan");
  });

  test("checkov: zero failed checks", async (t) => {
    report("checkov", await checkov(), t);
  });

  test("kube-score: zero failed checks", async (t) => {
    report("kube-score", await kubeScore(), t);
  });
});
