// The Istio, External Secrets and cert-manager objects the renderer emits, validated against the real
// upstream CRD schemas (dev/crds.ts: the Go modules' CRDs that `make crds-upstream` installs, versions in
// hack/crds/versions), including a strict unknown-field check (the API server would prune or, with strict
// validation, refuse them). Without them the test fails naming `make crds-upstream`: no weaker fallback.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { Ajv } from "ajv";
import addFormats from "ajv-formats";
import fc from "fast-check";
import { parseAllDocuments } from "yaml";
import { validateMcpServer } from "../../operator/src/api/validate.ts";
import { type KubeObject, OWNED_KINDS, renderMcpServer } from "../../operator/src/render/index.ts";
import { mcpServerArbitrary } from "./arbitrary.ts";
import { exampleMcpServers } from "../support/examples.ts";
import { upstreamCrdFiles } from "../../dev/crds.ts";

/** Kinds the examples must emit (so the check below cannot pass by checking nothing). */
const IN_EXAMPLES = ["PeerAuthentication", "AuthorizationPolicy", "ServiceEntry", "Sidecar", "ExternalSecret"];
/** Every third-party kind checked wherever it is rendered (Certificate: only with spec.tls, not in every example set). */
const CHECKED = new Set([...IN_EXAMPLES, "Certificate"]);

type Schema = Record<string, unknown>;
type Validate = (o: KubeObject) => string[];

/** Paths of fields the schema does not declare (what strict field validation refuses). */
export function unknownFields(value: unknown, schema: Schema, path = ""): string[] {
  if (schema["x-kubernetes-preserve-unknown-fields"] === true) return [];
  if (Array.isArray(value)) {
    const items = schema.items as Schema | undefined;
    return items ? value.flatMap((v, i) => unknownFields(v, items, `${path}[${i}]`)) : [];
  }
  if (value === null || typeof value !== "object") return [];
  const props = schema.properties as Record<string, Schema> | undefined;
  const additional = schema.additionalProperties as Schema | boolean | undefined;
  const out: string[] = [];
  for (const [k, v] of Object.entries(value)) {
    const sub = props?.[k] ?? (typeof additional === "object" ? additional : undefined);
    if (!sub) {
      if (!props && additional === undefined) continue; // schema-less object
      out.push(`${path}.${k}`);
      continue;
    }
    out.push(...unknownFields(v, sub, `${path}.${k}`));
  }
  return out;
}

function upstreamValidators(files: string[]): Map<string, Validate> {
  const ajv = new Ajv({ strict: false, allErrors: true, logger: false });
  addFormats.default(ajv);
  const out = new Map<string, Validate>();
  for (const file of files) {
    for (const doc of parseAllDocuments(readFileSync(file, "utf8")) as unknown as { toJS(): unknown }[]) {
      const crd = doc.toJS() as {
        kind?: string;
        spec?: { group: string; names: { kind: string }; versions: { name: string; schema?: { openAPIV3Schema: Schema } }[] };
      } | null;
      if (crd?.kind !== "CustomResourceDefinition" || !crd.spec || !CHECKED.has(crd.spec.names.kind)) continue;
      for (const v of crd.spec.versions) {
        const schema = v.schema?.openAPIV3Schema;
        if (!schema) continue;
        const validate = ajv.compile(schema);
        out.set(`${crd.spec.group}/${v.name}/${crd.spec.names.kind}`, (o) => {
          const errors = validate(o) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`);
          const { metadata: _m, apiVersion: _a, kind: _k, ...rest } = o;
          return [...errors, ...unknownFields(rest, schema).map((p) => `${p}: unknown field`)];
        });
      }
    }
  }
  return out;
}

function exampleObjects(): KubeObject[] {
  const out: KubeObject[] = [];
  for (const { server } of exampleMcpServers()) out.push(...renderMcpServer(server, { gatewayImage: "gw:1" }).objects);
  return out;
}

test("Istio, External Secrets and cert-manager objects validate against their real schemas", async (t) => {
  const files = upstreamCrdFiles();
  const validators = upstreamValidators(files);
  t.diagnostic(`validating against the upstream CRDs in ${files.length} files (make crds-upstream)`);
  for (const kind of CHECKED)
    assert.ok(
      [...validators.keys()].some((k) => k.endsWith(`/${kind}`)),
      `the upstream CRDs define no ${kind}`,
    );
  const check = (o: KubeObject) => {
    if (!CHECKED.has(o.kind)) return;
    const v = validators.get(`${o.apiVersion}/${o.kind}`);
    assert.ok(v, `no schema for ${o.apiVersion} ${o.kind}: is this version served upstream?`);
    assert.deepEqual(v(o), [], `${o.kind}/${o.metadata.name}`);
  };
  const objects = exampleObjects();
  for (const kind of IN_EXAMPLES)
    assert.ok(
      objects.some((o) => o.kind === kind),
      `the examples emit no ${kind}`,
    );
  for (const o of objects) check(o);
  fc.assert(
    fc.property(mcpServerArbitrary, (input) => {
      const r = validateMcpServer(input);
      assert.ok(r.ok);
      for (const o of renderMcpServer(r.value, { gatewayImage: "gw:1" }).objects) check(o);
    }),
    { numRuns: 150 },
  );
});

test("the installed upstream CRDs serve every third-party kind the operator may own, at the version it renders", () => {
  const served = new Set<string>();
  for (const file of upstreamCrdFiles()) {
    for (const doc of parseAllDocuments(readFileSync(file, "utf8")) as unknown as { toJS(): unknown }[]) {
      const crd = doc.toJS() as { kind?: string; spec?: { group: string; names: { kind: string }; versions: { name: string; served: boolean }[] } } | null;
      if (crd?.kind !== "CustomResourceDefinition" || !crd.spec) continue;
      for (const v of crd.spec.versions) if (v.served) served.add(`${crd.spec.group}/${v.name} ${crd.spec.names.kind}`);
    }
  }
  const thirdParty = OWNED_KINDS.filter((k) => k.requires);
  assert.ok(thirdParty.length >= 6, "Istio, External Secrets and cert-manager kinds are owned");
  assert.deepEqual(
    thirdParty.filter((k) => !served.has(`${k.apiVersion} ${k.kind}`)).map((k) => `${k.apiVersion} ${k.kind} (${k.requires})`),
    [],
    "kinds the renderer emits that hack/crds/versions' pins do not serve",
  );
});

test("the unknown-field check itself catches a misspelt field", () => {
  const schema = {
    type: "object",
    properties: { spec: { type: "object", properties: { mtls: { type: "object", properties: { mode: { type: "string" } } } } } },
  };
  assert.deepEqual(unknownFields({ spec: { mtls: { mode: "STRICT" } } }, schema), []);
  assert.deepEqual(unknownFields({ spec: { mTLS: { mode: "STRICT" } } }, schema), [".spec.mTLS"]);
});
