// The checked-in CRD is exactly what the schema generates (`make crds` fixes drift), and it is
// structural: what the API server requires, with descriptions, defaults, CEL and list markers kept.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { parse } from "yaml";
import { mcpServerCrd } from "../../operator/src/api/crd.ts";
import { crdYaml } from "../../cli/src/commands/crd.ts";

const CHECKED_IN = join(import.meta.dirname, "..", "..", "crds", "mcp.bastion.dev_mcpservers.yaml");
type Schema = Record<string, unknown>;

function walk(node: unknown, path: string, visit: (n: Schema, path: string) => void): void {
  if (node === null || typeof node !== "object") return;
  const n = node as Schema;
  visit(n, path);
  for (const [k, v] of Object.entries((n.properties as Record<string, Schema>) ?? {})) walk(v, `${path}.${k}`, visit);
  if (n.items) walk(n.items, `${path}[]`, visit);
  if (n.additionalProperties && typeof n.additionalProperties === "object") walk(n.additionalProperties, `${path}{}`, visit);
}

function schema(): Schema {
  const crd = mcpServerCrd() as { spec: { versions: { schema: { openAPIV3Schema: Schema } }[] } };
  return crd.spec.versions[0]!.schema.openAPIV3Schema;
}

test("crds/ matches the schema (run `make crds` after changing operator/src/api)", () => {
  const onDisk = readFileSync(CHECKED_IN, "utf8");
  assert.ok(onDisk === crdYaml(), "crds/mcp.bastion.dev_mcpservers.yaml is stale: run `make crds`");
});

test("the schema is structural: types everywhere, no JSON-Schema-only keywords, no unbounded junk", () => {
  const problems: string[] = [];
  walk(schema(), "", (n, path) => {
    if (path !== "" && n.type === undefined && n["x-kubernetes-int-or-string"] !== true && n["x-kubernetes-preserve-unknown-fields"] !== true)
      problems.push(`${path}: no type`);
    if (n.properties && n.additionalProperties !== undefined) problems.push(`${path}: properties and additionalProperties`);
    if (n.additionalProperties === false) problems.push(`${path}: additionalProperties false`);
    for (const k of ["$schema", "$ref", "anyOf", "oneOf", "allOf", "not", "const", "propertyNames", "definitions", "$defs"]) {
      if (k in n) problems.push(`${path}: ${k}`);
    }
    for (const k of ["minimum", "maximum"]) if (typeof n[k] === "number" && Math.abs(n[k] as number) > 2 ** 40) problems.push(`${path}: ${k} ${n[k]}`);
    if (n["x-kubernetes-list-type"] === "map") {
      const keys = n["x-kubernetes-list-map-keys"] as string[];
      const item = n.items as Schema;
      const required = (item.required as string[]) ?? [];
      for (const k of keys) {
        const prop = (item.properties as Record<string, Schema>)[k];
        if (!required.includes(k) && prop?.default === undefined) problems.push(`${path}: list-map key ${k} neither required nor defaulted`);
      }
    }
    if (n["x-kubernetes-list-type"] === "set" && (n.items as Schema).type === "object") problems.push(`${path}: set of objects`);
  });
  assert.deepEqual(problems, []);
});

test("kubectl explain has descriptions, and defaults and CEL rules come from the zod schema", () => {
  const spec = (schema().properties as Record<string, Schema>).spec!;
  const props = spec.properties as Record<string, Schema>;
  assert.match(String(props.auth!.description), /no anonymous mode/);
  const rules = (s: Schema) => (s["x-kubernetes-validations"] as { rule: string; message: string }[]) ?? [];
  assert.ok(rules(props.auth!).some((r) => r.rule.includes("has(self.apiKeys)") && r.message.startsWith("spec.auth")));
  assert.ok(rules(props.transport!).some((r) => r.message.includes("spec.transport.port must not be set when type is stdio")));
  assert.ok(rules(spec).some((r) => r.message === "spec.tools.pinned[].name must be unique"));
  const replicas = props.replicas!;
  assert.equal(replicas.default, 1);
  assert.equal(replicas.maximum, 100);
  const jwt = (props.auth!.properties as Record<string, Schema>).jwt!;
  assert.deepEqual((jwt.properties as Record<string, Schema>).algorithms!.default, ["RS256", "ES256"]);
  assert.equal((props.tools!.properties as Record<string, Schema>).onDrift!.default, "Block");
  // every CEL rule is bounded: the arrays and strings it walks have maxItems/maxLength
  let unboundedLists = 0;
  walk(spec, "spec", (n) => {
    if (n.type === "array" && n.maxItems === undefined) unboundedLists++;
  });
  assert.equal(unboundedLists, 0, "every list in spec has maxItems (keeps CEL cost estimates low)");
});

test("names, scope, status subresource and printer columns", () => {
  const crd = parse(readFileSync(CHECKED_IN, "utf8"));
  assert.equal(crd.metadata.name, "mcpservers.mcp.bastion.dev");
  assert.equal(crd.spec.scope, "Namespaced");
  assert.deepEqual(crd.spec.names.shortNames, ["mcps"]);
  assert.ok(crd.spec.names.categories.includes("mcp"));
  const v = crd.spec.versions[0];
  assert.equal(v.name, "v1alpha1");
  assert.deepEqual(v.subresources, { status: {} });
  assert.deepEqual(
    v.additionalPrinterColumns.map((c: { name: string }) => c.name),
    ["Ready", "Transport", "Auth", "mTLS", "URL", "Age"],
  );
  const status = v.schema.openAPIV3Schema.properties.status.properties;
  for (const f of ["observedGeneration", "conditions", "url", "checklist", "optOuts", "auth", "mtls"]) assert.ok(status[f], `status.${f}`);
});
