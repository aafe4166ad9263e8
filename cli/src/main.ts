// `mcp-bastion <command>`: each command lives in its own module under ./commands and is loaded
// only when used, so `gateway` never pays for the operator's imports and vice versa.
const COMMANDS: Record<string, { module: string; summary: string }> = {
  render: { module: "./commands/render.ts", summary: "render -f FILE: print the Kubernetes objects for McpServer documents" },
  crd: { module: "./commands/crd.ts", summary: "crd: print the McpServer CustomResourceDefinition" },
  fingerprint: { module: "./commands/fingerprint.ts", summary: "fingerprint --url URL | -f tools.json: print tool pins" },
  operator: { module: "./commands/operator.ts", summary: "operator: run the controller against the current kubeconfig" },
  gateway: { module: "./commands/gateway.ts", summary: "gateway --config FILE: run the MCP auth gateway" },
  "stdio-bridge": { module: "./commands/stdio-bridge.ts", summary: "stdio-bridge --port N -- CMD ARGS: serve a stdio MCP server to the gateway" },
  demo: { module: "./commands/demo.ts", summary: "demo: local control plane + operator + examples" },
  audit: { module: "./commands/audit.ts", summary: "audit verify FILE [--key KEYFILE]: check an audit log's hash chain and signed checkpoints" },
  apikey: { module: "./commands/apikey.ts", summary: "apikey new NAME [--expires 90d]: print a new API key once and the digest entry to store" },
};

export interface Command {
  run(args: string[]): Promise<number>;
}

function usage(): string {
  return ["usage: mcp-bastion <command> [options]", "", ...Object.values(COMMANDS).map((c) => `  ${c.summary}`)].join("\n");
}

/** Runs one command and returns the exit code. Never lets a stack trace reach the user. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "-h" || name === "--help" || name === "help") {
    process.stdout.write(`${usage()}\n`);
    return name ? 0 : 2;
  }
  const entry = COMMANDS[name];
  if (!entry) {
    process.stderr.write(`mcp-bastion: unknown command "${name}"\n${usage()}\n`);
    return 2;
  }
  try {
    const mod = (await import(entry.module)) as Command;
    return await mod.run(rest);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`mcp-bastion ${name}: ${message}\n`);
    if (process.env.MCP_BASTION_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    return 1;
  }
}
