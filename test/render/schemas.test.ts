// The Istio and External Secrets objects the renderer emits, validated against the real upstream
// CRD schemas (../shared/crds-upstream/, copied from istio/api and external-secrets), including a
// strict unknown-field check (the API server would prune or, with strict validation, refuse them).
// Without those files (a fresh clone outside this workspace) the test says so and falls back to the
// schemas shipped by @kubernetes-models/istio and @kubernetes-models/external-secrets.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { Ajv } from "ajv";
import addFormats from "ajv-formats";
import fc from "fast-check";
import { parseAllDocuments } from "yaml";
import { validateMcpServer } from "../../operator/src/api/validate.ts";
import { type KubeObject, renderMcpServer } from "../../operator/src/render/index.ts";
import { mcpServerArbitrary } from "./arbitrary.ts";
import { exampleMcpServers } from "../support/examples.ts";

const UPSTREAM = process.env.MCP_BASTION_UPSTREAM_CRDS ?? join(import.meta.dirname, "..", "..", "..", "shared", "crds-upstream");
const CHECKED = new Set(["PeerAuthentication", "AuthorizationPolicy", "ServiceEntry", "Sidecar", "ExternalSecret"]);

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

function upstreamValidators(): Map<string, Validate> | undefined {
  if (!existsSync(UPSTREAM)) return undefined;
  const ajv = new Ajv({ strict: false, allErrors: true, logger: false });
  addFormats.default(ajv);
  const out = new Map<string, Validate>();
  for (const file of readdirSync(UPSTREAM).filter((f) => f.endsWith(".yaml"))) {
    for (const doc of parseAllDocuments(readFileSync(join(UPSTREAM, file), "utf8")) as unknown as { toJS(): unknown }[]) {
      const crd = doc.toJS() as { kind?: string; spec?: { group: string; names: { kind: string }; versions: { name: string; schema?: { openAPIV3Schema: Schema } }[] } } | null;
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

async function packageValidators(): Promise<Map<string, Validate>> {
  const security = await import("@kubernetes-models/istio/security.istio.io/v1beta1");
  const networking = await import("@kubernetes-models/istio/networking.istio.io/v1beta1");
  const eso = await import("@kubernetes-models/external-secrets/external-secrets.io/v1beta1");
  // The packages carry v1beta1 schemas; the v1 specs of these kinds have the same shape.
  const wrap =
    (Model: new (o: never) => { validate(): void }, apiVersion: string): Validate =>
    (o) => {
      try {
        new Model({ ...o, apiVersion } as never).validate();
        return [];
      } catch (e) {
        return [(e as Error).message];
      }
    };
  return new Map<string, Validate>([
    ["security.istio.io/v1/PeerAuthentication", wrap(security.PeerAuthentication as never, "security.istio.io/v1beta1")],
    ["security.istio.io/v1/AuthorizationPolicy", wrap(security.AuthorizationPolicy as never, "security.istio.io/v1beta1")],
    ["networking.istio.io/v1/ServiceEntry", wrap(networking.ServiceEntry as never, "networking.istio.io/v1beta1")],
    ["networking.istio.io/v1/Sidecar", wrap(networking.Sidecar as never, "networking.istio.io/v1beta1")],
    ["external-secrets.io/v1/ExternalSecret", wrap(eso.ExternalSecret as never, "external-secrets.io/v1beta1")],
  ]);
}

function exampleObjects(): KubeObject[] {
  const out: KubeObject[] = [];
  for (const { server } of exampleMcpServers()) out.push(...renderMcpServer(server, { gatewayImage: "gw:1" }).objects);
  return out;
}

test("Istio and External Secrets objects validate against their real schemas", async (t) => {
  let validators = upstreamValidators();
  if (validators) {
    t.diagnostic(`validating against upstream CRDs in ${UPSTREAM}`);
  } else {
    t.diagnostic(`upstream CRDs not found at ${UPSTREAM}: falling back to the @kubernetes-models/* schemas (no unknown-field check)`);
    validators = await packageValidators();
  }
  const check = (o: KubeObject) => {
    if (!CHECKED.has(o.kind)) return;
    const v = validators.get(`${o.apiVersion}/${o.kind}`);
    assert.ok(v, `no schema for ${o.apiVersion} ${o.kind}: is this version served upstream?`);
    assert.deepEqual(v(o), [], `${o.kind}/${o.metadata.name}`);
  };
  const objects = exampleObjects();
  for (const kind of CHECKED) assert.ok(objects.some((o) => o.kind === kind), `the examples emit no ${kind}`);
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

test("the unknown-field check itself catches a misspelt field", () => {
  const schema = { type: "object", properties: { spec: { type: "object", properties: { mtls: { type: "object", properties: { mode: { type: "string" } } } } } } };
  assert.deepEqual(unknownFields({ spec: { mtls: { mode: "STRICT" } } }, schema), []);
  assert.deepEqual(unknownFields({ spec: { mTLS: { mode: "STRICT" } } }, schema), [".spec.mTLS"]);
});
