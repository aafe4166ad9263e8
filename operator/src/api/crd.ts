// The McpServer CustomResourceDefinition, generated from the zod schema (v1alpha1.ts): the same
// definition the operator validates with. `make crds` writes it to crds/; a test fails on drift.
//
// zod's OpenAPI 3.0 output is close to what the API server wants; this turns it into a structural
// schema: no `additionalProperties: false` next to `properties` (pruning already drops unknown
// fields), no JSON-Schema-only keywords, no ±2^53 bounds on plain integers, metadata left to the
// API server (it only allows restrictions on name, written here as CEL).
import { z } from "zod";
import { GROUP, KIND, McpServerSchema, PLURAL, VERSION } from "./v1alpha1.ts";

type Schema = Record<string, unknown>;

/** Keywords a structural schema may carry (apiextensions.k8s.io/v1 JSONSchemaProps). */
const ALLOWED = new Set([
  "type",
  "format",
  "description",
  "default",
  "enum",
  "nullable",
  "properties",
  "additionalProperties",
  "items",
  "required",
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "exclusiveMaximum",
  "minLength",
  "maxLength",
  "pattern",
  "minItems",
  "maxItems",
  "uniqueItems",
  "minProperties",
  "maxProperties",
  "x-kubernetes-validations",
  "x-kubernetes-list-type",
  "x-kubernetes-list-map-keys",
  "x-kubernetes-map-type",
  "x-kubernetes-preserve-unknown-fields",
  "x-kubernetes-int-or-string",
]);

/** |bound| >= this is zod's "any safe integer", not a real limit. */
const HUGE = 2 ** 52;

/** Recursively turns zod's OpenAPI output into a structural schema node. */
export function structural(node: Schema): Schema {
  const out: Schema = {};
  for (const [k, v] of Object.entries(node)) {
    if (!ALLOWED.has(k)) continue;
    if ((k === "minimum" || k === "maximum") && typeof v === "number" && Math.abs(v) >= HUGE) continue;
    if (k === "properties") {
      out.properties = Object.fromEntries(Object.entries(v as Record<string, Schema>).map(([p, s]) => [p, structural(s)]));
    } else if (k === "items") {
      out.items = structural(v as Schema);
    } else if (k === "additionalProperties") {
      // `false` (strict objects) and `{}` (loose ones) say nothing a structural schema can keep;
      // a schema (records/maps) stays.
      if (typeof v === "object" && v !== null && Object.keys(v).length > 0 && node.properties === undefined) {
        out.additionalProperties = structural(v as Schema);
      }
    } else {
      out[k] = v;
    }
  }
  // zod's prefault({}) (the schema says each default once, on the field) shows as `default: {}`.
  // The API server would fill in the nested defaults itself; writing them out keeps `kubectl explain`
  // and readers of the CRD seeing the values an omitted object gets.
  if (isEmptyObject(out.default) && out.properties) out.default = nestedDefaults(out.properties as Record<string, Schema>);
  return out;
}

const isEmptyObject = (v: unknown) => typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length === 0;

/** The object an omitted field defaults to: each property's own default (already expanded). */
function nestedDefaults(properties: Record<string, Schema>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(properties).flatMap(([k, p]) => (p.default === undefined ? [] : [[k, structuredClone(p.default)]])));
}

export const PRINTER_COLUMNS = [
  { name: "Ready", type: "string", jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
  { name: "Transport", type: "string", jsonPath: ".spec.transport.type" },
  { name: "Auth", type: "string", jsonPath: ".status.auth" },
  { name: "mTLS", type: "string", jsonPath: ".status.mtls" },
  { name: "URL", type: "string", jsonPath: ".status.url" },
  { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
];

/** The object's schema: spec and status from zod, metadata restricted by CEL only. */
export function openApiSchema(): Schema {
  const raw = z.toJSONSchema(McpServerSchema, { io: "input", target: "openapi-3.0" }) as Schema;
  const root = structural(raw);
  const props = root.properties as Record<string, Schema>;
  props.apiVersion = { type: "string", description: "APIVersion defines the versioned schema of this representation of an object." };
  props.kind = { type: "string", description: "Kind is a string value representing the REST resource this object represents." };
  props.metadata = { type: "object" };
  const spec = props.spec!;
  spec.description ??= "Desired state of a hardened MCP server.";
  const status = props.status!;
  status.description = "Observed state, written by the operator.";
  return {
    type: "object",
    description: "McpServer deploys one Model Context Protocol server behind an authenticating gateway, hardened by construction.",
    properties: { apiVersion: props.apiVersion, kind: props.kind, metadata: props.metadata, spec, status },
    required: ["spec"],
    "x-kubernetes-validations": [
      {
        // The name becomes the Service's name (a DNS label); the API server only checks DNS subdomain.
        rule: "size(self.metadata.name) <= 63 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",
        message: "metadata.name must be a DNS label (lowercase letters, digits and '-', at most 63 characters)",
      },
    ],
  };
}

export function mcpServerCrd(): Schema {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: {
      name: `${PLURAL}.${GROUP}`,
      labels: { "app.kubernetes.io/part-of": "mcp-bastion" },
    },
    spec: {
      group: GROUP,
      names: {
        kind: KIND,
        listKind: `${KIND}List`,
        plural: PLURAL,
        singular: KIND.toLowerCase(),
        shortNames: ["mcps"],
        categories: ["mcp", "all"],
      },
      scope: "Namespaced",
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: PRINTER_COLUMNS,
          schema: { openAPIV3Schema: openApiSchema() },
        },
      ],
    },
  };
}
