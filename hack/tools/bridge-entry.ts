// Entry point of the mcp-bastion-bridge single executable (see build-bridge.sh): the stdio bridge
// alone, without the CLI's other commands. In a SEA, argv[1] is the executable again.
import { run } from "../../cli/src/commands/stdio-bridge.ts";

run(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`mcp-bastion-bridge: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
