// `make unit` runs the test files this prints: those that need nothing but Node and the npm packages. A
// test file is left out when what it imports (followed through the test helpers and dev/) reaches the local control
// plane, the upstream CRDs (dev/crds.ts), a tool that hack/ builds or fetches (helm, kube-score, checkov, luahealth,
// redis-server, nginx, the single-executable bridge), or when it belongs to the reliability suite (`make reliability`). The
// selection is computed from the code on every run, so it cannot drift from it; and `make unit` sets
// MCP_BASTION_UNIT=1, under which the control plane and hack's installers refuse to run, so a test this
// misjudges fails loudly instead of making the inner loop slow. `make test` runs every file regardless.
//
// Usage: node test/unit.ts            prints the unit test files, one per line (repo-relative)
//        node test/unit.ts --why      prints every test file with the reason it is or is not a unit test
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "..");

/** Modules that start or need something outside npm, by repo-relative path. */
const GATES: Record<string, string> = {
  "dev/controlplane/index.ts": "the local control plane",
  "test/ship/tools.ts": "tools built by hack/tools/install.sh",
  "dev/crds.ts": "the upstream CRDs installed by hack/crds/install.sh",
};
/** A file that runs one of hack's installers or builders by name needs what they install. */
const HACK_SCRIPT = /\b(deps-gateway|build-bridge|install|build)\.sh\b/;
const IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)["']([^"']+)["']/g;

function testFiles(dir: string): string[] {
  return readdirSync(dir)
    .flatMap((name) => {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) return name === "node_modules" ? [] : testFiles(p);
      return name.endsWith(".test.ts") ? [p] : [];
    })
    .sort();
}

/** Why a test file is not a unit test (undefined: it is one). Follows relative imports within test/. */
export function needs(file: string, root = ROOT): string | undefined {
  const rel = relative(root, file);
  if (rel.startsWith("test/reliability/")) return "the reliability suite (make reliability)";
  const seen = new Set<string>();
  const queue = [file];
  while (queue.length > 0) {
    const f = queue.shift()!;
    if (seen.has(f)) continue;
    seen.add(f);
    const r = relative(root, f);
    if (GATES[r]) return `${GATES[r]} (via ${r})`;
    const text = readFileSync(f, "utf8");
    const script = HACK_SCRIPT.exec(text);
    if (script) return `hack/…/${script[0]} (named in ${r})`;
    // Type-only imports load nothing at run time.
    for (const m of text.replace(/^\s*(import|export)\s+type\b.*$/gm, "").matchAll(IMPORT)) {
      const spec = m[1]!;
      if (!spec.startsWith(".")) continue;
      const target = resolve(dirname(f), spec);
      if (!existsSync(target)) continue; // an import-like string in a test's data, not an import
      // Product code (contract/, operator/, gateway/, cli/) needs nothing installed; only test helpers and the
      // development clusters (dev/) are followed.
      if (/^(test|dev)\//.test(relative(root, target))) queue.push(target);
    }
  }
  return undefined;
}

/** The unit test files, repo-relative and sorted. */
export function unitTestFiles(root = ROOT): string[] {
  return testFiles(join(root, "test"))
    .filter((f) => needs(f, root) === undefined)
    .map((f) => relative(root, f));
}

if (import.meta.main) {
  if (process.argv.includes("--why")) {
    for (const f of testFiles(join(ROOT, "test"))) console.log(`${relative(ROOT, f)}: ${needs(f) ?? "unit"}`);
  } else {
    console.log(unitTestFiles().join("\n"));
  }
}
