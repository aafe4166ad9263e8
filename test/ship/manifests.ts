// Where the shipping tests get their objects: the examples, what the renderer makes of them (through
// the CLI, as a user would run it) and helm template output (the upstream CRDs: dev/crds.ts).
import { parseAllDocuments } from "yaml";
import { mcpServerExampleFiles } from "../support/examples.ts";
import { cli } from "./tools.ts";

export interface KubeDoc {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [k: string]: unknown;
}

/** All documents of a YAML or JSON stream, with `kind: List` flattened; empty documents dropped. */
export function parseManifests(text: string): KubeDoc[] {
  const out: KubeDoc[] = [];
  const add = (d: unknown) => {
    if (!d || typeof d !== "object") return;
    const o = d as KubeDoc & { items?: unknown[] };
    if (o.kind === "List" || (o.kind?.endsWith("List") && Array.isArray(o.items))) (o.items ?? []).forEach(add);
    else if (o.kind) out.push(o);
  };
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length) throw new Error(`invalid YAML: ${doc.errors[0]!.message}`);
    add(doc.toJS());
  }
  return out;
}

export interface Example {
  file: string;
  path: string;
  docs: KubeDoc[];
}

/**
 * examples/*.yaml files holding McpServer objects (the Argo CD Application example is not one), from
 * test/support/examples.ts: an empty or missing examples/ is an error there, never zero cases here.
 */
export function mcpServerExamples(): Example[] {
  return mcpServerExampleFiles().map(({ file, path, docs }) => ({ file, path, docs: docs as KubeDoc[] }));
}

/** `mcp-bastion render -f FILE`: the objects the operator would apply for this example. */
export async function renderExample(path: string): Promise<KubeDoc[]> {
  const r = await cli(["render", "-f", path]);
  if (r.code !== 0) throw new Error(`mcp-bastion render -f ${path} failed (${r.code}):\n${r.stderr}`);
  return parseManifests(r.stdout);
}
