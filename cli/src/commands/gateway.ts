// `mcp-bastion gateway --config FILE`: runs the MCP auth gateway until SIGTERM/SIGINT.
import { parseArgs } from "node:util";
import { GATEWAY_PATHS } from "../../../contract/gateway-config.ts";

export async function run(args: string[]): Promise<number> {
  let values: { config?: string; help?: boolean };
  try {
    ({ values } = parseArgs({ args, options: { config: { type: "string", short: "c" }, help: { type: "boolean", short: "h" } } }));
  } catch (e) {
    process.stderr.write(`mcp-bastion gateway: ${(e as Error).message}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`usage: mcp-bastion gateway --config FILE   (default ${GATEWAY_PATHS.configFile})\n`);
    return 0;
  }
  const { loadConfig, Gateway } = await import("../../../gateway/src/index.ts");
  const config = await loadConfig(values.config ?? GATEWAY_PATHS.configFile);
  const gw = new Gateway({ config });
  // Audit lines are buffered for a few milliseconds: write what is left on any exit.
  process.on("exit", () => gw.audit.flush());
  await gw.start();
  return await new Promise<number>((resolve) => {
    const stop = (sig: string) => {
      process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level: "info", msg: "shutting down", signal: sig })}\n`);
      gw.close().then(
        () => resolve(0),
        () => resolve(1),
      );
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
}
