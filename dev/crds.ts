// The real upstream CRDs of the third-party kinds the renderer emits (Istio, External Secrets, cert-manager),
// installed from their Go modules by hack/crds/install.sh (`make crds-upstream`, which `make test` and
// `make demo` run) at the versions hack/crds/versions pins. Tests and the demo read them only through here:
// when they are absent this fails naming the make target, never falls back to a schema-less stand-in (that
// would quietly skip the validation the project promises for these objects).
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const INSTALL = join(repoRoot, "hack", "crds", "install.sh");

/** The directory holding the installed upstream CRD files (*.yaml); throws naming `make crds-upstream` when they are not installed. */
export function upstreamCrdDir(): string {
  if (process.env.MCP_BASTION_UNIT === "1")
    throw new Error(
      "`make unit` runs only tests that need nothing outside npm, but this one reads the upstream CRDs: test/unit.ts misjudged it (run it with `make test`)",
    );
  // --installed only computes the pinned key and looks in the cache: it never downloads.
  const r = spawnSync(INSTALL, ["--installed"], { encoding: "utf8", timeout: 60_000 });
  const dir = r.stdout?.trim().split("\n").pop();
  if (r.status !== 0 || !dir) {
    const why = r.error ? r.error.message : (r.stderr ?? "").trim().split("\n").slice(-3).join("\n");
    throw new Error(
      `the upstream Istio, External Secrets and cert-manager CRDs are not installed: run \`make crds-upstream\` (hack/crds/install.sh) first. ${why}`,
    );
  }
  return dir;
}

/** The installed upstream CRD files, sorted (each holds one or more CustomResourceDefinitions). */
export function upstreamCrdFiles(dir = upstreamCrdDir()): string[] {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(".yaml"))
    .sort()
    .map((f) => join(dir, f));
  if (files.length === 0) throw new Error(`${dir} holds no CRD files: remove it and run \`make crds-upstream\` again`);
  return files;
}

/** All installed upstream CRDs as one YAML stream (for `kubectl apply -f -`). */
export function upstreamCrdsYaml(dir = upstreamCrdDir()): string {
  return upstreamCrdFiles(dir)
    .map((f) => readFileSync(f, "utf8"))
    .join("\n---\n");
}
