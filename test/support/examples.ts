// The examples/ folder, read one way for every test: each YAML file with its documents, the McpServers
// among them validated by the schema. An example the schema refuses fails the test that loads it (it is
// never skipped as "not an McpServer"), and an empty or missing examples/ is an error, not zero cases.
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseAllDocuments } from "yaml";
import type { McpServer } from "../../operator/src/api/v1alpha1.ts";
import { validated } from "./mcpserver.ts";

export const EXAMPLES_DIR = resolve(import.meta.dirname, "..", "..", "examples");

type Doc = Record<string, unknown> & { kind?: string };

export interface ExampleFile {
  /** The file name, e.g. everything.yaml. */
  file: string;
  /** Its absolute path. */
  path: string;
  text: string;
  /** Its YAML documents (empty ones left out). */
  docs: Doc[];
}

/** Every examples/*.yaml, sorted by name. */
export function exampleFiles(): ExampleFile[] {
  const files = readdirSync(EXAMPLES_DIR)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort();
  if (files.length === 0) throw new Error(`no YAML files in ${EXAMPLES_DIR}`);
  return files.map((file) => {
    const path = join(EXAMPLES_DIR, file);
    const text = readFileSync(path, "utf8");
    const docs = parseAllDocuments(text)
      .map((d) => d.toJS() as Doc | null)
      .filter((d): d is Doc => d !== null && typeof d === "object");
    return { file, path, text, docs };
  });
}

/** The example files that hold McpServers, `docs` narrowed to those (examples/ also holds e.g. an Argo CD Application). */
export function mcpServerExampleFiles(): ExampleFile[] {
  const out = exampleFiles()
    .map((e) => ({ ...e, docs: e.docs.filter((d) => d.kind === "McpServer") }))
    .filter((e) => e.docs.length > 0);
  if (out.length === 0) throw new Error(`no McpServer in ${EXAMPLES_DIR}`);
  return out;
}

/** Every McpServer of examples/, validated and defaulted (throws naming the file when one is invalid). */
export function exampleMcpServers(): { file: string; server: McpServer }[] {
  return mcpServerExampleFiles().flatMap((e) => e.docs.map((d) => ({ file: e.file, server: validated(d, e.file) })));
}

/** The one McpServer document of examples/FILE as written (not validated: a test may edit it first). */
export function exampleMcpServerDoc(file: string): Doc {
  const found = mcpServerExampleFiles().find((e) => e.file === file);
  if (!found) throw new Error(`examples/${file} holds no McpServer`);
  if (found.docs.length !== 1) throw new Error(`examples/${file} holds ${found.docs.length} McpServers, not one`);
  return found.docs[0]!;
}

/** The one McpServer of examples/FILE, validated and defaulted. */
export function exampleMcpServer(file: string): McpServer {
  return validated(exampleMcpServerDoc(file), file);
}
