// examples/argocd-application.yaml must stay installable: the operator Application points at this
// chart and its inline values pass the chart's values.schema.json; both Applications use server-side
// apply (the operator's status field ownership then never shows as drift).
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { stringify } from "yaml";
import { parseManifests } from "./manifests.ts";
import { KUBE_VERSION, ROOT, run, tool } from "./tools.ts";
import { scratchDir } from "../support/index.ts";

// biome-ignore lint/suspicious/noExplicitAny: Argo CD objects are navigated loosely
type Any = any;

test("the Argo CD Application example installs this chart with valid values, server-side", async () => {
  const apps = parseManifests(readFileSync(join(ROOT, "examples", "argocd-application.yaml"), "utf8")) as Any[];
  assert.ok(apps.length >= 2 && apps.every((a) => a.apiVersion === "argoproj.io/v1alpha1" && a.kind === "Application"));
  for (const a of apps) assert.ok(a.spec.syncPolicy.syncOptions.includes("ServerSideApply=true"), `${a.metadata.name} does not use server-side apply`);
  const operator = apps.find((a) => a.spec.source.helm);
  assert.ok(operator, "no Application installs the chart");
  assert.ok(existsSync(join(ROOT, operator.spec.source.path, "Chart.yaml")), `${operator.spec.source.path} is not a chart here`);

  const values = join(scratchDir("argocd-values-"), "values.yaml");
  writeFileSync(values, stringify(operator.spec.source.helm.valuesObject));
  const r = await run(await tool("helm"), [
    "template",
    operator.spec.source.helm.releaseName,
    join(ROOT, operator.spec.source.path),
    "-n",
    operator.spec.destination.namespace,
    "--kube-version",
    KUBE_VERSION,
    "-f",
    values,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const rendered = parseManifests(r.stdout) as Any[];
  const dep = rendered.find((o) => o.kind === "Deployment");
  assert.ok(dep.spec.template.spec.containers[0].args.includes(`--namespaces=${operator.spec.source.helm.valuesObject.watchNamespaces.join(",")}`));
  // Waves: the chart (with the CRD) syncs before the McpServers.
  const wave = (a: Any) => Number(a.metadata.annotations?.["argocd.argoproj.io/sync-wave"] ?? 0);
  for (const a of apps.filter((x) => x !== operator)) assert.ok(wave(a) > wave(operator), `${a.metadata.name} may sync before the operator`);
});
