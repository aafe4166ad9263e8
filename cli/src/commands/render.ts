// `mcp-bastion render -f FILE`: reads McpServer documents (one or many per file, `-` for stdin) and
// prints every rendered object as multi-document YAML. Any problem in any document is reported as
// `<file>: document N (<kind>/<name>): <field>: <message>` and nothing is printed; exit code 1.
// Output is written for YAML 1.1 readers (kubectl, Helm, Argo CD): strings such as "on", "y" or
// "012" are quoted so they never turn into booleans or numbers there.
import { readFileSync } from "node:fs";
import { parseAllDocuments, stringify } from "yaml";
import type { McpServer } from "../../../operator/src/api/v1alpha1.ts";
import { validateMcpServer } from "../../../operator/src/api/validate.ts";
import { renderMcpServer } from "../../../operator/src/render/index.ts";

export const DEFAULT_GATEWAY_IMAGE = "ghcr.io/mcp-bastion/mcp-bastion:0.1.0";

const USAGE = `usage: mcp-bastion render -f FILE [-f FILE...] [--gateway-image IMAGE] [--cluster-domain DOMAIN] [--checklist]
  Prints the Kubernetes objects for the McpServer documents in FILE (- reads stdin) as YAML.
  --gateway-image   image of the gateway sidecar (default $MCP_BASTION_GATEWAY_IMAGE or ${DEFAULT_GATEWAY_IMAGE})
  --checklist       also print each server's security checklist and opt-outs (to stderr)
`;

export interface Loaded {
  servers: { file: string; index: number; server: McpServer }[];
  errors: string[];
}

function describe(doc: unknown): string {
  if (doc === null || typeof doc !== "object") return "?/?";
  const d = doc as { kind?: unknown; metadata?: { name?: unknown } };
  const kind = typeof d.kind === "string" ? d.kind : "?";
  const name = typeof d.metadata?.name === "string" ? d.metadata.name : "?";
  return `${kind}/${name}`;
}

/** Parses and validates every document of one file's text. Pure: the caller reads the file. */
export function loadDocuments(file: string, text: string): Loaded {
  const out: Loaded = { servers: [], errors: [] };
  // Read as YAML 1.1, like kubectl: `value: on` is a boolean there, so it is one here too.
  const docs = parseAllDocuments(text, { prettyErrors: true, version: "1.1" });
  if (!Array.isArray(docs)) {
    // An empty stream parses to a single EmptyStream value.
    return out;
  }
  docs.forEach((doc, i) => {
    const n = i + 1;
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        const pos = e.linePos?.[0];
        const where = pos ? ` at line ${pos.line}, column ${pos.col}` : "";
        const message = e.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "");
        out.errors.push(`${file}: document ${n}: YAML syntax error${where}: ${message}`);
      }
      return;
    }
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) return; // empty document (e.g. a trailing ---)
    const result = validateMcpServer(value);
    if (!result.ok) {
      for (const e of result.errors) out.errors.push(`${file}: document ${n} (${describe(value)}): ${e}`);
      return;
    }
    out.servers.push({ file, index: n, server: result.value });
  });
  return out;
}

interface Args {
  files: string[];
  gatewayImage: string;
  clusterDomain?: string;
  checklist: boolean;
}

function parseArgs(args: string[]): Args | string {
  const out: Args = { files: [], gatewayImage: process.env.MCP_BASTION_GATEWAY_IMAGE || DEFAULT_GATEWAY_IMAGE, checklist: false };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const value = () => {
      const v = args[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    try {
      if (a === "-f" || a === "--filename") out.files.push(value());
      else if (a.startsWith("--filename=")) out.files.push(a.slice("--filename=".length));
      else if (a === "--gateway-image") out.gatewayImage = value();
      else if (a === "--cluster-domain") out.clusterDomain = value();
      else if (a === "--checklist") out.checklist = true;
      else return `unknown option "${a}"`;
    } catch (e) {
      return (e as Error).message;
    }
  }
  if (out.files.length === 0) return "-f FILE is required";
  return out;
}

function readInput(file: string): string {
  return readFileSync(file === "-" ? 0 : file, "utf8");
}

export async function run(argv: string[]): Promise<number> {
  if (argv.includes("-h") || argv.includes("--help")) {
    process.stdout.write(USAGE);
    return 0;
  }
  const args = parseArgs(argv);
  if (typeof args === "string") {
    process.stderr.write(`mcp-bastion render: ${args}\n${USAGE}`);
    return 2;
  }
  const all: Loaded = { servers: [], errors: [] };
  for (const file of args.files) {
    let text: string;
    try {
      text = readInput(file);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      all.errors.push(`${file}: cannot read file${code === "ENOENT" ? " (no such file)" : code ? ` (${code})` : ""}`);
      continue;
    }
    const loaded = loadDocuments(file, text);
    all.servers.push(...loaded.servers);
    all.errors.push(...loaded.errors);
  }
  if (all.errors.length > 0) {
    process.stderr.write(`${all.errors.join("\n")}\n`);
    return 1;
  }
  if (all.servers.length === 0) {
    process.stderr.write(`mcp-bastion render: no McpServer documents in ${args.files.join(", ")}\n`);
    return 1;
  }
  const docs: string[] = [];
  for (const { file, index, server } of all.servers) {
    const result = renderMcpServer(server, { gatewayImage: args.gatewayImage, ...(args.clusterDomain ? { clusterDomain: args.clusterDomain } : {}) });
    const id = `${server.metadata.namespace}/${server.metadata.name}`;
    for (const w of result.warnings) process.stderr.write(`${file}: document ${index} (McpServer/${server.metadata.name}): warning: ${w}\n`);
    if (args.checklist) {
      const lines = result.checklist.map((c) => `  [${c.satisfied ? "x" : " "}] ${c.title}: ${c.detail}`);
      const optOuts = result.optOuts.length ? result.optOuts.map((o) => `  opt-out: ${o}`) : ["  opt-outs: none"];
      process.stderr.write(`McpServer ${id} (${result.url}, rate limits ${result.rateLimitMode}):\n${[...lines, ...optOuts].join("\n")}\n`);
    }
    for (const o of result.objects) docs.push(stringify(o, { lineWidth: 0, version: "1.1" }));
  }
  process.stdout.write(docs.map((d) => `---\n${d}`).join(""));
  return 0;
}
