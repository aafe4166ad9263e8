// `mcp-bastion fingerprint`: prints tool pins for spec.tools.pinned, from a saved tools/list result
// (-f tools.json) or from a running server (--url, streamable HTTP through the MCP SDK client).
import { readFileSync } from "node:fs";
import { stringify } from "yaml";
import { type ToolDescriptor, toolFingerprint } from "../../../contract/fingerprint.ts";

const USAGE = `usage: mcp-bastion fingerprint (-f tools.json | --url URL [--header "Name: value"]...)
  Prints YAML to paste under spec.tools: the sha256 pin of each tool (name, description, inputSchema, annotations).
  -f FILE   a tools/list result: {"tools": [...]}, a JSON-RPC response {"result": {"tools": [...]}}, or an array (- reads stdin)
  --url     a streamable HTTP MCP endpoint to list the tools from
`;

/** Extracts the tool list from the shapes people save: result, JSON-RPC response, or bare array. */
export function toolsFrom(value: unknown): ToolDescriptor[] {
  const v = value as { tools?: unknown; result?: { tools?: unknown } } | unknown[];
  const list = Array.isArray(v) ? v : Array.isArray(v?.tools) ? v.tools : Array.isArray(v?.result?.tools) ? v.result.tools : undefined;
  if (!list) throw new Error('no tool list found: expected {"tools": [...]}, {"result": {"tools": [...]}} or an array');
  return list.map((t, i) => {
    const tool = t as Partial<ToolDescriptor> | null;
    if (!tool || typeof tool.name !== "string" || tool.name === "") throw new Error(`tools[${i}].name: must be a non-empty string`);
    if (tool.description !== undefined && typeof tool.description !== "string") throw new Error(`tools[${i}].description: must be a string`);
    // annotations are pinned too (issue 13): a rule allowing only read-only tools trusts pinned annotations
    return {
      name: tool.name,
      description: tool.description,
      inputSchema: tool.inputSchema,
      ...(tool.annotations !== undefined ? { annotations: tool.annotations } : {}),
    };
  });
}

/** The pins as YAML (sorted by name so the output is stable), ready to paste under spec.tools. */
export function pinsYaml(tools: ToolDescriptor[], source: string): string {
  const names = new Set<string>();
  for (const t of tools) {
    if (names.has(t.name)) throw new Error(`tool "${t.name}" appears twice in the list`);
    names.add(t.name);
  }
  const pinned = [...tools].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).map((t) => ({ name: t.name, sha256: toolFingerprint(t) }));
  return `# ${pinned.length} tool(s) from ${source}; paste under spec.tools\n${stringify({ pinned }, { lineWidth: 0, version: "1.1" })}`;
}

async function listOverHttp(url: string, headers: Record<string, string>): Promise<ToolDescriptor[]> {
  const { Client } = await import("@modelcontextprotocol/sdk/client/index.js");
  const { StreamableHTTPClientTransport } = await import("@modelcontextprotocol/sdk/client/streamableHttp.js");
  const client = new Client({ name: "mcp-bastion-fingerprint", version: "0.1.0" });
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
  await client.connect(transport);
  try {
    const tools: ToolDescriptor[] = [];
    let cursor: string | undefined;
    do {
      const page = await client.listTools(cursor ? { cursor } : {});
      tools.push(...toolsFrom(page));
      cursor = page.nextCursor;
    } while (cursor);
    return tools;
  } finally {
    await client.close();
  }
}

export async function run(args: string[]): Promise<number> {
  if (args.length === 0 || args.includes("-h") || args.includes("--help")) {
    process.stdout.write(USAGE);
    return args.length === 0 ? 2 : 0;
  }
  let file: string | undefined;
  let url: string | undefined;
  const headers: Record<string, string> = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const v = args[i + 1];
    if ((a === "-f" || a === "--url" || a === "--header") && v === undefined) {
      process.stderr.write(`mcp-bastion fingerprint: ${a} needs a value\n`);
      return 2;
    }
    if (a === "-f") file = args[++i];
    else if (a === "--url") url = args[++i];
    else if (a === "--header") {
      const h = args[++i]!;
      const colon = h.indexOf(":");
      if (colon <= 0) {
        process.stderr.write('mcp-bastion fingerprint: --header must look like "Name: value"\n');
        return 2;
      }
      headers[h.slice(0, colon).trim()] = h.slice(colon + 1).trim();
    } else {
      process.stderr.write(`mcp-bastion fingerprint: unknown option "${a}"\n${USAGE}`);
      return 2;
    }
  }
  if ((file === undefined) === (url === undefined)) {
    process.stderr.write(`mcp-bastion fingerprint: give exactly one of -f and --url\n${USAGE}`);
    return 2;
  }
  try {
    if (file !== undefined) {
      let value: unknown;
      try {
        value = JSON.parse(readFileSync(file === "-" ? 0 : file, "utf8"));
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        throw new Error(code ? `cannot read ${file} (${code})` : `${file} is not valid JSON: ${(e as Error).message}`);
      }
      process.stdout.write(pinsYaml(toolsFrom(value), file));
    } else {
      // Header values (tokens) are never echoed: the source line names the URL only.
      process.stdout.write(pinsYaml(await listOverHttp(url!, headers), new URL(url!).origin + new URL(url!).pathname));
    }
    return 0;
  } catch (e) {
    process.stderr.write(`mcp-bastion fingerprint: ${(e as Error).message}\n`);
    return 1;
  }
}
